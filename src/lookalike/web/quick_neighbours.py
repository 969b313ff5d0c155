"""Look-alikes that the graph answers at once, answered on the server's event loop: a `POST
/api/neighbors` of one reference, once the collection's graph index is in memory and up to
date (`Collection.answers_from_graph`), skips FastAPI's request machinery and the hand-over to
a worker thread; every other request, and any this path cannot answer, goes on to the route.

Why (README, "Where a request's time goes"): at 100,000 images the graph walk takes about
0.4 ms, FastAPI's routing, dependencies and validation about 0.3 ms more and the thread hop
0.1 ms; with 20 clients the route's 20 threads, handing Python's lock (GIL) around, took
3.4-3.9 ms of CPU per request where the event loop alone takes 1.2 ms. Anything slower than a
graph walk (a matrix to load, a graph to build or bring up to date, exact search, filters,
marks, several references, a large k) stays on the worker threads, so that one request never
holds up the others for long.
"""

from __future__ import annotations

import json

from ..errors import LookalikeError
from .errors import HTTPError
from .routes.neighbours import NeighborsQuery, find_neighbors
from .state import ViewerState

#: The largest k answered on the event loop: the walk then gathers up to 2k candidates
#: (efSearch 200 at most), still about a millisecond at 100,000 images.
QUICK_MAX_K = 100

_PATH = "/api/neighbors"


class QuickNeighbours:
    """ASGI middleware in front of the routes (behind the request guard, guard.py)."""

    def __init__(self, app, state: ViewerState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != _PATH \
                or not _is_json(scope["headers"]):
            return await self.app(scope, receive, send)
        body, replay = await _read_body(receive)
        response = None if body is None else self._answer(body)
        if response is None:  # the route answers it, from the same messages
            return await self.app(scope, replay, send)
        await response(scope, replay, send)

    def _answer(self, body: bytes):
        """The route's answer to `body` if it can be given at once, else None."""
        try:
            query = NeighborsQuery.model_validate(json.loads(body))  # as FastAPI reads it
        except Exception:  # not JSON, or not a valid query: the route says why
            return None
        # One read transaction: the catalogue the search reads is the one the check saw (the
        # matrix and graph of its generation), and each setting is read once (60 us less).
        with self.state.collection.store.snapshot():
            if not self._quick(query):
                return None
            try:
                return find_neighbors(self.state, query)
            except (HTTPError, LookalikeError):
                return None  # refusals are the route's: the same error, said the same way

    def _quick(self, query: NeighborsQuery) -> bool:
        """Whether the graph answers `query` at once."""
        plain = (len(set(query.references)) == 1 and query.k is not None
                 and query.k <= QUICK_MAX_K and query.approximate in (None, True, "hnsw")
                 and not (query.unlike or query.like or query.refine or query.category
                          or query.normalise or query.controls))
        return plain and self.state.warmup.models_ready.is_set() and \
            self.state.collection.answers_from_graph(query.model, query.metric, query.k,
                                                     query.approximate)


def _is_json(headers) -> bool:
    """Whether the Content-Type is JSON as FastAPI reads a JSON body (others go to it)."""
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower() == b"application/json"
    return False


async def _read_body(receive):
    """(the whole request body, or None if the client went away first; a `receive` that
    gives the messages read again, then what comes after)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            complete = False
            break
        if not message.get("more_body", False):
            complete = True
            break
    body = b"".join(m.get("body", b"") for m in messages) if complete else None
    replayed = iter(messages)

    async def replay():
        return next(replayed, None) or await receive()

    return body, replay
