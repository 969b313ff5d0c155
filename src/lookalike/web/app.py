"""The FastAPI app of the web viewer: the static page and its JSON API, over one `Collection`.

Requests run in uvicorn's thread pool and share the collection; each thread reads the catalogue
on its own SQLite connection, and a lock keeps one upload search at a time (it may load a
model) and guards the hand-over of the warm-up's search matrices. Files are reached only through catalogue ids; every error is
JSON, `{"error": "..."}`, with a 4xx status (500 only for bugs, without the traceback).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
import tempfile
import threading
from collections import deque
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..formats.thumbnails import make_rendition, make_thumbnail, needs_rendition, thumbnail_media_type
from ..api import DEFAULT_K, DEFAULT_METRIC, RECORD_FIELDS, Collection
from ..errors import LookalikeError
from ..formats.export import extras_of
from ..ingest.decode import ImageSkipped, decode
from ..search.metrics import METRICS
from . import addresses, files

log = logging.getLogger("lookalike.web")

STATIC = Path(__file__).parent / "static"

#: Largest accepted upload (the image file itself).
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
#: Room for the multipart envelope and the form fields around an upload.
_ENVELOPE_BYTES = 64 * 1024

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

ImageId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="the image's id in the "
                                                                    "collection")]


class HTTPError(Exception):
    """A request that cannot be answered: becomes `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ErrorAnswer(BaseModel):
    """Every refusal: one sentence for people (422s also list each problem in `detail`)."""

    error: str


def _refusals(**reasons: str) -> dict:
    """OpenAPI `responses` for error statuses, given as s404="why", ..."""
    return {int(code[1:]): {"model": ErrorAnswer, "description": why}
            for code, why in reasons.items()}


_NO_IMAGE = "no usable image with this id in the collection, or its file is gone"
_CHANGED = "the file changed since it was indexed (re-index to see it again)"
_CANNOT_SEARCH = "a metric, model or search the collection cannot answer"


class NeighborsQuery(BaseModel):
    """What `POST /api/neighbors` takes."""

    references: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        ..., min_length=1, max_length=1000, description="ids of the reference images")
    k: int | None = Field(10, ge=1, le=100_000,
                          description="how many look-alikes; null ranks every image")
    metric: str = Field("cosine", description=f"one of {', '.join(METRICS)} (any case)")
    model: str | None = Field(None, description="one of the collection's models; null: its "
                                                "default")
    include_references: bool = Field(False, description="also rank the references themselves")
    category: str | None = Field(None, description="only images of this category (and its "
                                                   "sub-folders)")
    approximate: bool | Literal["ivf", "scan"] | None = Field(
        None, description="null: exact below 200,000 images, FAISS above (as `lookalike "
                          "similar`); true, \"ivf\" or \"scan\": FAISS (faster on large "
                          "collections, may miss a few true neighbours); false: exact")


# -- the collection, shared by the request threads ---------------------------------------------

class _FairLock:
    """A lock granted in order of arrival: under load every request waits about as long as
    the others (threading.Lock favours whoever asks last, which doubles the slowest waits)."""

    def __init__(self):
        self._guard = threading.Lock()
        self._busy = False
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the holder hands the lock over in __exit__

    def __exit__(self, *exc) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._busy = False


def _image_json(row: dict) -> dict[str, Any]:
    out = {"id": row["id"], "path": row["path"], "name": row["name"], "category": row["category"],
           "width": row["width"], "height": row["height"], "size": row["size"]}
    if row.get("extras"):  # the other columns of a table the image was listed in
        out["extras"] = extras_of(row)
    return out


# -- the app -------------------------------------------------------------------------------------

