"""Look-alikes that the graph answers at once, answered on the server's event loop: `POST
/api/neighbors` (and its GET twin, the page's) of one reference, once the collection's graph
index is in memory and up to date (`Collection.answers_from_graph`), skips FastAPI's request
machinery and the hand-over to a worker thread; every other request, and any this path cannot
answer, goes on to the route, which answers it as before.

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
import re
from typing import Literal
from urllib.parse import parse_qsl

from ..api import DEFAULT_K, DEFAULT_METRIC
from ..errors import LookalikeError
from .errors import HTTPError
from .routes.neighbours import NeighborsQuery, find_neighbors
from .state import ViewerState

#: The largest k answered on the event loop: the walk then gathers up to 2k candidates
#: (efSearch 200 at most), still about a millisecond at 100,000 images.
QUICK_MAX_K = 100

_PATH = "/api/neighbors"
#: The GET twin's parameters answered here (the page sends these); any other goes to the route.
_GET_NAMES = {"ref", "k", "metric", "model", "include_references", "category", "approximate"}
_NUMBER = re.compile(r"[1-9][0-9]{0,18}")
_APPROXIMATE: dict[str | None, bool | Literal["hnsw"] | None] = {
    None: None, "true": True, "hnsw": "hnsw"}


class QuickNeighbours:
    """ASGI middleware in front of the routes (behind the request guard, guard.py)."""

    def __init__(self, app, state: ViewerState):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        query = None
        if scope["type"] == "http" and scope["path"] == _PATH:
            if scope["method"] == "POST" and _is_json(scope["headers"]):
                body, receive = await _read_body(receive)  # read again by the route if need be
                query = None if body is None else _posted(body)
            elif scope["method"] == "GET":
                query = _asked(scope["query_string"])
        response = None if query is None else self._answer(query)
        if response is None:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)

    def _answer(self, query: NeighborsQuery):
        """The route's answer to `query` if it can be given at once, else None."""
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


def _posted(body: bytes) -> NeighborsQuery | None:
    """The query of a POST, read as FastAPI reads it; None if it is not one (the route says
    why)."""
    try:
        return NeighborsQuery.model_validate(json.loads(body))
    except Exception:  # not JSON, or not a valid query
        return None


def _asked(query_string: bytes) -> NeighborsQuery | None:
    """The query of the GET twin (the page's), when it has one `ref` and only values that the
    route would read the same way (numbers without leading zeros, `true`, each name once);
    else None."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)  # as Starlette
    given = dict(pairs)
    if len(given) != len(pairs) or "ref" not in given or not given.keys() <= _GET_NAMES:
        return None
    ref, k = given["ref"], given.get("k", str(DEFAULT_K))
    approximate = given.get("approximate")
    if not (_NUMBER.fullmatch(ref) and _NUMBER.fullmatch(k)) \
            or given.get("include_references", "false") not in ("true", "false") \
            or approximate not in _APPROXIMATE:
        return None
    try:
        return NeighborsQuery(references=[int(ref)], k=int(k),
                              metric=given.get("metric", DEFAULT_METRIC),
                              model=given.get("model"),
                              include_references=given.get("include_references") == "true",
                              category=given.get("category"),
                              approximate=_APPROXIMATE[approximate], unlike=[], like=[],
                              refine=None, normalise=None, controls=None)
    except ValueError:  # out of range: the route says so
        return None


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
