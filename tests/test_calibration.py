"""Calibration: how far the graph and the inverted files look, measured on the collection's own
images (search/calibration.py), and the policy passing over a graph that falls short."""

import numpy as np
import pytest

import lookalike
import lookalike.search.approximate as approximate
from lookalike.catalogue.paths import faiss_folder
from lookalike.search import calibration
from lookalike.search.approximate import GRAPH_EF_SEARCH, NPROBE, ApproximateIndex
from lookalike.search.calibration import (
    CALIBRATION_K,
    TARGET_RECALL,
    Calibration,
    calibrate,
    ladder,
    needs_calibration,
    true_neighbours,
)
from lookalike.search.engine import Situation, choose_method
from lookalike.search.exact import ExactIndex


def random_rows(n, dim=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def keyed(x):
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7     # image ids are not rows
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    return ids, hashes


@pytest.fixture
def weak_graph(monkeypatch):
    """Graphs of few links, built with a short walk: over random 32-d rows they need a much
    longer search walk than the default one, or never reach the recall sought."""
    def build(links, ef_construction, x):
        monkeypatch.setattr(approximate, "GRAPH_M", links)
        monkeypatch.setattr(approximate, "GRAPH_EF_CONSTRUCTION", ef_construction)
        ids, hashes = keyed(x)
        exact = ExactIndex(x)
        return ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw"), exact, ids
    return build


def recall_at(graph, exact, ids, rows, reach):
    """Recall@10 of `rows` as queries (each left out of its own answer) at efSearch/nprobe
    `reach`, measured with the exact search rather than calibration's own code."""
    queries = graph.transform.queries(exact.rows(rows))
    found = graph.rows_per_query(queries, graph.candidate_count(CALIBRATION_K) + 1, ids, reach)
    hits = 0
    for r, f in zip(rows, found):
        truth, _ = exact.search(exact.rows(np.array([r]))[0], CALIBRATION_K + 1, "cosine")
        hits += len(set(truth[truth != r][:CALIBRATION_K]) & set(f[f != r]))
    return hits / (CALIBRATION_K * len(rows))


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "pearson"])
def test_the_true_neighbours_are_the_exact_searchs(metric):
    """Each row's exact 10 nearest other rows, by the index's metric, chunk by chunk."""
    x = random_rows(900, 24, seed=3) + 1.0
    ids, hashes = keyed(x)
    exact = ExactIndex(x)
    graph = ApproximateIndex.build(ids, hashes, exact, metric, "hnsw")
    rows = np.array([0, 5, 450, 899])
    original = calibration._CHUNK
    try:
        calibration._CHUNK = 128  # several chunks, a query's own row in each
        found = true_neighbours(graph, exact, rows, 10)
    finally:
        calibration._CHUNK = original
    for r, near in zip(rows, found):
        truth, _ = exact.search(x[r], 11, metric)
        assert r not in near
        assert near.tolist() == truth[truth != r][:10].tolist()


def test_a_good_graph_keeps_its_default_walk(weak_graph):
    graph, exact, ids = weak_graph(32, 128, random_rows(3_000))
    measured = calibrate(graph, exact, ids)
    assert measured == graph.calibration
    assert measured.reach == GRAPH_EF_SEARCH == graph.ef_search
    assert measured.met and measured.recall >= TARGET_RECALL
    assert measured.rows == 3_000 and measured.queries == min(calibration.CALIBRATION_QUERIES,
                                                                3_000)


def test_a_weaker_graph_is_given_the_longer_walk_it_needs(weak_graph):
    """Eight links a node, built with efConstruction 16: the default walk finds well under 99%
    of the neighbours (0.86 measured); calibration walks longer until it finds them."""
    graph, exact, ids = weak_graph(8, 16, random_rows(4_000))
    rows = np.arange(0, 4_000, 50)
    assert recall_at(graph, exact, ids, rows, GRAPH_EF_SEARCH) < 0.95
    measured = calibrate(graph, exact, ids)
    assert measured.met and measured.reach > GRAPH_EF_SEARCH
    assert graph.ef_search == measured.reach
    assert recall_at(graph, exact, ids, rows, measured.reach) >= 0.97  # other queries too
    earlier = [r for r in ladder(graph) if r < measured.reach][-1]
    assert recall_at(graph, exact, ids, np.sort(np.random.default_rng(0).choice(
        4_000, calibration.CALIBRATION_QUERIES, replace=False)), earlier) < TARGET_RECALL


