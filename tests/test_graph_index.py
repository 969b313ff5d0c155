"""The graph index (HNSW) beside IVF: the policy that picks a search, an index that follows adds
and removals, and a server that answers exactly while it builds the graph."""

import time

import numpy as np
import pytest

import lookalike
from lookalike.catalogue.paths import faiss_folder
from lookalike.errors import LookalikeError
from lookalike.search.approximate import (
    AUTO_THRESHOLD,
    GRAPH_EF_CONSTRUCTION,
    GRAPH_EF_SEARCH,
    GRAPH_STORAGE,
    GRAPH_STORAGES,
    ApproximateIndex,
    codes_bytes,
    graph_bytes,
    search as approximate_search,
)
from lookalike.search.engine import EXACT_BELOW, Situation, choose_method
from lookalike.search.exact import ExactIndex
from lookalike.search.graph_search import GraphRequests, search_each
from test_web_api import serve

GB = 1 << 30


# -- the policy, on constructed collections ----------------------------------------------------

@pytest.mark.parametrize("situation, expected", [
    (Situation(5_000), "exact"),
    (Situation(5_000, graph_built=True), "exact"),          # small: exact is about 2 ms
    (Situation(100_000), "exact"),                          # no graph yet: not built for it
    (Situation(100_000, graph_built=True), "hnsw"),         # built (a server's warm-up)
    (Situation(1_000_000, free_memory=64 * GB), "hnsw"),    # large: worth building
    (Situation(1_000_000, free_memory=None), "hnsw"),       # memory unknown: taken as plenty
    (Situation(1_000_000, free_memory=3 * GB), "ivf"),      # the graph would not fit twice
    (Situation(1_000_000, free_memory=2 * GB), "ivfpq"),    # nor IVF's 8-bit codes (1.3 GB)
    (Situation(1_000_000, graph_built=True, free_memory=1 * GB), "hnsw"),  # built: use it
    (Situation(10_000_000, free_memory=64 * GB), "hnsw"),   # the graph: about 29 GB
    (Situation(10_000_000, free_memory=40 * GB), "ivf"),    # 8-bit codes: about 13 GB
    (Situation(10_000_000, free_memory=16 * GB), "ivfpq"),  # IVF-PQ: about 1.8 GB
    (Situation(10_000_000, free_memory=24 * GB), "ivfpq"),  # 8-bit codes would not fit twice
    (Situation(10_000_000, 1000, free_memory=24 * GB), "ivf"),  # those of 1000-d rows do
])
def test_the_default_policy_weighs_size_memory_and_what_is_built(situation, expected):
    assert choose_method(None, situation, "Cosine", 10) == expected


def test_memory_is_measured_against_the_graphs_size():
    assert 250 * 2**20 < graph_bytes(AUTO_THRESHOLD, 1280, "8bit") < 400 * 2**20  # ~1,600 B a row
    assert graph_bytes(AUTO_THRESHOLD, 1280, "fp16") == graph_bytes(
        AUTO_THRESHOLD, 1280, "8bit") + AUTO_THRESHOLD * 1280  # a second byte per value
    need = graph_bytes(AUTO_THRESHOLD, 1280)
    assert choose_method(None, Situation(AUTO_THRESHOLD, 1280, False, 2 * need), "Cosine",
                         10) == "hnsw"
    assert choose_method(None, Situation(AUTO_THRESHOLD, 1280, False, 2 * need - 1), "Cosine",
                         10) == "ivf"
    codes = codes_bytes(AUTO_THRESHOLD, 1280)                 # IVF's 8-bit codes, 1,288 B a row
    assert 1280 * AUTO_THRESHOLD < codes < 1300 * AUTO_THRESHOLD
    assert choose_method(None, Situation(AUTO_THRESHOLD, 1280, False, 2 * codes), "Cosine",
                         10) == "ivf"
    assert choose_method(None, Situation(AUTO_THRESHOLD, 1280, False, 2 * codes - 1), "Cosine",
                         10) == "ivfpq"


