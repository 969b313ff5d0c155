"""Exact search: the same ranking as a brute-force computation, for every metric."""

import time

import numpy as np
import pytest

import lookalike
from lookalike.search import exact as search
from lookalike.search.exact import ExactIndex, nearest_rows
from lookalike.search.metrics import METRICS, distances


def brute(matrix, queries, k, metric, exclude=()):
    d = lookalike.distances(queries, matrix, metric, data=matrix).min(0)
    rows = [i for i in np.lexsort((np.arange(len(d)), np.round(d, 12))) if i not in set(exclude)]
    return np.array(rows[:k]), d


def test_orange_worked_example():
    """Orange's own test: rows 0-12 at these distances, references are rows 1 and 3."""
    dist = np.array([4, 1, 7, 0, 5, 2, 4, 0, 2, 2, 2, 9, 8], float)
    matrix = dist[:, None]                # 1-d vectors whose Euclidean distance to 0 is `dist`
    refs = np.zeros((1, 1))
    exclude = np.array([1, 3])
    rows, d = nearest_rows(matrix, refs, 5, "euclidean", exclude=exclude)
    assert set(rows) == {5, 7, 8, 9, 10}
    rows, d = nearest_rows(matrix, refs, 1, "euclidean", exclude=exclude)
    assert list(rows) == [7]
    for k in (100, None):
        rows, d = nearest_rows(matrix, refs, k, "euclidean", exclude=exclude)
        assert sorted(rows) == [i for i in range(13) if i not in (1, 3)]
        assert np.all(np.diff(d) >= 0)


def test_several_references_take_the_minimum():
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(50, 8))
    q = matrix[[4, 9]]
    rows, d = nearest_rows(matrix, q, None, "manhattan", exclude=np.array([4, 9]))
    want = lookalike.distances(q, matrix, "manhattan").min(0)
    np.testing.assert_allclose(d, want[rows])
    assert 4 not in rows and 9 not in rows and len(rows) == 48


@pytest.fixture
def features():
    """Non-negative, correlated vectors like pooled CNN features, with exact duplicates,
    ties, a zero row and a constant row."""
    rng = np.random.default_rng(11)
    base = np.abs(rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24))).astype(np.float32)
    base[10] = base[20]
    base[30] = base[31] = base[32]
    base[40] = 0.0
    base[50] = 2.0
    base[60:70] = np.round(base[60:70])
    return base


@pytest.mark.parametrize("metric", METRICS)
def test_search_equals_brute_force(features, metric, monkeypatch):
    monkeypatch.setattr(search, "CHUNK_ROWS", 64)   # several chunks
    monkeypatch.setattr(search, "SEARCH_CELLS", 64)
    index = ExactIndex(features)
    for queries, exclude in [(features[[20]], [20]), (features[[5, 31, 40]], [5, 31, 40]),
                             (features[[50]] * 0.5 + 0.25, [])]:
        rows, dist = index.search(queries, 15, metric, exclude=np.array(exclude, np.int64))
        want, d = brute(features, queries, 15, metric, exclude)
        np.testing.assert_allclose(dist, d[want], rtol=1e-9, atol=1e-12, err_msg=metric)
        assert list(rows) == list(want), metric


def test_every_row_ranked_and_candidates_restrict(features):
    index = ExactIndex(features)
    rows, dist = index.search(features[:1], None, "cosine")
    assert sorted(rows) == list(range(len(features))) and np.all(np.diff(dist) >= 0)
    rows, _ = index.search(features[:1], 5, "cosine", candidates=np.arange(100, 120))
    assert len(rows) == 5 and all(100 <= r < 120 for r in rows)
    rows, _ = index.search(features[:1], 5, "cosine", candidates=np.arange(3),
                           exclude=np.arange(3))
    assert len(rows) == 0


def test_near_duplicates_are_found_exactly_despite_float32(features):
    """Large norms make float32 products lose the difference between near-duplicates; the
    exact re-scoring must still rank them by their true tiny distances."""
    big = (features * 1000).astype(np.float32)
    big[100] = big[7] + np.float32(0.001) * np.arange(24, dtype=np.float32)
    big[101] = big[7] + np.float32(0.002) * np.arange(24, dtype=np.float32)
    rows, dist = ExactIndex(big).search(big[[7]], 2, "euclidean", exclude=np.array([7]))
    assert list(rows) == [100, 101]
    np.testing.assert_allclose(dist, [0.001 * np.sqrt((np.arange(24) ** 2).sum()),
                                      0.002 * np.sqrt((np.arange(24) ** 2).sum())], rtol=1e-3)


