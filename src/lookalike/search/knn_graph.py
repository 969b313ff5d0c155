"""Every image's k nearest neighbours by cosine distance at once (the candidate graph of
duplicate grouping), without an all-pairs matrix and without a copy of the vector matrix.

Small collections get the exact answer: blocks of unit rows against blocks of unit rows
(`faiss.knn`: one BLAS product and a C++ top-k per pair of blocks). Large ones use an
inverted file: k-means on a sample gives about sqrt(N) centroids, every row goes to its
nearest one's list, and each query is compared exactly (float32 products of unit rows) with
the rows of the `nprobe` lists whose centroids are nearest to it. The work goes list by list
(the queries that probe a list against that list's rows), so both sides are gathered in
blocks of bounded size, and each query keeps a running top-k. Distances are always exact;
only the recall of the true neighbours is approximate, and rows farther from each other than
the lists they landed in are the ones missed (copies are nearly the same vector, so they
share a list or the next).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")

#: Below this many rows (of the searched matrix) the exact blockwise products are used: at
#: 20k x 1280 they took 16 s on the busy 2-core machine, the inverted file 12 s (OpenMP
#: threads; 4.7 s on the thread pool below) at recall 0.88, and the exact cost grows as N^2.
EXACT_MAX_ROWS = 20_000
#: Lists each query probes, of about sqrt(N): on the benchmark's mixtures at 100k rows,
#: recall of the true 16 nearest 0.966 at 8 lists, 0.987 at 16 for 2.4x the time; 0.971 at
#: 100k and 0.982 at 1M in benchmarks/duplicates_scale.py (README, "Grouping at scale").
NPROBE = 8
METHODS = ("auto", "exact", "ivf")
#: Rows gathered (and made unit length) at once: 16k rows of 1280 float32 are 80 MiB.
BLOCK_ROWS = 1 << 14
#: Queries per block of work (a thread's share at a time).
QUERY_ROWS = 1 << 12
#: k-means sample per centroid (FAISS wants at least 39).
SAMPLE_PER_LIST = 40


class _UnitRows:
    """Rows of a (possibly memory-mapped) matrix, gathered on demand as unit float32 rows;
    the inverse norms are computed once, block by block (zero rows stay zero)."""

    def __init__(self, matrix: np.ndarray):
        self.matrix = matrix
        norms = np.empty(len(matrix), np.float64)
        for start in range(0, len(matrix), BLOCK_ROWS):
            block = np.asarray(matrix[start:start + BLOCK_ROWS], np.float32)
            norms[start:start + len(block)] = np.sqrt(
                np.einsum("ij,ij->i", block, block, dtype=np.float64))
        self.inverse = np.divide(1.0, norms, out=np.zeros_like(norms),
                                 where=norms > 0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.matrix)

    def take(self, rows: np.ndarray) -> np.ndarray:
        block = np.asarray(self.matrix[rows], np.float32)
        return np.ascontiguousarray(block * self.inverse[rows, None])

    def slice(self, start: int, stop: int) -> np.ndarray:
        block = np.asarray(self.matrix[start:stop], np.float32)
        return np.ascontiguousarray(block * self.inverse[start:stop, None])


class _TopK:
    """Each query's best k (similarity, row) so far, merged block by block."""

    def __init__(self, n: int, k: int):
        self.sims = np.full((n, k), -np.inf, np.float32)
        self.rows = np.full((n, k), -1, np.int64)
        self.k = k

    def merge(self, queries: np.ndarray, sims: np.ndarray, rows: np.ndarray) -> None:
        sims = np.where(rows >= 0, sims, -np.inf).astype(np.float32)
        all_sims = np.concatenate([self.sims[queries], sims], axis=1)
        all_rows = np.concatenate([self.rows[queries], rows], axis=1)
        if all_sims.shape[1] > self.k:
            best = np.argpartition(-all_sims, self.k - 1, axis=1)[:, :self.k]
            all_sims = np.take_along_axis(all_sims, best, axis=1)
            all_rows = np.take_along_axis(all_rows, best, axis=1)
        self.sims[queries], self.rows[queries] = all_sims, all_rows

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(cosine distances, rows), nearest first (ties: smaller row); inf and -1 where a
        query has fewer than k neighbours. Sorted in place, block by block (a million
        queries' temporaries would be hundreds of MB)."""
        for start in range(0, len(self.sims), BLOCK_ROWS):
            sims, rows = self.sims[start:start + BLOCK_ROWS], self.rows[start:start + BLOCK_ROWS]
            rows[~np.isfinite(sims)] = -1
            order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -sims))
            rows[:] = np.take_along_axis(rows, order, axis=1)
            sims[:] = np.take_along_axis(sims, order, axis=1)
            np.subtract(1.0, sims, out=sims)
            np.maximum(sims, 0.0, out=sims)
            sims[rows < 0] = np.inf
        return self.sims, self.rows