def create_app(collection: Collection | str | os.PathLike | None = None, *,
               max_upload_bytes: int = MAX_UPLOAD_BYTES,
               allowed_hosts: list[str] | None = None,
               thumbnails: str | os.PathLike | None = None,
               warm_up: bool = True) -> FastAPI:
    """The web viewer's ASGI app for a collection (a `Collection`, or its database file).

    The app uses the collection's database connection from its own threads: do not use a
    `Collection` given here elsewhere while the app runs. One opened from a file is closed
    when the app shuts down.

    `allowed_hosts`: Host header values accepted (default: the loopback names, which keeps
    web pages elsewhere from reaching the viewer through DNS rebinding); ["*"] accepts any.
    `thumbnails`: the thumbnail cache folder (default `<db>.thumbs` beside the database).
    `warm_up`: load the search matrix in the background at start-up.
    """
    owned = not isinstance(collection, Collection)
    if owned:
        collection = Collection.open(collection)
    col = Collection(collection.store)
    lock = _FairLock()  # see the module's docstring: catalogue reads need no lock
    cache = files.ThumbnailCache(Path(thumbnails) if thumbnails is not None
                                 else col.store.path.with_name(col.store.path.name + ".thumbs"))

    warmed_up = threading.Event()  # set once the search matrix and its 8-bit pass are ready

    def warm() -> None:
        # The slow parts (counting the models, writing the search matrix's cache file) run on
        # a connection of their own, so the grid is served meanwhile.
        try:
            # Shares what it counts and loads with `col`; requests that need them meanwhile
            # wait for them rather than counting twice.
            with Collection.open(col.store.path, share_with=col) as side:
                side.models  # noqa: B018 - counted here, on a connection of its own
                total, first = side.images(limit=1)
                if first:
                    side.nearest_to_ids([first[0]["id"]], k=1)  # matrix file, row norms
                    side.prepare_for_many_searches()
        except Exception:  # an empty collection, say: requests will tell the user
            log.debug("warm-up failed", exc_info=True)
        finally:
            warmed_up.set()

    @asynccontextmanager
    async def lifespan(app):
        if not warm_up:
            warmed_up.set()
        else:
            threading.Thread(target=warm, name="lookalike-warm-up", daemon=True).start()
        yield
        if owned:
            with lock:
                col.close()

    app = FastAPI(
        title="lookalike", version=__version__, lifespan=lifespan, docs_url=None,
        responses=_refusals(s400="a Host header that is not this server's, or a request "
                                 "the collection cannot answer"),
        description="Find look-alike images in an indexed collection. Every view of the page "
                    "at / has a JSON twin here. Errors are `{\"error\": \"...\"}` with a 4xx "
                    "status.")
    app.state.collection = col
    app.state.lock = lock
    app.state.thumbnails = cache
    hosts = None if allowed_hosts is not None and "*" in allowed_hosts else \
        {h.lower() for h in (allowed_hosts or [])} | _LOOPBACK_NAMES | {"127.0.0.1", "::1"}
    app.add_middleware(_Guard, max_body=max_upload_bytes + _ENVELOPE_BYTES, hosts=hosts)
    _add_error_handlers(app)

    def row_or_404(image_id: int) -> dict:
        row = col.image(image_id)
        if row is None:
            raise HTTPError(404, f"image {image_id}: no such image in the collection")
        return row

    def neighbors_response(res, references: list[dict], k) -> JSONResponse:
        # The answer is plain JSON already; a JSONResponse skips FastAPI's generic encoder.
        credits = col.attributions(res.rows + [r for r in references if "root" in r])
        return JSONResponse({
            "model": res.model, "metric": res.metric, "k": k,
            "references": [_image_json(r) if "id" in r else r for r in references],
            "neighbors": res.to_records(), "notes": res.notes, "attributions": credits})

    # -- the page ----------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                                       "object-src 'none'; base-uri 'none'; "
                                       "frame-ancestors 'none'"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # FastAPI's /docs page loads Swagger UI from a CDN, blank offline: serve the copy that
    # ships in the swagger-ui-bundle-v2 package instead.
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="lookalike API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")

    # -- JSON --------------------------------------------------------------------------------

    @app.get("/api/collection", summary="What the collection holds")
    def collection_info():
        """Number of images, models with their image counts, the default model and metric,
        every metric, and the credits that must be shown with the images; the defaults of a
        search and of the grid, the thumbnail sizes, and the fields of a look-alike record
        (in export order)."""
        count = len(col)
        models = col.models
        default = col.default_model if models else None
        return {"name": col.store.path.name, "count": count, "models": models,
                "default_model": default, "metrics": list(METRICS),
                "default_metric": DEFAULT_METRIC, "attributions": col.attributions(),
                "extra_columns": col.extra_columns(),
                "thumbnail_sizes": list(files.THUMBNAIL_SIZES),
                "defaults": {"metric": DEFAULT_METRIC, "k": DEFAULT_K,
                             "thumbnail_size": files.DEFAULT_THUMBNAIL_SIZE},
                "record_fields": list(RECORD_FIELDS),
                "max_upload_bytes": max_upload_bytes,
                "warming_up": not warmed_up.is_set()}

    @app.get("/api/categories", summary="Categories with their image counts")
    def categories():
        """Every category (sub-folder), its own sub-folders' images included in its count."""
        return {"categories": [{"name": name, "count": n}
                               for name, n in col.categories().items()]}

    @app.get("/api/images", summary="One page of the collection's images")
    def list_images(offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                    category: Annotated[str | None, Query(max_length=4096)] = None,
                    q: Annotated[str | None, Query(max_length=1024,
                                                   description="part of the name")] = None):
        """Images in id order, filtered by category (with its sub-folders) and by a part of
        the name (case-insensitive); `total` counts every match."""
        total, rows = col.images(offset, limit, category or None, q or None)
        return {"total": total, "offset": offset, "limit": limit,
                "items": [_image_json(r) for r in rows]}

    @app.get("/api/images/{image_id}", summary="One image's catalogue entry",
             responses=_refusals(s404=_NO_IMAGE))
    def get_image(image_id: ImageId):
        return _image_json(row_or_404(image_id))

    @app.get("/api/images/{image_id}/position", summary="Where an image is in the grid",
             responses=_refusals(s404=_NO_IMAGE))
    def position(image_id: ImageId,
                 category: Annotated[str | None, Query(max_length=4096)] = None,
                 q: Annotated[str | None, Query(max_length=1024,
                                                description="part of the name")] = None):
        """The image's offset among `GET /api/images` with the same filter (what the page
        needs to scroll its grid to it), or null when the filter leaves it out; `total`
        counts every match."""
        row_or_404(image_id)
        total, _ = col.images(0, 0, category or None, q or None)
        return {"id": image_id, "position": col.position(image_id, category or None, q or None),
                "total": total}

    @app.post("/api/neighbors", summary="The look-alikes of images of the collection",
              responses=_refusals(s400=_CANNOT_SEARCH, s404=_NO_IMAGE,
                                  s413="a request body over the size limit"))
    def neighbors(query: NeighborsQuery):
        """The k images nearest to the references (an image's distance is its distance to the
        nearest reference), nearest first, with the fields of `lookalike similar --format
        json`; `notes` are sentences a person should read with the answer (Mahalanobis on too
        few images, say)."""
        return find_neighbors(query)

    @app.get("/api/neighbors", summary="The look-alikes, as the page's URL asks for them",
             responses=_refusals(s400=_CANNOT_SEARCH, s404=_NO_IMAGE))
    def neighbors_get(ref: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]],
                                     Query(min_length=1, max_length=1000)],
                      k: Annotated[int | None, Query(ge=1, le=100_000)] = 10,
                      metric: str = "cosine", model: str | None = None,
                      include_references: bool = False, category: str | None = None,
                      approximate: Literal["true", "false", "ivf", "scan"] | None = None):
        """The JSON twin of the page's `/?ref=...` view; same answer as `POST /api/neighbors`."""
        return find_neighbors(NeighborsQuery(references=ref, k=k, metric=metric, model=model,
                                             include_references=include_references,
                                             category=category,
                                             approximate=_approximate(approximate)))

    def find_neighbors(query: NeighborsQuery) -> dict:
        ids = list(dict.fromkeys(query.references))
        references = col.store.rows(ids)
        found = {r["id"] for r in references if r["skip_reason"] is None}
        missing = [i for i in ids if i not in found]
        if missing:
            raise HTTPError(404, f"image {missing[0]}: no such image in the collection")
        # Searches asked for at the same time are answered by one pass over the matrix
        # (search.py).
        res = col.nearest_to_ids(ids, k=query.k, metric=query.metric, model=query.model,
                                 include_references=query.include_references,
                                 category=query.category or None,
                                 approximate=query.approximate)
        return neighbors_response(res, references, query.k)

    @app.post("/api/neighbors/upload", summary="The look-alikes of an image file you send",
              responses=_refusals(s400=_CANNOT_SEARCH, s413="a file over the size limit",
                                  s415="a file that is not a usable image"))
    def neighbors_upload(file: Annotated[UploadFile, File(description="an image file")],
                         k: Annotated[int, Form(ge=1, le=100_000)] = 10,
                         metric: Annotated[str, Form()] = "cosine",
                         model: Annotated[str | None, Form()] = None,
                         category: Annotated[str | None, Form()] = None,
                         approximate: Annotated[Literal["true", "false", "ivf", "scan"] | None,
                                                Form()] = None):
        """Embeds the file (at most `max_upload_bytes`, see /api/collection) and returns its
        look-alikes in the collection; the file is not added to it."""
        data = file.file.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPError(413, f"the file is larger than {max_upload_bytes:,} bytes")
        name = os.path.basename(file.filename or "upload")
        try:
            decode(data, 64)  # refuse what is not an image before the model sees it
        except ImageSkipped as exc:
            raise HTTPError(415, f"{name}: {exc.reason}") from None
        fd, tmp = tempfile.mkstemp(prefix="lookalike-upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            with lock:
                res = col.nearest(tmp, k=k, metric=metric, model=model or None,
                                  category=category or None,
                                  approximate=_approximate(approximate))
        finally:
            os.unlink(tmp)
        res.references = [name]  # each look-alike's nearest_reference: not the temporary file
        reference = {"name": name, "upload": True, "size": len(data)}
        return neighbors_response(res, [reference], k)

    @app.get("/api/images/{image_id}/thumbnail", summary="A thumbnail of an image",
             response_class=Response,
             responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                        304: {"description": "unchanged since the ETag in If-None-Match"},
                        **_refusals(s404=_NO_IMAGE, s409=_CHANGED,
                                    s422="the file cannot be decoded into a thumbnail")})
    def thumbnail(request: Request, image_id: ImageId,
                  size: Annotated[int, Query(ge=1, le=4096, description="longest side wanted; "
                                             "served at the next of 32, 64, 128, 256, 512, "
                                             "1024")] = 256):
        """JPEG, or PNG for images with transparency; made on first request and cached
        beside the database, keyed by content and size."""
        row = row_or_404(image_id)
        step = files.snap_size(size)
        digest = row["content_hash"]
        etag = f'"{digest.hex()}-{step}"' if digest else None
        headers = {"Cache-Control": "private, max-age=3600"}
        if etag:
            headers["ETag"] = etag
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers=headers)
        data = cache.get(digest, step) if digest else None
        if data is None:
            original = _read_original(row, image_id)
            try:
                data = make_thumbnail(original, step)
            except ImageSkipped as exc:
                raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
            if digest:
                cache.put(digest, step, data)
        return Response(data, media_type=thumbnail_media_type(data), headers=headers)

    @app.get("/api/images/{image_id}/original", summary="The image file itself",
             response_class=Response, responses={200: {"content": {"image/*": {}}},
                                                 **_refusals(s404=_NO_IMAGE, s409=_CHANGED)})
    def original(image_id: ImageId):
        """Exactly the bytes that were indexed; refused if the file changed since."""
        row = row_or_404(image_id)
        data = _read_original(row, image_id)
        name = files.download_name(row, data)
        from urllib.parse import quote

        return Response(data, media_type=files.media_type(data), headers={
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "private, max-age=3600"})

    @app.get("/api/images/{image_id}/display", summary="The image as a browser can show it",
             response_class=Response,
             responses={200: {"content": {"image/*": {}}},
                        **_refusals(s404=_NO_IMAGE, s409=_CHANGED,
                                    s422="the file cannot be decoded")})
    def display(image_id: ImageId):
        """The original when browsers show its format (JPEG, PNG, GIF, WebP, BMP); else (HEIC,
        AVIF, TIFF, ...) a PNG or JPEG of it at full size (longest side at most 8,192 px),
        made once and cached beside the database. The page's preview shows this."""
        row = row_or_404(image_id)
        original_data = _read_original(row, image_id)
        if not needs_rendition(original_data):
            return Response(original_data, media_type=files.media_type(original_data),
                            headers={"Cache-Control": "private, max-age=3600"})
        digest = row["content_hash"]
        data = cache.get(digest, "display") if digest else None
        if data is None:
            try:
                data = make_rendition(original_data)
            except ImageSkipped as exc:
                raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
            if digest:
                cache.put(digest, "display", data)
        return Response(data, media_type=thumbnail_media_type(data),
                        headers={"Cache-Control": "private, max-age=3600"})

    return app