def test_concurrent_searches_are_answered_together_and_correctly(features, monkeypatch):
    """A web server's simultaneous requests share one pass over the matrix."""
    import threading

    monkeypatch.setattr(search, "GATHER_QUIET_MAX", 0.0)  # no burst gathered: one, then 7
    index = ExactIndex(features)
    queries = [features[[i]] + 0.01 for i in range(8)]
    want = [index.search(q, 5, "cosine", exclude=np.array([i])) for i, q in enumerate(queries)]
    groups_per_pass = []
    real = ExactIndex.bounds_many

    def held_first_pass(self, groups, metric):
        if not groups_per_pass:                    # hold the first pass until all have queued
            deadline = time.time() + 60  # only against a hang: a slow machine queues late
            while len(self._queue) < 7 and time.time() < deadline:
                time.sleep(0.005)
        groups_per_pass.append(len(groups))
        return real(self, groups, metric)

    monkeypatch.setattr(ExactIndex, "bounds_many", held_first_pass)
    got = [None] * 8

    def ask(i):
        got[i] = index.search(queries[i], 5, "cosine", exclude=np.array([i]))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert groups_per_pass[0] == 1 and groups_per_pass[1] == 7 and len(groups_per_pass) == 2
    for (rows, dist), (want_rows, want_dist) in zip(got, want):
        assert list(rows) == list(want_rows)
        np.testing.assert_allclose(dist, want_dist)


def test_a_round_of_callers_that_asks_again_is_answered_in_one_pass(features, monkeypatch):
    """Callers that asked together (20 requests of a web page's clients) are waited for as a
    whole when they ask again: 7 of the 8 queued must not start a pass without the 8th."""
    import threading

    monkeypatch.setattr(search, "MERGE_WAIT_SHARE", 1e9)   # the wait never runs out here ...
    monkeypatch.setattr(search, "MERGE_WAIT_MAX", 60.0)    # ... only against a hang
    monkeypatch.setattr(search, "GATHER_QUIET_MAX", 0.0)   # no burst gathered: one, then 7
    index = ExactIndex(features)
    passes = []
    real = ExactIndex.bounds_many

    def wait_for(condition):
        deadline = time.time() + 60  # only against a hang: a slow machine queues late
        while not condition() and time.time() < deadline:
            time.sleep(0.005)

    def counted(self, groups, metric):
        if not passes:  # the first round: one request, then 7 that queued meanwhile
            wait_for(lambda: len(self._queue) == 7)
        passes.append(len(groups))
        return real(self, groups, metric)

    monkeypatch.setattr(ExactIndex, "bounds_many", counted)

    def ask(i):
        index.search(features[[i]] + 0.01, 5, "cosine")

    first = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in first:
        t.start()
    for t in first:
        t.join(60)
    assert passes == [1, 7]
    second = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in second[:7]:
        t.start()
    wait_for(lambda: len(index._queue) == 7)
    time.sleep(0.1)
    assert passes == [1, 7]  # as many as the last pass had are waiting for the eighth
    second[7].start()
    for t in second:
        t.join(60)
    assert passes == [1, 7, 8]


def test_a_burst_that_finds_the_index_idle_is_gathered_into_one_pass(features, monkeypatch):
    """Requests arriving one after another in quick succession (here: within half a second
    of each other) go out in one pass, not the first alone and the rest after it."""
    import threading

    monkeypatch.setattr(search, "GATHER_SHARE", 1e9)
    monkeypatch.setattr(search, "GATHER_QUIET_MAX", 0.5)
    index = ExactIndex(features)
    index.search(features[[0]], 5, "cosine")  # a first pass, to know how long one takes
    passes = []
    real = ExactIndex.bounds_many

    def counted(self, groups, metric):
        passes.append(len(groups))
        return real(self, groups, metric)

    monkeypatch.setattr(ExactIndex, "bounds_many", counted)
    want = [ExactIndex(features).search(features[[i]] + 0.01, 5, "cosine") for i in range(4)]
    got: list = [None] * 4

    def ask(i):
        got[i] = index.search(features[[i]] + 0.01, 5, "cosine")

    burst = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in burst:
        t.start()
    for t in burst:
        t.join(60)
    assert passes == [1, 1, 1, 1, 4]  # the four searches of `want`, then the burst's one
    for (rows, dist), (want_rows, want_dist) in zip(got, want):
        assert list(rows) == list(want_rows)
        np.testing.assert_allclose(dist, want_dist)


