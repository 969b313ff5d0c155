"""web/quick_neighbours.py: look-alikes that the graph answers at once are answered on the
server's event loop, byte for byte as the route answers them, follow every change of the
catalogue, and leave refusals and every other request to the route."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

import lookalike
from lookalike.search.engine import EXACT_BELOW
from lookalike.web import create_app
from test_graph_index import clustered, paths
from test_web_api import LiveServer

pytestmark = pytest.mark.slow  # a collection the graph serves: about 7 s in all

N = EXACT_BELOW + 500  # the policy's graph answers from here on


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served collection of N images whose graph the warm-up has built."""
    db = tmp_path_factory.mktemp("quick") / "c.db"
    vectors = clustered(N)
    with lookalike.Collection.create(db) as col:
        col.add_vectors(paths(N), vectors, model="m")
    app = create_app(db)
    live = LiveServer(app)
    deadline = time.monotonic() + 120
    while live.client.post("/api/neighbors", json={"references": [1]}).json()["method"] != "hnsw":
        assert time.monotonic() < deadline, "the warm-up did not build the graph"
        time.sleep(0.05)
    yield live, app.state.collection, db, vectors
    live.stop()


def ask(live, reference: int, **query) -> httpx.Response:
    return live.client.post("/api/neighbors", json={"references": [reference], **query})


def route(live, reference: int, **query) -> httpx.Response:
    """The route's answer: the GET twin with a parameter it ignores, which the quick path
    leaves to it."""
    params = {"ref": reference, "ignored": "yes",
              **{k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}}
    return live.client.get("/api/neighbors", params=params)


@pytest.mark.parametrize("query", [
    {}, {"k": 1}, {"k": 100, "include_references": True},
    {"metric": "cosine", "model": "m", "approximate": "hnsw"}])
def test_an_answer_given_on_the_event_loop_is_the_routes_byte_for_byte(site, query):
    live, col, _, _ = site
    assert col.answers_from_graph(query.get("model"), query.get("metric", "Cosine"),
                                  query.get("k", 10), query.get("approximate"))
    posted = ask(live, 123, **query)
    params = {"ref": 123, **{k: str(v).lower() if isinstance(v, bool) else v
                             for k, v in query.items()}}
    got = live.client.get("/api/neighbors", params=params)  # the page's way
    expected = route(live, 123, **query)
    assert posted.status_code == got.status_code == expected.status_code == 200
    assert posted.json()["method"] == "hnsw"
    assert len(posted.json()["neighbors"]) == query.get("k", 10)
    assert posted.content == got.content == expected.content
    for header in ("content-type", "content-length", "x-content-type-options",
                   "x-frame-options"):
        assert posted.headers[header] == got.headers[header] == expected.headers[header]


def test_refusals_and_other_requests_are_the_routes(site):
    live, col, _, _ = site
    missing = ask(live, 10**9)
    assert missing.status_code == 404
    assert missing.json() == {"error": "image 1000000000: no such image in the collection"}
    zero = ask(live, 1, k=0)
    assert zero.status_code == 422 and zero.json()["error"].startswith("k:")
    for body, kind in ((b"{", "application/json"), (b'{"references": [1]}', "text/plain")):
        answer = live.client.post("/api/neighbors", content=body, headers={"content-type": kind})
        assert answer.status_code == 422 and "error" in answer.json()
    unknown = ask(live, 1, metric="nonsense")
    assert unknown.status_code == 400 and "nonsense" in unknown.json()["error"]
    for target in ("/api/neighbors?ref=10000000000", "/api/neighbors?ref=1&k=0",
                   "/api/neighbors?ref=1&metric=nonsense", "/api/neighbors?ref=x",
                   "/api/neighbors?ref=99999999999999999999"):
        assert live.client.get(target).json() == route_answer(live, target)
    # The same values written otherwise (leading zeros, a name twice): the route reads them.
    same = live.client.get("/api/neighbors?ref=007&k=05&k=5")
    assert same.content == route(live, 7, k=5).content
    # Not quick (a large k, exact search, two references): the route answers as before.
    assert not col.answers_from_graph(k=None) and not col.answers_from_graph(approximate=False)
    assert len(ask(live, 1, k=150).json()["neighbors"]) == 150
    assert ask(live, 1, approximate=False).json()["method"] == "exact"
    both = live.client.post("/api/neighbors", json={"references": [1, 2], "k": 5}).json()
    assert [r["id"] for r in both["references"]] == [1, 2]


def route_answer(live, target: str) -> dict:
    return live.client.get(target + "&ignored=yes").json()


def test_an_image_added_changed_or_removed_shows_in_the_next_answer(site):
    live, col, db, vectors = site
    before = ask(live, 321, k=5).json()
    row = paths(N).index(before["references"][0]["path"])
    twin = "/new/twin.jpg"

    def neighbours() -> list[str]:
        posted = [n["path"] for n in ask(live, 321, k=5).json()["neighbors"]]
        got = live.client.get("/api/neighbors?ref=321&k=5").json()["neighbors"]
        assert [n["path"] for n in got] == posted
        return posted

    with lookalike.Collection.open(db) as other:  # as another process would write it
        other.add_vectors([twin], vectors[row] + 1e-4, model="m")
    assert neighbours()[0] == twin
    assert col.answers_from_graph(k=5)  # brought up to date by that search: quick again
    assert neighbours()[0] == twin
    with lookalike.Collection.open(db) as other:
        other.add_vectors([twin], -vectors[row], model="m")  # its vector replaced
    assert twin not in neighbours()
    with lookalike.Collection.open(db) as other:
        other.add_vectors([twin], vectors[row] + 1e-4, model="m")
    assert neighbours()[0] == twin
    with lookalike.Collection.open(db) as other:
        twin_id = other.store.find(twin.encode())["id"]
        other.store.remove([twin_id])
    assert neighbours() == [n["path"] for n in before["neighbors"]]


def test_simultaneous_requests_each_get_their_own_answer(site):
    live = site[0]
    references = list(range(1, 41))
    alone = {r: ask(live, r).content for r in references}

    def one(reference: int) -> bytes:
        return httpx.post(live.url + "/api/neighbors", json={"references": [reference]},
                          timeout=30).content

    with ThreadPoolExecutor(20) as pool:
        together = dict(zip(references, pool.map(one, references)))
    assert together == alone
    assert all(np.isfinite([n["distance"] for n in httpx.Response(200, content=body).json()[
        "neighbors"]]).all() for body in together.values())