def _approximate(text: str | None) -> bool | str | None:
    """A query or form value of `approximate` as `Collection.nearest` takes it."""
    return {"true": True, "false": False}.get(text, text)


def _read_original(row: dict, image_id: int) -> bytes:
    try:
        return files.read_catalogued(row["locator"], row["content_hash"])
    except files.FileGone as exc:
        raise HTTPError(404, f"image {image_id}: its file is gone ({exc}): {row['path']}") from None
    except files.FileChanged as exc:
        raise HTTPError(409, f"image {image_id}: {exc}: {row['path']}") from None


# -- errors as JSON --------------------------------------------------------------------------------

def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def http_error(request, exc: HTTPError):
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = f"not found: {request.url.path}"
        return _error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        problems = exc.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query",
                                                                            "path", "form"))
        text = first.get("msg", "invalid request")
        message = f"{where}: {text}" if where else text
        detail = [{"loc": list(p.get("loc", ())), "msg": p.get("msg"),
                   "type": p.get("type", "value_error")} for p in problems]
        return _error(422, message, detail=detail)

    @app.exception_handler(LookalikeError)
    async def user_error(request, exc: LookalikeError):
        return _error(400, str(exc))

    @app.exception_handler(Exception)
    async def bug(request, exc: Exception):
        log.error("error while answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error; the server's log has the details")