def test_what_the_caller_asks_for_comes_first():
    small, built = Situation(1_000), Situation(EXACT_BELOW, graph_built=True)
    assert choose_method(True, small, "Cosine", 10) == "scan"
    assert choose_method(True, Situation(1_000, graph_built=True), "Cosine", 10) == "hnsw"
    assert choose_method("hnsw", small, "Cosine", 10) == "hnsw"
    assert choose_method("ivf", built, "Cosine", 10) == "ivf"
    assert choose_method("ivfpq", built, "Cosine", 10) == "ivfpq"
    assert choose_method(True, Situation(1_000, free_memory=1_000), "Cosine", 10) == "ivfpq"
    assert choose_method(False, built, "Cosine", 10) == "exact"
    assert choose_method(None, built, "Cosine", None) == "exact"            # k=None
    assert choose_method(None, built, "Cosine", 10, filtered=True) == "exact"
    assert choose_method(None, built, "Manhattan", 10) == "exact"
    with pytest.raises(LookalikeError, match="Manhattan has no approximate search"):
        choose_method("hnsw", built, "Manhattan", 10)
    with pytest.raises(LookalikeError, match="'hnsw'"):
        choose_method("graph", built, "Cosine", 10)
    with pytest.raises(LookalikeError, match="Manhattan has no approximate search"):
        choose_method("ivfpq", built, "Manhattan", 10)


# -- the index follows the collection ----------------------------------------------------------