def test_a_graph_that_never_gets_there_says_so(weak_graph):
    graph, exact, ids = weak_graph(4, 8, random_rows(4_000))
    measured = calibrate(graph, exact, ids)
    assert not measured.met and measured.recall < 0.95
    assert measured.reach == max(ladder(graph)) == graph.ef_search
    assert measured.describe("hnsw") == (
        f"efSearch 512: recall@10 {measured.recall:.3f} for 300 of its own 4,000, short of "
        "the 0.99 sought")


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_the_inverted_files_are_calibrated_by_nprobe(kind):
    x = random_rows(6_000, 16, seed=1)
    ids, hashes = keyed(x)
    exact = ExactIndex(x)
    ivf = ApproximateIndex.build(ids, hashes, exact, "cosine", kind)
    assert ivf.nprobe == NPROBE
    reaches = ladder(ivf)
    assert reaches[0] < NPROBE and reaches[-1] <= ivf.shards[0].nlist
    measured = calibrate(ivf, exact, ids)
    assert measured.met and ivf.nprobe == measured.reach in reaches
    assert ladder(ApproximateIndex.build(ids, hashes, exact, "cosine", "scan")) == ()


def test_the_calibration_is_saved_with_the_index_and_read_alone(weak_graph, tmp_path):
    graph, exact, ids = weak_graph(6, 16, random_rows(2_000))
    path = tmp_path / "m.cosine.hnsw.index"
    assert needs_calibration(graph, 2_000)  # never measured
    measured = calibrate(graph, exact, ids)
    graph.save(path)
    assert ApproximateIndex.saved_calibration(path) == measured
    loaded = ApproximateIndex.load(path)
    assert loaded.calibration == measured and loaded.ef_search == measured.reach
    assert not needs_calibration(loaded, 2_000)
    assert ApproximateIndex.saved_calibration(tmp_path / "missing") is None


def test_a_graph_is_due_again_once_it_will_have_grown_by_a_quarter():
    x = random_rows(2_600, 16)
    ids, hashes = keyed(x)
    graph = ApproximateIndex.build(ids[:2_000], hashes[:2_000], ExactIndex(x[:2_000]),
                                   "cosine", "hnsw")
    calibrate(graph, ExactIndex(x[:2_000]), ids[:2_000])
    assert not needs_calibration(graph, 2_400)      # 20% more
    assert needs_calibration(graph, 2_600)          # 30% more


@pytest.mark.parametrize("situation, expected", [
    (Situation(1_000_000, graph_built=True, graph_short=True), "ivf"),
    (Situation(1_000_000, graph_built=True, graph_short=True, free_memory=1 << 30), "ivfpq"),
    (Situation(100_000, graph_built=True, graph_short=True), "exact"),
    (Situation(100_000, graph_built=True, graph_short=False), "hnsw"),
])
def test_the_policy_passes_over_a_graph_that_falls_short(situation, expected):
    assert choose_method(None, situation, "Cosine", 10) == expected
    assert choose_method("hnsw", situation, "Cosine", 10) == "hnsw"  # asked for: given


@pytest.mark.slow
def test_a_collection_calibrates_its_graph_and_searches_the_inverted_file_instead(
        tmp_path, monkeypatch):
    """End to end on a collection: the graph built for it is calibrated and saved with its
    calibration; when that falls short, the default search of a collection past
    AUTO_THRESHOLD takes the inverted file (built by the warm-up's prepare_graph), whose answers
    are the exact ones."""
    import lookalike.search.engine as engine

    monkeypatch.setattr(engine, "AUTO_THRESHOLD", 1_000)
    monkeypatch.setattr(engine, "EXACT_BELOW", 500)
    monkeypatch.setattr(calibration, "TARGET_RECALL", 1.01)  # no graph gets there
    x = random_rows(3_000, 16, seed=2)
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add_vectors([f"/v/{i:05d}.jpg" for i in range(len(x))], x, model="m")
        assert col.prepare_graph(model="m")
        folder = faiss_folder(col.store.path)
        saved = ApproximateIndex.saved_calibration(folder / "m.cosine.hnsw.index")
        assert saved is not None and not saved.met
        assert (folder / "m.cosine.ivf.index").is_file()
        result = col.nearest("/v/00007.jpg", k=5, model="m")
        assert result.method == "ivf"
        exact = col.nearest("/v/00007.jpg", k=5, model="m", approximate=False)
        assert [r["path"] for r in result.rows] == [r["path"] for r in exact.rows]
        np.testing.assert_allclose(result.distances, exact.distances, rtol=1e-9)


def test_calibration_round_trips_as_a_dict():
    c = Calibration(96, 0.995, 1_000_000, 300)
    assert Calibration.from_dict(c.to_dict()) == c and Calibration.from_dict(None) is None
    assert c.met and c.describe("hnsw") == (
        "efSearch 96: recall@10 0.995 for 300 of its own 1,000,000")
    held = Calibration(96, 0.995, 1_000_000, 300, held_out=True)
    assert Calibration.from_dict(held.to_dict()) == held
    assert held.describe("hnsw").endswith("for 300 new images held out of its 1,000,000")
    assert Calibration.from_dict({"reach": 8, "recall": 1, "rows": 9, "queries": 3}).held_out \
        is False  # saved before held-out queries