class _Guard:
    """ASGI middleware: refuses unknown Host headers (DNS rebinding) and bodies over
    `max_body` bytes (413, counted as they arrive, whether or not Content-Length is given),
    and adds headers that keep browsers from sniffing or framing responses."""

    def __init__(self, app, max_body: int, hosts: set[str] | None):
        self.app = app
        self.max_body = max_body
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.hosts is not None and _host_name(headers.get(b"host", b"")) not in self.hosts:
            return await _send_json(send, 400, "this server answers only requests addressed to "
                                               "its own host name (Host header refused)")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body
            except ValueError:
                return await _send_json(send, 400, "invalid Content-Length")
            if too_big:
                return await _send_json(send, 413, self._too_big())
        received = 0
        over = False

        async def counting_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    over = True
                    raise _BodyTooLarge()
            return message

        started = False

        async def guarded_send(message):
            nonlocal started
            if over:  # whatever the app made of the cut-off body, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_json(send, 413, self._too_big())
                return
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"x-content-type-options", b"nosniff"),
                         (b"referrer-policy", b"no-referrer"),
                         (b"x-frame-options", b"DENY")]
                message = dict(message, headers=list(message.get("headers", [])) + extra)
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, self._too_big())

    def _too_big(self) -> str:
        return (f"the request body is larger than {self.max_body:,} bytes; uploads are limited "
                f"to {self.max_body - _ENVELOPE_BYTES:,} bytes")


