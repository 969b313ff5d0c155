"""The page at / and the API's documentation at /docs (Swagger UI served from the
swagger-ui-bundle-v2 package: FastAPI's default loads it from a CDN, blank offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse

#: The front end's files, served under /static.
STATIC = Path(__file__).parent.parent / "static"
#: Where the app serves Swagger UI's files.
DOCS_ASSETS = "/docs-assets"

router = APIRouter()


@router.get("/", include_in_schema=False)
def page():
    return FileResponse(STATIC / "index.html", headers={
        "Cache-Control": "no-cache",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                   "object-src 'none'; base-uri 'none'; "
                                   "frame-ancestors 'none'"})


@router.get("/docs", include_in_schema=False)
def docs():
    return get_swagger_ui_html(openapi_url="/openapi.json", title="lookalike API",
                               swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                               swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                               swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png")