def clustered(n, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 10 + 1, dim))
    return (centres[np.arange(n) // 10] + 0.1 * rng.normal(size=(n, dim))).astype(np.float32)


def paths(n, start=0):
    return [f"/v/{i:06d}.jpg" for i in range(start, start + n)]


def test_the_graph_follows_adds_and_removals_and_is_kept_beside_the_database(tmp_path):
    db = tmp_path / "c.db"
    vectors = clustered(3_000)
    with lookalike.Collection.create(db) as col:
        col.add_vectors(paths(3_000), vectors, model="m")
        ref = paths(1)[0]
        exact = col.nearest(ref, k=10, approximate=False)
        graph = col.nearest(ref, k=10, approximate="hnsw")
        assert graph.method == "hnsw" and exact.method == "exact"
        assert graph.paths == exact.paths
        np.testing.assert_array_equal(graph.distances, exact.distances)  # re-scored exactly
        saved = faiss_folder(db) / "m.cosine.hnsw.index"
        assert saved.is_file()
        # Removed images are tombstones, never returned; added ones are found.
        gone = exact.ids[:3]
        col.store.remove(gone)
        after = col.nearest(ref, k=10, approximate="hnsw")
        assert not set(after.ids) & set(gone)
        assert after.paths == col.nearest(ref, k=10, approximate=False).paths
        col.add_vectors(paths(2, start=10_000), vectors[:1].repeat(2, 0) + 0.001, model="m")
        near = col.nearest(ref, k=2, approximate="hnsw")
        assert near.paths == paths(2, start=10_000)
        approx = col.engine._approx[("m", "cosine", "hnsw")][1]
        assert approx.tombstones == 3 and approx.ntotal == 3_002
    # Another process loads it (no rebuild: the same labels, tombstones included).
    with lookalike.Collection.open(db) as col:
        assert col.nearest(ref, k=2, approximate="hnsw").paths == paths(2, start=10_000)
        assert col.engine._approx[("m", "cosine", "hnsw")][1].tombstones == 3
        # Removing over a quarter of the graph rebuilds it without tombstones.
        ids = col.images(limit=None)[1]
        col.store.remove([r["id"] for r in ids[: len(ids) // 3]])
        col.nearest(ids[-1]["path"], k=5, approximate="hnsw")
        rebuilt = col.engine._approx[("m", "cosine", "hnsw")][1]
        assert rebuilt.tombstones == 0 and rebuilt.ntotal == len(col)


# -- a server answers exactly while the graph is built -----------------------------------------

@pytest.fixture(scope="module")
def large(tmp_path_factory):
    db = tmp_path_factory.mktemp("graph") / "c.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors(paths(EXACT_BELOW + 1_000), clustered(EXACT_BELOW + 1_000), model="m")
    return db


def test_serve_builds_the_graph_in_the_background(large):
    with lookalike.Collection.open(large) as col:
        first = col.images(limit=1)[1][0]["id"]
    live = serve(large)
    try:
        methods = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answer = live.client.post("/api/neighbors", json={"references": [first], "k": 10})
            methods.append(answer.json()["method"])
            if methods[-1] == "hnsw":
                break
            time.sleep(0.05)
        assert methods[-1] == "hnsw" and set(methods[:-1]) <= {"exact"}
    finally:
        live.stop()


def test_exact_answers_while_the_graph_is_built_and_the_graph_after(large):
    with lookalike.Collection.open(large) as col:
        ref = paths(1)[0]
        key = ("m", "cosine", "hnsw")
        with col.engine._lock(key):  # what a build in progress holds
            assert col.nearest(ref, k=10).method == "exact"
        assert col.prepare_graph() is True
        answer = col.nearest(ref, k=10)
        assert answer.method == "hnsw"
        assert answer.paths == col.nearest(ref, k=10, approximate=False).paths


# -- the graph's parameters --------------------------------------------------------------------

def mixtures(rng, base, n):
    """Rows as benchmarks/search.py makes them: non-negative mixtures of three base rows."""
    picks, weights = rng.integers(0, len(base), (n, 3)), rng.dirichlet([1, 1, 1], n)
    rows = np.einsum("nk,nkd->nd", weights, base[picks]) + rng.normal(0, 0.05, (n, base.shape[1]))
    return np.maximum(rows, 0).astype(np.float32)


@pytest.mark.slow
def test_the_graphs_defaults_find_99_percent_of_the_true_neighbours():
    """With GRAPH_EF_CONSTRUCTION, GRAPH_EF_SEARCH and the candidates re-scored by default,
    the graph finds >= 99% of the exact top-10 of embedding-like vectors; a sixth of that
    search effort with only k candidates re-scored (the 8-bit codes misorder near ties)
    finds fewer."""
    rng = np.random.default_rng(1)
    base = np.abs(rng.normal(size=(300, 64)))
    x = mixtures(rng, base, 5_000)
    ids = np.arange(len(x), dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    graph = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw")
    assert graph.shards[0].hnsw.efConstruction == GRAPH_EF_CONSTRUCTION
    assert graph.ef_search == GRAPH_EF_SEARCH
    queries = mixtures(rng, base, 100)
    truth = [set(exact.search(q, 10, "cosine")[0]) for q in queries]

    def recall(candidates=None):
        return np.mean([len(set(approximate_search(graph, exact, ids, q[None], 10, "cosine",
                                                   candidates=candidates)[0]) & t) / 10
                        for q, t in zip(queries, truth)])
    best = recall()
    assert best >= 0.99
    graph.ef_search = GRAPH_EF_SEARCH // 6
    assert recall(candidates=10) < best


@pytest.mark.parametrize("storage", list(GRAPH_STORAGES))
def test_each_storage_of_the_graph_finds_the_exact_neighbours_with_exact_distances(storage):
    """8-bit codes, fp16 and float32 rows: the graph only chooses candidates, re-scored
    exactly, so each finds the exact top 10 of well separated clusters at its own efSearch."""
    x = clustered(1_500)
    ids = np.arange(len(x), dtype=np.int64) + 100
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    graph = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw", storage=storage)
    assert graph.storage == storage and graph.ef_search == GRAPH_STORAGES[storage][1]
    bytes_per_value = {"8bit": 1, "fp16": 2, "float32": 4}[storage]
    assert graph.shards[0].storage.sa_code_size() == bytes_per_value * x.shape[1]
    queries = x[::100] + 0.01
    for (rows, dist, _), q in zip(search_each(graph, exact, ids, queries, 10, "cosine"),
                                  queries):
        truth_rows, truth_dist = exact.search(q, 10, "cosine")
        assert rows.tolist() == truth_rows.tolist()
        np.testing.assert_array_equal(dist, truth_dist)


def test_a_graph_saved_before_its_storage_was_recorded_loads_as_8_bit(tmp_path):
    """Graphs saved by earlier versions are 8-bit and say nothing of it: they load as 8-bit
    (searched with the 8-bit efSearch), and are kept rather than rebuilt."""
    import json

    x = clustered(300)
    ids = np.arange(len(x), dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    old = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw", storage="8bit")
    path = tmp_path / "m.cosine.hnsw.index"
    old.save(path)
    with np.load(path) as saved:  # the metadata as it was written before
        extra = {k: saved[k] for k in saved.files}
    meta = json.loads(str(extra.pop("meta")))
    del meta["storage"]
    with open(path, "wb") as fh:
        np.savez(fh, meta=json.dumps(meta), **extra)
    loaded = ApproximateIndex.load(path)
    assert loaded is not None and loaded.storage == "8bit" != GRAPH_STORAGE
    assert loaded.ef_search == GRAPH_STORAGES["8bit"][1]
    assert search_each(loaded, exact, ids, x[:1], 5, "cosine")[0][0][0] == 0
    fresh = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw")
    fresh.save(path)
    assert ApproximateIndex.load(path).storage == GRAPH_STORAGE


def test_the_graph_counts_its_tombstones_once():
    """The tombstone count is kept (not recounted per search) and follows removals."""
    ids = np.arange(200, dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(clustered(200))
    graph = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw")
    assert graph.tombstones == 0 and not graph.stale
    graph.sync(ids[10:], hashes[10:], ExactIndex(exact.matrix[10:]))
    assert graph.tombstones == 10 and not graph.stale
    assert not set(approximate_search(graph, exact, ids, exact.matrix[:3], 10, "cosine")[0]) \
        & set(range(10))
    graph.sync(ids[60:], hashes[60:], ExactIndex(exact.matrix[60:]))
    assert graph.tombstones == 60 and graph.stale  # over a quarter of 200


def test_excluded_ids_are_looked_up_without_scanning_every_id():
    from lookalike.search.engine import _rows_of

    ids = np.array([2, 5, 9, 14], dtype=np.int64)
    assert _rows_of(ids, np.array([14, 3, 2, 2, 99, 0])).tolist() == [0, 3]
    assert _rows_of(ids, np.array([], dtype=np.int64)).tolist() == []
    assert _rows_of(np.array([], dtype=np.int64), np.array([1])).tolist() == []


# -- many queries at once ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph():
    """A graph over 2,000 clustered rows whose image ids are not their rows."""
    x = clustered(2_000)
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    return ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw"), exact, ids


@pytest.mark.parametrize("metric", ["Cosine", "Euclidean"])
def test_a_batch_of_graph_searches_answers_each_query_as_it_would_be_answered_alone(graph,
                                                                                     metric):
    approx, exact, ids = graph
    queries = exact.matrix[::150] + 0.01
    ks = [1 + i % 12 for i in range(len(queries))]
    # A few rows left out (a request's references), or many (compared otherwise).
    excludes = [None if i % 3 else np.arange(i, i + (5 if i % 2 else 40))
                for i in range(len(queries))]
    batch = search_each(approx, exact, ids, queries, ks, metric, excludes)
    for q, k, skip, (rows, dist, which) in zip(queries, ks, excludes, batch):
        alone_rows, alone_dist = approximate_search(approx, exact, ids, q[None], k, metric,
                                                    exclude_rows=skip)
        assert rows.tolist() == alone_rows.tolist() and len(rows) == k
        np.testing.assert_array_equal(dist, alone_dist)  # the same exact re-scoring
        assert which.tolist() == [0] * k
        assert skip is None or not set(rows) & set(skip)


def test_a_batch_walked_on_one_thread_answers_as_on_faiss_threads_and_leaves_them_set(graph):
    import faiss

    approx, exact, ids = graph
    queries = exact.matrix[::100] + 0.01  # 20 queries: FAISS's threads walk them by default
    before = faiss.omp_get_max_threads()
    one = search_each(approx, exact, ids, queries, 10, "cosine", threads=1)
    assert faiss.omp_get_max_threads() == before
    for (rows, dist, _), (rows2, dist2, _) in zip(one, search_each(approx, exact, ids, queries,
                                                                   10, "cosine")):
        assert rows.tolist() == rows2.tolist()
        np.testing.assert_array_equal(dist, dist2)


def test_a_batch_skips_tombstones_and_follows_the_collections_rows():
    exact = ExactIndex(clustered(600))
    ids = np.arange(600, dtype=np.int64) * 2

    def hashes(some):
        return np.array([int(i).to_bytes(8, "little") for i in some], dtype="S16")
    approx = ApproximateIndex.build(ids, hashes(ids), exact, "cosine", "hnsw")
    kept = np.r_[0:100, 200:600]   # ids of rows 100-199 removed: tombstones
    fewer_ids, fewer = ids[kept], ExactIndex(exact.matrix[kept])
    approx.sync(fewer_ids, hashes(fewer_ids), fewer)
    assert approx.tombstones == 100
    rows, dist, _ = search_each(approx, fewer, fewer_ids, exact.matrix[[150]], 10, "cosine")[0]
    truth_rows, truth_dist = fewer.search(exact.matrix[150], 10, "cosine")
    assert rows.tolist() == truth_rows.tolist()   # rows of the smaller matrix, none removed
    np.testing.assert_array_equal(dist, truth_dist)


def test_simultaneous_single_searches_each_get_their_own_answer(graph):
    """A server's threads search at once; merged or not, each caller gets the answer it
    would have had alone, and a bad query fails only its own caller."""
    from concurrent.futures import ThreadPoolExecutor

    approx, exact, ids = graph
    requests = GraphRequests()
    queries = exact.matrix[::40] + 0.01

    def one(i):
        return requests.search(approx, exact, ids, queries[i], 5, "cosine")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(queries))))
        bad = pool.submit(requests.search, approx, exact, ids, queries[0][:3], 5, "cosine")
        with pytest.raises(ValueError, match="3"):
            bad.result()
    for q, (rows, dist, _) in zip(queries, answers):
        alone_rows, alone_dist = approximate_search(approx, exact, ids, q[None], 5, "cosine")
        assert rows.tolist() == alone_rows.tolist()
        np.testing.assert_array_equal(dist, alone_dist)


def test_a_large_graph_is_built_and_grown_with_the_longer_walk(monkeypatch):
    """From GRAPH_LARGE rows efConstruction is GRAPH_EF_CONSTRUCTION_LARGE: for a graph built
    that large, and for one that grows past it (its later rows are linked with the longer
    walk; the earlier keep theirs)."""
    import lookalike.search.approximate as approximate

    monkeypatch.setattr(approximate, "GRAPH_LARGE", 1_000)
    x = clustered(1_500)
    ids = np.arange(len(x), dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    small = ApproximateIndex.build(ids[:800], hashes[:800], ExactIndex(x[:800]), "cosine", "hnsw")
    assert small.shards[0].hnsw.efConstruction == GRAPH_EF_CONSTRUCTION
    small.sync(ids[:1_200], hashes[:1_200], ExactIndex(x[:1_200]))
    assert small.shards[0].hnsw.efConstruction == approximate.GRAPH_EF_CONSTRUCTION_LARGE
    large = ApproximateIndex.build(ids, hashes, ExactIndex(x), "cosine", "hnsw")
    assert large.shards[0].hnsw.efConstruction == approximate.GRAPH_EF_CONSTRUCTION_LARGE > 128