def _knn(faiss, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss.knn by inner product, for k up to the number of rows."""
    return faiss.knn(queries, rows, min(k, len(rows)), faiss.METRIC_INNER_PRODUCT)


def _drop_self(sims: np.ndarray, found: np.ndarray, query_rows: np.ndarray) -> None:
    sims[found == query_rows[:, None]] = -np.inf


def _in_threads(faiss, work: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """work(item) for each item, in order, on as many threads as FAISS would use, each
    FAISS call on one thread: OpenMP's spinning teams measured 2-10x slower on a busy
    2-core machine (24 vs 1.6 ms for a small block), threads that block do not spin. At
    most 2 results per thread wait to be consumed, which bounds the memory."""
    threads = max(1, faiss.omp_get_max_threads())
    faiss.omp_set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads) as pool:
            pending: deque[Future[R]] = deque()
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) > 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
    finally:
        faiss.omp_set_num_threads(threads)


def _search(faiss, q: _UnitRows, a: _UnitRows, k: int, same: bool,
            blocks: Iterable[tuple[np.ndarray, np.ndarray]]) -> _TopK:
    """Each query's top k over blocks of (query rows, candidate rows)."""
    want = k + same

    def one(block: tuple[np.ndarray, np.ndarray]):
        query_rows, rows = block
        sims, found = _knn(faiss, q.take(query_rows), a.take(rows), want)
        found = np.where(found >= 0, rows[found], -1)
        if same:
            _drop_self(sims, found, query_rows)
        return query_rows, sims, found

    top = _TopK(len(q), k)
    for query_rows, sims, found in _in_threads(faiss, one, blocks):
        top.merge(query_rows, sims, found)
    return top


def _exact_blocks(nq: int, na: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for a_start in range(0, na, BLOCK_ROWS):
        rows = np.arange(a_start, min(a_start + BLOCK_ROWS, na))
        for q_start in range(0, nq, QUERY_ROWS):
            yield np.arange(q_start, min(q_start + QUERY_ROWS, nq)), rows


def _centroids(faiss, a: _UnitRows, nlist: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(a), min(len(a), SAMPLE_PER_LIST * nlist), replace=False))
    kmeans = faiss.Kmeans(a.matrix.shape[1], nlist, niter=10, seed=seed, spherical=True,
                          max_points_per_centroid=SAMPLE_PER_LIST)
    kmeans.train(a.take(sample))
    return np.ascontiguousarray(kmeans.centroids, np.float32)


def _nearest_lists(faiss, x: _UnitRows, centroids: np.ndarray, nprobe: int) -> np.ndarray:
    """(rows, nprobe) int32: each row's nearest centroids, nearest first."""
    lists = np.empty((len(x), nprobe), np.int32)
    starts = range(0, len(x), QUERY_ROWS)

    def one(start: int) -> np.ndarray:
        return _knn(faiss, x.slice(start, start + QUERY_ROWS), centroids, nprobe)[1]

    for start, found in zip(starts, _in_threads(faiss, one, starts)):
        lists[start:start + len(found)] = found
    return lists


def _groups(labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions sorted by label, start of each label's run): label j's positions are
    order[starts[j]:starts[j + 1]], ascending."""
    order = np.argsort(labels, kind="stable")
    starts = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(labels, minlength=count), out=starts[1:])
    return order, starts


def _ivf_blocks(faiss, q: _UnitRows, a: _UnitRows, same: bool, nprobe: int,
                nlist: int | None, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(queries that probe list t, the rows of list t), list by list."""
    nlist = max(1, min(len(a), nlist or int(round(np.sqrt(len(a))))))
    centroids = _centroids(faiss, a, nlist, seed)
    nprobe = max(1, min(nprobe, len(centroids)))
    probes = _nearest_lists(faiss, q, centroids, nprobe)
    home = probes[:, 0] if same else _nearest_lists(faiss, a, centroids, 1)[:, 0]
    members, member_starts = _groups(home, len(centroids))
    probers, prober_starts = _groups(probes.ravel(), len(centroids))
    del probes, home
    probers //= nprobe  # positions in the (rows, nprobe) array -> query rows
    for t in range(len(centroids)):
        rows_t = members[member_starts[t]:member_starts[t + 1]]
        queries_t = probers[prober_starts[t]:prober_starts[t + 1]]
        if len(rows_t):
            for start in range(0, len(queries_t), QUERY_ROWS):
                yield queries_t[start:start + QUERY_ROWS], rows_t


def kneighbors(queries: np.ndarray, among: np.ndarray | None = None, k: int = 16,
               method: str = "auto", nprobe: int = NPROBE, nlist: int | None = None,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(cosine distances, row numbers of `among`), each (len(queries), k), nearest first:
    each query's k nearest rows. `among=None` searches `queries` themselves, each row left
    out of its own result. Missing neighbours (fewer rows than k) are -1 with distance inf.

    `method`: "exact" (blockwise products, every pair), "ivf" (the inverted file probing
    `nprobe` of `nlist` lists per query; default about sqrt(N) lists) or "auto" (exact
    below EXACT_MAX_ROWS rows of `among`). The matrices may be memory maps: neither is
    copied whole."""
    import faiss

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    same = among is None
    q = _UnitRows(queries)
    a = q if among is None else _UnitRows(among)
    k = max(1, k)
    if len(q) == 0 or len(a) - same <= 0:
        return np.full((len(q), k), np.inf, np.float32), np.full((len(q), k), -1, np.int64)
    if method == "auto":
        method = "exact" if len(a) < EXACT_MAX_ROWS else "ivf"
    blocks = (_exact_blocks(len(q), len(a)) if method == "exact"
              else _ivf_blocks(faiss, q, a, same, nprobe, nlist, seed))
    return _search(faiss, q, a, k, same, blocks).result()


__all__ = ["EXACT_MAX_ROWS", "METHODS", "NPROBE", "kneighbors"]
