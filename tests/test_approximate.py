"""Approximate search: FAISS candidates, exact distances, kept in step with the collection."""

import numpy as np
import pytest

import lookalike
from lookalike.catalogue.store import ImageRow, Store
from lookalike.search.approximate import ApproximateIndex, search
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
