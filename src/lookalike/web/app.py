"""The web viewer's ASGI app: wiring only. `create_app` builds the shared state (see state.py),
puts the request guard in front (guard.py), turns every error into JSON (errors.py), starts
the warm-up (warmup.py) and includes the routes (routes/); files are reached only through
catalogue ids."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..api import Collection
from ..catalogue.paths import thumbnails_folder
from ..version import __version__
from .errors import EXCEPTION_HANDLERS, refusals
from .files import ThumbnailCache
from .guard import ENVELOPE_BYTES, MAX_UPLOAD_BYTES, RequestGuard, accepted_hosts
from .jobs import Jobs
from .quick_neighbours import QuickNeighbours
from .reviews import DuplicateReviews
from .routes import ROUTERS
from .routes.pages import DOCS_ASSETS, STATIC
from .state import FairLock, ViewerState
from .warmup import WarmUp

_DESCRIPTION = ("Find look-alike images in an indexed collection. Every view of the page at / "
                "has a JSON twin here. Errors are `{\"error\": \"...\"}` with a 4xx status.")


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
    col = collection if isinstance(collection, Collection) else Collection.open(collection)
    state = _state(col, max_upload_bytes, thumbnails)
    app = FastAPI(title="lookalike", version=__version__, docs_url=None,
                  lifespan=_lifespan(state, warm_up, owned), description=_DESCRIPTION,
                  exception_handlers=EXCEPTION_HANDLERS,
                  responses=refusals(s400="a Host header that is not this server's, or a "
                                          "request the collection cannot answer"))
    app.state.viewer = state
    app.state.collection = col  # the same object as state.collection, for a quick look
    app.add_middleware(QuickNeighbours, state=state)  # added first: runs inside the guard
    app.add_middleware(RequestGuard, max_body=max_upload_bytes + ENVELOPE_BYTES,
                       hosts=accepted_hosts(allowed_hosts))
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
              name="docs-assets")
    return app


def _state(col: Collection, max_upload_bytes: int,
           thumbnails: str | os.PathLike | None) -> ViewerState:
    lock = FairLock()
    folder = Path(thumbnails) if thumbnails is not None else thumbnails_folder(col.store.path)
    return ViewerState(collection=col, thumbnails=ThumbnailCache(folder),
                       max_upload_bytes=max_upload_bytes, lock=lock, warmup=WarmUp(col, lock),
                       duplicates=DuplicateReviews(col), jobs=Jobs(col))


def _lifespan(state: ViewerState, warm_up: bool, owned: bool):
    @asynccontextmanager
    async def lifespan(app):
        if warm_up:
            state.warmup.start()
        else:
            state.warmup.skip()
        yield
        state.duplicates.close()
        state.jobs.close()
        if owned:
            with state.lock:
                state.collection.close()

    return lifespan


__all__ = ["MAX_UPLOAD_BYTES", "create_app"]