def test_the_search_plan_says_what_answers_and_why(tmp_path, monkeypatch):
    """`Collection.search_plan` and `lookalike models --db`: exact for a small collection; the
    graph with its calibration once built; the inverted file, naming the graph's shortfall,
    when the graph falls short."""
    import subprocess
    import sys

    import lookalike.search.engine as engine

    monkeypatch.setattr(engine, "AUTO_THRESHOLD", 1_000)
    monkeypatch.setattr(engine, "EXACT_BELOW", 500)
    x = random_rows(1_500, 16, seed=4)
    db = tmp_path / "c.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors([f"/v/{i:05d}.jpg" for i in range(len(x))], x, model="m")
        plan = col.search_plan("m")
        assert plan.method == "hnsw" and plan.indexes == {}
        assert plan.describe() == "the graph index (HNSW), built on the first search"
        col.prepare_graph(model="m")
        plan = col.search_plan("m")
        assert plan.method == "hnsw" and plan.indexes["hnsw"].met
        assert plan.describe().startswith("the graph index (HNSW), efSearch 64: recall@10 ")
        assert plan.describe().endswith(" for 300 new images held out of its 1,500")
        short = Calibration(512, 0.9, 1_500, 300)
        col.engine._approx[("m", "cosine", "hnsw")][1].calibrated(short)
        plan = col.search_plan("m")
        assert plan.method == "ivf"
        assert "(the graph falls short: efSearch 512: recall@10 0.900" in plan.describe()
    with lookalike.Collection.open(db) as col:  # the saved (met) calibration
        assert col.search_plan("m", metric="Manhattan").describe() == (
            "exact search (the metric has no approximate search)")
    out = subprocess.run([sys.executable, "-m", "lookalike", "models", "--db", str(db)],
                         capture_output=True, text=True, check=True).stdout
    # In a fresh process the thresholds are the real ones: 1,500 images are searched exactly.
    assert "m: a top-10 cosine search takes exact search (under 20,000 images)" in out


def test_the_queries_are_new_images_held_out_of_the_index_then_added(tmp_path, monkeypatch):
    """A collection's graph is built without 300 of its images, measured on them (queries it
    has never seen, as an upload is), then holds them; when the collection grows by more than a
    quarter the graph is measured again on 300 of the new images, which it then holds too."""
    import lookalike.search.engine as engine

    monkeypatch.setattr(engine, "EXACT_BELOW", 500)
    x = random_rows(2_600, 16, seed=5)
    key = ("m", "cosine", "hnsw")
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add_vectors([f"/v/{i:05d}.jpg" for i in range(2_000)], x[:2_000], model="m")
        col.prepare_graph(model="m")
        graph = col.engine._approx[key][1]
        first = graph.calibration
        assert first.held_out and first.queries == 300 and first.rows == 2_000
        assert graph.ntotal == 2_000 and len(graph.ids) == 2_000  # the held-out rows added
        ids, exact = col.engine.index("m")
        everyone = graph.rows_per_query(graph.transform.queries(x[:2_000]), 1, ids,
                                        graph.ef_search)[:, 0]
        assert (everyone == np.arange(2_000)).mean() > 0.99  # each image finds itself
        col.add_vectors([f"/v/{i:05d}.jpg" for i in range(2_000, 2_600)], x[2_000:], model="m")
        col.nearest("/v/00003.jpg", k=5, model="m", approximate="hnsw")
        graph = col.engine._approx[key][1]
        again = graph.calibration
        assert again != first and again.held_out and again.rows == 2_600
        assert again.queries == min(300, 600 // 4) and graph.ntotal == 2_600


def test_the_search_plan_reads_counts_not_the_vectors(tmp_path):
    """`models --db` asks every model's plan: that loads or builds no search matrix (a minute
    per model at a million images)."""
    from lookalike.catalogue.paths import vectors_folder

    db = tmp_path / "c.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors([f"/v/{i:03d}.jpg" for i in range(40)], random_rows(40, 8), model="m")
    with lookalike.Collection.open(db) as col:
        assert col.search_plan("m").describe() == "exact search (under 20,000 images)"
        assert not list(vectors_folder(col.store.path).glob("*.npy"))
        col.nearest("/v/001.jpg", k=3, model="m")  # a search does build it
        assert list(vectors_folder(col.store.path).glob("*.npy"))