class _BodyTooLarge(Exception):
    pass


def _host_name(value: bytes) -> str:
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _send_json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": body})


# -- running it ------------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable only from this machine."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """The warning to print when the viewer would listen beyond this machine, else None."""
    if is_loopback(host):
        return None
    return (f"lookalike: warning: listening on {host}: other machines on the network can see "
            "every image of the collection and its file paths; there is no password. Use "
            "--host 127.0.0.1 (the default) to keep it to this machine.")


def serve(db: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          open_browser: bool = False) -> None:
    """Serve the viewer for the collection in `db` until interrupted (what `lookalike serve`
    does); port 0 picks a free port. Raises LookalikeError when the collection cannot be
    opened or the address cannot be listened on."""
    import uvicorn

    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    col = Collection.open(db)
    try:
        sock = _listen(host, port)
        port = sock.getsockname()[1]
        app = create_app(col, allowed_hosts=None if is_loopback(host) else ["*"])
        url, *elsewhere = addresses.urls(host, port)
        print(f"lookalike: serving {col.store.path} ({len(col):,} images) at {url} "
              f"(API documented at {url}docs); Ctrl-C stops", file=sys.stderr, flush=True)
        for other in elsewhere:
            print(f"lookalike: from other machines: {other}", file=sys.stderr, flush=True)
        if open_browser:
            import webbrowser

            threading.Timer(1.0, webbrowser.open, [url]).start()
        config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn stops gracefully, then re-raises Ctrl-C
            pass
        print("lookalike: viewer stopped", file=sys.stderr)
    finally:
        col.close()


def _listen(host: str, port: int):
    """A socket bound to (host, port), so that a busy port is a clear error before start-up."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
            flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        raise LookalikeError(f"--host {host}: not an address or a name this machine knows; use "
                             "127.0.0.1 (this machine only) or 0.0.0.0 (every network it is "
                             "on)") from None
    # The protocol must be IPPROTO_TCP, not 0: only then does asyncio set TCP_NODELAY on the
    # accepted connections (else each response waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as exc:
        sock.close()
        raise LookalikeError(addresses.listen_failure(host, port, exc)) from None
    return sock
