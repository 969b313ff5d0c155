"""Orange's distances, each checked against an independent formula."""

import numpy as np
import pytest
from scipy.spatial import distance as sd
from scipy.stats import pearsonr, rankdata, spearmanr

import lookalike
from lookalike.search.metrics import METRICS, canonical_metric, mahalanobis_transform, rank_rows


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 12))
    y = rng.normal(size=(9, 12))
    x[1, ::2] = 0.0                      # sparse rows for Jaccard
    y[2] = np.round(y[2])                # ties for Spearman
    y[3, :6] = y[3, 6:]                  # more ties
    return x, y


def brute(x, y, fn):
    return np.array([[fn(a, b) for b in y] for a in x])


def test_euclidean_manhattan_cosine_jaccard_match_scipy(data):
    x, y = data
    for name, ref in [("euclidean", sd.euclidean), ("manhattan", sd.cityblock),
                      ("cosine", sd.cosine), ("jaccard", lambda a, b: sd.jaccard(a != 0, b != 0))]:
        np.testing.assert_allclose(lookalike.distances(x, y, name), brute(x, y, ref), atol=1e-9,
                                   err_msg=name)


def test_correlations_are_orange_340_formulas(data):
    """Orange 3.40 (so since 3.35): Pearson and Spearman (1 - r) / 2, their absolute forms
    1 - |r|, not halved."""
    x, y = data
    r = brute(x, y, lambda a, b: pearsonr(a, b)[0])
    rho = brute(x, y, lambda a, b: spearmanr(a, b)[0])
    np.testing.assert_allclose(lookalike.distances(x, y, "Pearson"), (1 - r) / 2, atol=1e-9)
    np.testing.assert_allclose(lookalike.distances(x, y, "absolute pearson"), 1 - abs(r),
                               atol=1e-9)
    np.testing.assert_allclose(lookalike.distances(x, y, "Spearman"), (1 - rho) / 2, atol=1e-9)
    np.testing.assert_allclose(lookalike.distances(x, y, "Absolute Spearman"), 1 - abs(rho),
                               atol=1e-9)
    anti = np.stack([np.arange(5.0), -np.arange(5.0)])    # r = -1: the absolute forms give 0
    np.testing.assert_allclose(lookalike.distances(anti[:1], anti, "absolute pearson"), [[0, 0]],
                               atol=1e-12)
    np.testing.assert_allclose(lookalike.distances(anti[:1], anti, "pearson"), [[0, 1]],
                               atol=1e-12)


def test_ranks_average_ties_like_scipy():
    a = np.array([[3, 1, 3, 2, 3, 0], [1, 1, 1, 1, 1, 1]], float)
    np.testing.assert_array_equal(rank_rows(a), [rankdata(row) for row in a])


def test_mahalanobis_matches_scipy_when_covariance_is_regular():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    vi = np.linalg.inv(np.cov(data, rowvar=False))
    y = data[:4]
    got = lookalike.distances(data, y, "Mahalanobis")
    want = brute(data, y, lambda a, b: sd.mahalanobis(a, b, vi))
    np.testing.assert_allclose(got, want, atol=1e-8)


