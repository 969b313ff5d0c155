"""Approximate search: FAISS candidates, exact distances, kept in step with the collection."""

import numpy as np
import pytest

import lookalike
from lookalike.catalogue.store import ImageRow, Store
from lookalike.errors import LookalikeError
from lookalike.search.approximate import (
    NPROBE,
    ApproximateIndex,
    codes_bytes,
    ivf_lists,
    ivfpq_bytes,
    pq_bits,
    pq_parts,
    pq_usable,
    search,
)
from lookalike.search.engine import Situation, choose_method
from lookalike.search.exact import ExactIndex


def clustered(n=3000, d=32, clusters=30, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(clusters, d))) * 3
    noise = np.abs(rng.normal(size=(n, d)))
    return (centres[rng.integers(0, clusters, n)] + noise).astype(np.float32)


@pytest.mark.parametrize("kind", ["scan", "ivf"])
@pytest.mark.parametrize("metric", ["Cosine", "Euclidean", "Pearson", "Absolute Pearson",
                                    "Spearman", "Mahalanobis"])
def test_recall_against_exact_and_distances_are_exact(metric, kind):
    x = clustered()
    ids = np.arange(100, 100 + len(x), dtype=np.int64)
    hashes = np.array([int(i).to_bytes(16, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    approx = ApproximateIndex.build(ids, hashes, exact, metric, kind)
    approx.nprobe = 16
    hits = 0
    for q in range(0, 3000, 150):
        rows, dist = search(approx, exact, ids, x[[q]], 10, metric, exclude_rows=np.array([q]))
        want_rows, want = exact.search(x[[q]], 10, metric, exclude=np.array([q]))
        hits += len(set(rows) & set(want_rows))
        np.testing.assert_allclose(dist, exact.exact_scores(x[[q]], rows, metric))
        assert q not in rows and np.all(np.diff(dist) >= -1e-12)
    assert hits / (20 * 10) >= 0.9, hits


def test_sync_adds_removes_and_replaces_changed_vectors(tmp_path):
    x = clustered(500)
    ids = np.arange(500, dtype=np.int64)
    hashes = np.array([int(i).to_bytes(16, "little") for i in ids], dtype="S16")
    approx = ApproximateIndex.build(ids[:400], hashes[:400], ExactIndex(x[:400]), "Cosine", "scan")
    x2 = x.copy()
    x2[5] = x[450]                                   # image 5 now looks like image 450
    hashes2 = hashes.copy()
    hashes2[5] = b"changed".ljust(16, b"_")
    keep = np.r_[0:300, 350:500]                     # 300..349 vanished, 400..499 are new
    assert approx.sync(ids[keep], hashes2[keep], ExactIndex(x2[keep])) == 50 + 100 + 2
    assert approx.ntotal == len(keep)
    path = tmp_path / "a.index"
    approx.save(path)
    loaded = ApproximateIndex.load(path)
    assert np.array_equal(loaded.ids, ids[keep]) and loaded.ntotal == len(keep)
    found = loaded.candidates(x2[[5]], "Cosine", 3)
    assert {5, 450} <= set(found.tolist())


def test_collection_uses_faiss_on_request_and_keeps_the_saved_index_in_step(tmp_path):
    db = tmp_path / "c.db"
    x = clustered(600, d=16)
    with Store(db) as store:
        for i, v in enumerate(x):
            h = i.to_bytes(16, "little")
            store.write(
                [ImageRow(f"/p/{i}".encode(), f"/p/{i}", "/p", str(i), None, 1, 1, 1, 1, h)],
                [(h, "squeezenet", v)])
    col = lookalike.Collection.open(db)
    res = col.nearest(x[3], k=5, approximate="scan")
    assert res.paths[0] == "/p/3" and res.distances[0] < 1e-6
    assert (tmp_path / "c.db.faiss" / "squeezenet.cosine.scan.index").is_file()
    with Store(db) as store:
        h = b"new".ljust(16, b"_")
        store.write([ImageRow(b"/p/new", "/p/new", "/p", "new", None, 1, 1, 1, 1, h)],
                    [(h, "squeezenet", x[3] * 2)])
    res = col.nearest(x[3], k=2, approximate="scan")
    assert set(res.paths) == {"/p/3", "/p/new"}
    fresh = lookalike.Collection.open(db)          # another process: loads and syncs the file
    assert set(fresh.nearest(x[3], k=2, approximate="scan").paths) == {"/p/3", "/p/new"}
    with pytest.raises(lookalike.LookalikeError, match="always exact"):
        col.nearest(x[3], metric="manhattan", approximate=True)


@pytest.mark.parametrize("metric", ["Cosine", "Mahalanobis", "Absolute Pearson"])
def test_re_ranking_says_which_reference_each_row_is_nearest_to(metric):
    """Two references from different clusters pull different look-alikes; each row's
    reference is the one of the exact search, whose distance it carries."""
    x = clustered()
    ids = np.arange(len(x), dtype=np.int64)
    hashes = np.array([int(i).to_bytes(16, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    approx = ApproximateIndex.build(ids, hashes, exact, metric, "scan")
    farthest = int(np.argmax(lookalike.distances(x[[0]], x, metric, data=x)))
    refs = x[[0, farthest]]
    rows, dist, which = search(approx, exact, ids, refs, 40, metric, return_query=True)
    want_rows, want, want_which = exact.search(refs, 40, metric, return_query=True)
    common = np.isin(rows, want_rows)
    assert common.mean() >= 0.9
    position = {r: i for i, r in enumerate(want_rows)}
    assert [want_which[position[r]] for r in rows[common]] == list(which[common])
    per_ref = lookalike.distances(refs, x[rows], metric, data=x)
    np.testing.assert_allclose(per_ref[which, np.arange(len(rows))], dist, rtol=1e-6)
    assert set(which) == {0, 1}
    assert len(search(approx, exact, ids, refs, 5, metric)) == 2


# -- IVF-PQ: compressed codes for collections whose 8-bit codes would not fit -------------------

def mixtures(n=4000, d=64, seed=0):
    """Embedding-like rows: non-negative mixtures of three of 300 base rows, plus noise."""
    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(size=(300, d)))
    picks, weights = rng.integers(0, len(base), (n, 3)), rng.dirichlet([1, 1, 1], n)
    rows = np.einsum("nk,nkd->nd", weights, base[picks]) + rng.normal(0, 0.05, (n, d))
    return np.maximum(rows, 0).astype(np.float32)


def id_hashes(n):
    ids = np.arange(1, n + 1, dtype=np.int64)
    return ids, np.array([int(i).to_bytes(16, "little") for i in ids], dtype="S16")


def test_the_shape_of_the_pq_codes_follows_the_dimension_and_the_training_rows():
    assert [pq_parts(d) for d in (1280, 1024, 768, 512, 1000, 64, 97, 257)] == \
        [128, 128, 128, 128, 125, 64, 97, 1]       # the largest divisor up to 128
    assert [pq_usable(d) for d in (1280, 1000, 97, 20, 160, 257, 514, 262)] == \
        [True, True, True, True, True, False, False, False]   # 1, 2 and 2 parts: too few
    assert [pq_bits(n) for n in (20_000, 9_984, 9_983, 4_000, 78, 1)] == [8, 8, 7, 6, 1, 1]
    # 7x less memory than 8-bit codes at 10 million rows of 1280 (1.8 against 12.9 GB), and
    # under 300 MB a million (158 MB of codes measured, FAISS's table of 131 MB at 1,000 lists)
    assert ivfpq_bytes(10_000_000, 1280) * 7 < codes_bytes(10_000_000, 1280)
    assert 250e6 < ivfpq_bytes(1_000_000, 1280) < 300e6


@pytest.mark.parametrize("metric", ["Cosine", "Euclidean", "Absolute Pearson", "Spearman",
                                    "Mahalanobis"])
def test_ivfpq_finds_95_percent_of_the_exact_top_10_with_exact_distances(metric):
    x = mixtures()
    ids, hashes = id_hashes(len(x))
    exact = ExactIndex(x)
    approx = ApproximateIndex.build(ids, hashes, exact, metric, "ivfpq")
    ivf = approx.shards[0]
    assert (ivf.pq.M, ivf.pq.nbits, ivf.nlist) == (64, 6, ivf_lists(4000)) == (64, 6, 63)
    assert approx.nprobe == NPROBE and approx.storage == "pq"
    hits = 0
    for q in range(0, len(x), 100):
        rows, dist = search(approx, exact, ids, x[[q]], 10, metric, exclude_rows=np.array([q]))
        want_rows, want = exact.search(x[[q]], 10, metric, exclude=np.array([q]))
        hits += len(set(rows) & set(want_rows))
        np.testing.assert_allclose(dist, exact.exact_scores(x[[q]], rows, metric), rtol=1e-12)
        both = np.isin(rows, want_rows)                 # the same rows: the same distances
        np.testing.assert_allclose(dist[both], want[np.isin(want_rows, rows)], rtol=1e-9)
        assert q not in rows and np.all(np.diff(dist) >= -1e-12)
    assert hits / (40 * 10) >= 0.95, hits


def test_ivfpq_refuses_vectors_it_cannot_cut_into_enough_parts_and_the_policy_takes_ivf(
        tmp_path):
    x = mixtures(500, 257)                           # a user's model of 257 values: a prime
    ids, hashes = id_hashes(len(x))
    with pytest.raises(LookalikeError, match="257 values have no such cut .*'ivf'"):
        ApproximateIndex.build(ids, hashes, ExactIndex(x), "Cosine", "ivfpq")
    short = dict(free_memory=1_000)                  # not even IVF-PQ's codes would fit
    assert choose_method(None, Situation(1_000_000, 257, **short), "Cosine", 10) == "ivf"
    assert choose_method(None, Situation(1_000_000, 256, **short), "Cosine", 10) == "ivfpq"
    assert choose_method(True, Situation(1_000, 257, **short), "Cosine", 10) == "scan"
    with pytest.raises(LookalikeError, match="only 1\\)"):
        choose_method("ivfpq", Situation(1_000, 257), "Cosine", 10)
    names = [f"/v/{i:03d}.jpg" for i in range(len(x))]
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add_vectors(names, x, model="m")
        with pytest.raises(LookalikeError, match="^IVF-PQ cuts each vector"):
            col.nearest(names[0], k=5, approximate="ivfpq")
        assert col.nearest(names[0], k=5, approximate="ivf").method == "ivf"


def test_ivfpq_follows_adds_removals_and_changes_and_loads_as_saved(tmp_path):
    x = mixtures(3000)
    ids, hashes = id_hashes(3000)
    approx = ApproximateIndex.build(ids[:2500], hashes[:2500], ExactIndex(x[:2500]), "Cosine",
                                    "ivfpq")
    x2, hashes2 = x.copy(), hashes.copy()
    x2[10] = x[2900]                                   # image 11 now looks like image 2901
    hashes2[10] = b"changed".ljust(16, b"_")
    keep = np.r_[0:2000, 2100:3000]                    # 2001..2100 vanished, 2501..3000 are new
    assert approx.sync(ids[keep], hashes2[keep], ExactIndex(x2[keep])) == 100 + 500 + 2
    assert approx.ntotal == len(keep) and approx.kind == "ivfpq"
    queries = x2[[10, 2050, 2700]]
    found = approx.candidates(queries, "Cosine", 50)
    assert {11, 2901, 2701} <= set(found.tolist())     # changed and new images are found
    assert not set(found.tolist()) & set(range(2001, 2101))  # vanished ones never
    path = tmp_path / "m.cosine.ivfpq.index"
    approx.save(path)
    loaded = ApproximateIndex.load(path)
    assert loaded.kind == "ivfpq" and loaded.storage == "pq" and loaded.ntotal == len(keep)
    assert np.array_equal(loaded.ids, ids[keep])
    assert np.array_equal(loaded.candidates(queries, "Cosine", 50), found)


def test_a_collection_searches_with_ivfpq_on_request_and_keeps_it_in_step(tmp_path):
    db = tmp_path / "c.db"
    x = mixtures(3000)
    names = [f"/v/{i:05d}.jpg" for i in range(3000)]
    with lookalike.Collection.create(db) as col:
        col.add_vectors(names, x, model="m")
        exact = col.nearest(names[7], k=10, approximate=False)
        res = col.nearest(names[7], k=10, approximate="ivfpq")
        assert res.method == "ivfpq" and len(set(res.paths) & set(exact.paths)) >= 9
        np.testing.assert_allclose(res.distances, lookalike.distances(
            x[[7]], x[[names.index(p) for p in res.paths]], "cosine")[0], atol=1e-12)
        assert (db.parent / "c.db.faiss" / "m.cosine.ivfpq.index").is_file()
        col.store.remove(exact.ids[:3])
        col.add_vectors(["/v/new.jpg"], x[[7]] * 2, model="m")   # cosine distance 0 to names[7]
        after = col.nearest(names[7], k=10, approximate="ivfpq")
        assert after.paths[0] == "/v/new.jpg" and not set(after.ids) & set(exact.ids[:3])
    with lookalike.Collection.open(db) as col:     # another process: loads the saved index
        assert col.nearest(names[7], k=1, approximate="ivfpq").paths == ["/v/new.jpg"]
        assert col.engine._approx[("m", "cosine", "ivfpq")][1].ntotal == 3000 - 3 + 1
    with pytest.raises(lookalike.LookalikeError, match="'ivfpq'"):
        col.nearest(names[7], approximate="pq")
