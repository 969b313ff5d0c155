"""The 8-bit first pass of exact cosine search: its bounds always hold, so answers stay exact."""

import time

import numpy as np
import pytest

from lookalike.search import exact as search
from lookalike.search.exact import ExactIndex
from lookalike.search.int8_scan import Int8Cosine
from lookalike.search.metrics import distances


@pytest.fixture(scope="module")
def rows():
    """Clustered rows with the awkward cases: duplicates, near-duplicates, a zero row, a row
    with one huge value (a coarse 8-bit scale), negative values, and constant rows."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(40, 96))
    x = centres[rng.integers(0, 40, 3000)] + 0.3 * rng.normal(size=(3000, 96))
    x[10] = x[20]
    x[30] = x[31] + 1e-6
    x[40] = 0.0
    x[50, 0] = 1e4
    x[60:70] = 2.5
    return x.astype(np.float32)


def unit(q):
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_bounds_hold_the_exact_distance_of_every_row(rows):
    scan = Int8Cosine(rows, threads=2)
    queries = np.vstack([rows[[10, 30, 50, 60, 5]], np.random.default_rng(1).normal(size=(3, 96))])
    for q, (lo, hi) in zip(queries, scan.bounds(unit(queries.astype(np.float64)))):
        exact = distances(q[None, :], rows, "cosine")[0]
        assert np.all(lo <= exact) and np.all(exact <= hi)
        assert np.median(hi - lo) < 0.05  # tight enough to leave few rows to re-score


def test_searches_with_the_8_bit_pass_equal_those_without(rows):
    plain, fast = ExactIndex(rows), ExactIndex(rows)
    plain._int8_wanted = True  # never built: the float32 pass answers
    fast._int8 = Int8Cosine(rows, threads=2)
    rng = np.random.default_rng(2)
    cases = [(rows[[i]], np.array([i]), None) for i in rng.integers(0, len(rows), 40)]
    cases += [(rows[[10]], np.array([], np.int64), None),          # its duplicate ties at 0
              (rows[[3, 900, 40]], np.array([3, 900, 40]), None),  # a group with a zero row
              (rows[[7]], None, np.arange(0, 3000, 3))]            # only some candidates
    for queries, exclude, candidates in cases:
        want = plain.search(queries, 12, "cosine", exclude=exclude, candidates=candidates)
        got = fast.search(queries, 12, "cosine", exclude=exclude, candidates=candidates)
        assert list(got[0]) == list(want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)  # last bits: another pool


def test_built_after_a_few_searches_only_for_large_enough_matrices(rows, monkeypatch):
    monkeypatch.setattr(search, "INT8_MIN_ROWS", 1000)
    small, large = ExactIndex(rows[:999]), ExactIndex(rows)
    for i in range(search.INT8_AFTER_PASSES):
        assert large._int8 is None  # a process that searches once never pays for it
        small.search(rows[[i]], 5, "cosine")
        large.search(rows[[i]], 5, "cosine")
    deadline = time.time() + 60
    while large._int8 is None and time.time() < deadline:
        time.sleep(0.05)
    assert large._int8 is not None and small._int8 is None and not small._int8_wanted
    rows_, dist = large.search(rows[[5]], 5, "euclidean")  # other metrics: the float32 pass
    assert list(rows_) == list(np.argsort(distances(rows[[5]], rows, "euclidean")[0],
                                          kind="stable")[:5])


def test_the_8_bit_pass_keeps_which_query_each_row_is_nearest_to(rows):
    plain, fast = ExactIndex(rows), ExactIndex(rows)
    plain._int8_wanted = True
    fast._int8 = Int8Cosine(rows, threads=2)
    queries = rows[[3, 900, 1700]]
    want = plain.search(queries, 30, "cosine", return_query=True)
    got = fast.search(queries, 30, "cosine", return_query=True)
    assert list(got[0]) == list(want[0]) and list(got[2]) == list(want[2])
    assert set(got[2]) == {0, 1, 2}
