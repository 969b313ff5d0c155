"""Every row's k nearest neighbours at once (search/knn_graph.py), checked against the full
cosine matrix of small generated sets: the exact method gives the same neighbours and
distances, the inverted file finds nearly all of them with exact distances."""

import numpy as np
import pytest

from lookalike.search import knn_graph
from lookalike.search.knn_graph import kneighbors


def clustered(n: int, dim: int = 48, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Non-negative rows around `clusters` centres, as pooled image features are."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 1.0, (clusters, dim))
    rows = centres[rng.integers(0, clusters, n)] + rng.normal(0, 0.25, (n, dim))
    return np.maximum(rows, 0).astype(np.float32)


def true_neighbours(queries: np.ndarray, among: np.ndarray | None, k: int):
    """(distances, rows) from the whole cosine matrix, each row left out of its own."""
    def unit(m):
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    sims = unit(queries.astype(np.float64)) @ unit(
        (queries if among is None else among).astype(np.float64)).T
    if among is None:
        np.fill_diagonal(sims, -np.inf)
    rows = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return 1 - np.take_along_axis(sims, rows, axis=1), rows


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_exact_is_the_full_matrix_without_it():
    x = clustered(2000)
    want_d, want_rows = true_neighbours(x, None, 16)
    d, rows = kneighbors(x, k=16, method="exact")
    assert rows.shape == (2000, 16) and d.dtype == np.float32
    assert recall(rows, want_rows) > 0.999  # float32 may swap neighbours tied to 1e-7
    assert np.allclose(d, want_d, atol=1e-5)
    assert not (rows == np.arange(2000)[:, None]).any()  # nobody is its own neighbour
    assert (np.diff(d, axis=1) >= 0).all()  # nearest first


def test_exact_across_two_matrices_and_in_blocks(monkeypatch):
    x, y = clustered(700, seed=1), clustered(900, seed=2)
    monkeypatch.setattr(knn_graph, "BLOCK_ROWS", 128)  # many blocks on both sides, merged
    d, rows = kneighbors(x, y, k=5, method="exact")
    want_d, want_rows = true_neighbours(x, y, 5)
    assert recall(rows, want_rows) > 0.999 and np.allclose(d, want_d, atol=1e-5)


def test_fewer_rows_than_k_and_zero_rows():
    x = clustered(4)
    x[3] = 0  # an all-zero vector is at distance 1 from everything
    d, rows = kneighbors(x, k=5)
    assert (rows[:, 3:] == -1).all() and np.isinf(d[:, 3:]).all()
    assert sorted(rows[0, :3]) == [1, 2, 3]
    assert d[3, 0] == pytest.approx(1.0)
    d, rows = kneighbors(x[:1], k=3)  # one row has no neighbour at all
    assert (rows == -1).all()


def test_inverted_file_finds_nearly_all_neighbours_with_exact_distances(tmp_path):
    x = clustered(6000, clusters=60)
    path = tmp_path / "vectors.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")  # as the catalogue hands its matrix over
    d, rows = kneighbors(mapped, k=16, method="ivf")
    sample = np.arange(0, 6000, 10)
    want_d, want_rows = true_neighbours(x[sample], x, 17)
    want_rows = [[r for r in row if r != s][:16] for row, s in zip(want_rows, sample)]
    assert recall(rows[sample], np.array(want_rows)) >= 0.95
    assert not (rows == np.arange(6000)[:, None]).any()
    # every distance is the exact one of the row it names
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = 1 - np.einsum("ij,ikj->ik", u[sample], u[rows[sample]])
    assert np.allclose(d[sample], exact, atol=1e-5)
    # more lists probed, more found: all of them when every list is probed
    _, every = kneighbors(x[:300], x, k=16, method="ivf", nprobe=10_000)
    _, truth = true_neighbours(x[:300], x, 16)
    assert recall(every, truth) > 0.999


def test_auto_is_exact_below_the_threshold(monkeypatch):
    x = clustered(500)
    exact = kneighbors(x, k=8, method="exact")
    assert all(np.array_equal(a, b) for a, b in zip(kneighbors(x, k=8), exact))
    monkeypatch.setattr(knn_graph, "EXACT_MAX_ROWS", 100)  # now "auto" takes the inverted file
    _, rows = kneighbors(x, k=8, nprobe=1)
    assert not np.array_equal(rows, exact[1])


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="'brute'"):
        kneighbors(clustered(10), method="brute")