def test_kth_smallest_is_what_a_full_partition_gives():
    rng = np.random.default_rng(4)
    values = rng.random(100_000).astype(np.float32)
    for k in (1, 10, 200, 5_000):
        assert search.kth_smallest(values, k) == np.partition(values, k - 1)[k - 1]
    skewed = np.sort(values)[::-1].copy()       # the sample holds only large values
    assert search.kth_smallest(skewed, 10) == np.sort(values)[9]
    mostly_inf = np.full(50_000, np.inf)
    mostly_inf[[7, 70, 700]] = [3.0, 1.0, 2.0]  # rows excluded from a search are at inf
    assert search.kth_smallest(mostly_inf, 2) == 2.0
    assert search.kth_smallest(mostly_inf, 4) == np.inf
    with_nan = values.copy()
    with_nan[::2] = np.nan
    assert search.kth_smallest(with_nan, 10) == np.partition(with_nan, 9)[9]
    assert search.kth_smallest(values[:50], 10) == np.partition(values[:50], 9)[9]


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "pearson", "absolute pearson",
                                    "absolute spearman", "mahalanobis"])
def test_one_pass_for_groups_of_any_size_bounds_every_row(features, metric):
    """Groups of 1, 2, 9 and 3 queries (one zero) share one padded product; each row's bounds
    must hold its exact distance to its group's nearest query."""
    index = ExactIndex(features)
    zero = np.zeros((1, features.shape[1]))
    groups = [features[[3]], features[[7, 8]], features[10:19] * 1.5,
              np.vstack([zero, features[[40, 50]]])]
    for group, (lo, hi) in zip(groups, index.bounds_many(groups, metric)):
        exact = distances(group, features, metric, data=features).min(0)
        assert np.all(lo <= exact + 1e-12) and np.all(exact <= hi + 1e-12)
        assert np.median(hi - lo) <= 1e-4 * (1 + np.median(exact))  # few rows left to re-score


@pytest.mark.parametrize("metric", METRICS)
def test_each_row_knows_which_query_it_is_nearest_to(features, metric):
    """With several queries a row's distance is its distance to the nearest one: the search
    says which, as a brute-force argmin over the queries does."""
    queries = features[[3, 150, 290]] * np.array([[1.0], [1.2], [0.9]])
    rows, dist, which = ExactIndex(features).search(queries, None, metric, return_query=True)
    per_query = lookalike.distances(queries, features, metric, data=features)[:, rows]
    np.testing.assert_allclose(dist, per_query.min(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(per_query[which, np.arange(len(rows))], dist, rtol=1e-9,
                               atol=1e-12, err_msg=metric)
    if metric == "Jaccard":   # every value is non-zero: all rows tie, the first query wins
        assert not which.any()
    else:                     # each query is the nearest one of some rows
        assert set(which) == {0, 1, 2}, metric
    rows5, dist5, which5 = ExactIndex(features).search(queries, 5, metric, return_query=True)
    assert list(rows5) == list(rows[:5]) and list(which5) == list(which[:5])


def test_of_equally_near_queries_the_first_given_is_the_nearest(features):
    same = features[[7, 7]]
    _, _, which = nearest_rows(features, same, 20, "cosine", return_query=True)
    assert not which.any()
    # A zero query is at distance 1 of every row, as is a row orthogonal to the other query.
    orthogonal = np.zeros((2, 24), np.float32)
    orthogonal[0, 0], orthogonal[1, 1] = 1.0, 1.0
    queries = np.vstack([np.zeros((1, 24)), np.eye(24)[2:3]])
    rows, dist, which = nearest_rows(orthogonal, queries, None, "cosine", return_query=True)
    assert list(dist) == [1.0, 1.0] and list(which) == [0, 0]
    assert nearest_rows(features, same, 3, "cosine")[0].shape == (3,)  # two arrays by default
