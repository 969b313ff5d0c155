"""The web viewer: a local FastAPI app over a `Collection`, with a static front-end.

`create_app(collection)` builds the ASGI app (every view has a JSON twin under /api, described
at /docs); `serve(db, host, port)` runs it with uvicorn, as `lookalike serve` does.
"""

from .app import create_app
from .server import exposure_warning, serve

__all__ = ["create_app", "exposure_warning", "serve"]