def test_mahalanobis_fits_the_covariance_on_the_first_argument_as_orange_does():
    """Orange's Mahalanobis(e1, e2) and its Neighbors widget (data rows first) fit on e1."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 3)) * [1.0, 5.0, 0.2]
    y = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 3))
    vi_x = np.linalg.inv(np.cov(x, rowvar=False))
    want = brute(x, y[:3], lambda a, b: sd.mahalanobis(a, b, vi_x))
    np.testing.assert_allclose(lookalike.distances(x, y[:3], "mahalanobis"), want, atol=1e-9)
    vi_y = np.linalg.inv(np.cov(y, rowvar=False))        # `data` still overrides it
    want = brute(x[:3], y[:3], lambda a, b: sd.mahalanobis(a, b, vi_y))
    np.testing.assert_allclose(lookalike.distances(x[:3], y[:3], "mahalanobis", data=y), want,
                               atol=1e-9)


def test_mahalanobis_is_regularised_when_singular():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(10, 40))      # more dimensions than rows: singular covariance
    d = lookalike.distances(data, data, "mahalanobis")
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-6)
    np.testing.assert_allclose(d, d.T, atol=1e-6)
    assert np.all(d[~np.eye(10, dtype=bool)] > 0)


@pytest.mark.parametrize("rows, dim", [(300, 200), (48, 200), (150, 200), (400, 130)])
def test_mahalanobis_whitening_is_the_inverse_of_the_covariance_or_of_its_shrunk_form(rows, dim):
    rng = np.random.default_rng(rows)
    data = np.abs(rng.normal(size=(rows, 40)) @ rng.normal(size=(40, dim))
                  + 0.3 * rng.normal(size=(rows, dim)))
    cov = np.cov(data, rowvar=False)
    if rows <= dim:                       # singular: shrunk by 0.1 towards trace/d
        cov = 0.9 * cov + 0.1 * np.trace(cov) / dim * np.eye(dim)
    w = mahalanobis_transform(data)
    np.testing.assert_allclose(w @ w.T, np.linalg.inv(cov), rtol=1e-7,
                               atol=1e-9 * np.abs(np.linalg.inv(cov)).max())
    if rows == 400:                       # a dead dimension makes it singular with many rows
        data[:, 5] = 1.0
        cov = np.cov(data, rowvar=False)
        cov = 0.9 * cov + 0.1 * np.trace(cov) / dim * np.eye(dim)
        w = mahalanobis_transform(data)
        np.testing.assert_allclose(w @ w.T, np.linalg.inv(cov), rtol=1e-7,
                                   atol=1e-9 * np.abs(np.linalg.inv(cov)).max())


def test_mahalanobis_factorises_on_one_blas_thread(monkeypatch):
    """LAPACK's threaded Cholesky, inverse and eigenvalues of a 1280 x 1280 covariance took
    up to seconds each with OpenBLAS's threads on a busy two-core machine (the first
    Mahalanobis search on Twemoji took 4.4 s): every factorisation runs on one thread."""
    from threadpoolctl import threadpool_info

    threads = []
    for name in ("cholesky", "inv", "eigvalsh", "eigh", "solve", "qr", "svd"):
        real = getattr(np.linalg, name)

        def spy(a, *args, _real=real, **kwargs):
            threads.extend(p["num_threads"] for p in threadpool_info()
                           if p["user_api"] == "blas")
            return _real(a, *args, **kwargs)
        monkeypatch.setattr(np.linalg, name, spy)
    rng = np.random.default_rng(0)
    for rows in (300, 100):               # regular, then singular
        w = mahalanobis_transform(rng.normal(size=(rows, 200)))
        assert w.shape == (200, 200)
    assert threads and set(threads) == {1}


def test_degenerate_vectors_give_defined_values():
    zero = np.zeros(5)
    const = np.full(5, 3.0)
    v = np.array([1.0, 2, 0, 4, 5])
    for name in METRICS:
        d = lookalike.distances(np.stack([zero, const, v]), np.stack([zero, const, v]), name)
        assert np.all(np.isfinite(d)), name
    cos = lookalike.distances([zero, v], [zero, v], "cosine")
    assert cos[0, 0] == 0 and cos[0, 1] == 1 and abs(cos[1, 1]) < 1e-12
    assert lookalike.distances([const], [v], "pearson")[0, 0] == 0.5
    assert lookalike.distances([const], [v], "absolute pearson")[0, 0] == 1
    assert lookalike.distances([zero], [v], "spearman")[0, 0] == 0.5
    assert lookalike.distances([zero], [zero], "jaccard")[0, 0] == 0


def test_metric_names_are_case_insensitive_and_unknown_names_list_the_choices():
    assert canonical_metric("ABSOLUTE spearman") == "Absolute Spearman"
    assert canonical_metric("absolute-pearson") == "Absolute Pearson"
    with pytest.raises(ValueError) as info:
        canonical_metric("hamming")
    for name in METRICS:
        assert name in str(info.value)
