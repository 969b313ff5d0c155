"""Independent searches of the graph index, answered together: a batch call for many queries
(one FAISS call, one gather of the candidates' rows, re-scored exactly), and the merging of
the searches that a server's threads ask for at the same time into such batches.

One query at a time through `approximate.search` spent 0.2 ms in Python around a 0.4 ms graph
walk at 100,000 x 1280 (the query's transform, the labels' mapping to ids and then to rows, a
general re-scoring written for several references); here a query costs about 0.05 ms beside
the walk, and 20 queries one graph walk on FAISS's threads (README, "Search speed").
"""

from __future__ import annotations

import threading

import numpy as np

from .approximate import ApproximateIndex
from .exact import ExactIndex
from .metrics import canonical_metric, cosine_to_rows

#: Metrics whose query is one point of the graph's space (the absolute correlations search
#: with q and -q, and keep the union path of `approximate.search`).
SINGLE_POINT = ("Cosine", "Euclidean", "Pearson", "Spearman", "Mahalanobis")


def supports(approx: ApproximateIndex, metric: str) -> bool:
    """Whether `search_each` answers `metric` on `approx` (a graph, one point per query)."""
    return approx.kind == "hnsw" and canonical_metric(metric) in SINGLE_POINT


def search_each(approx: ApproximateIndex, exact: ExactIndex, ids: np.ndarray,
                queries: np.ndarray, k: int | list[int], metric: str,
                excludes: list[np.ndarray | None] | None = None,
                threads: int | None = None) -> list[tuple[np.ndarray, ...]]:
    """For each query on its own, (rows, exact distances, zeros: its nearest query) of about
    its k nearest rows, ascending (ties: by row), as `approximate.search` answers one query.
    `k` and `excludes` (rows never returned) may differ from query to query; `threads`: as
    `ApproximateIndex.graph_rows` takes it."""
    name = canonical_metric(metric)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    m = len(queries)
    ks = [k] * m if isinstance(k, int) else list(k)
    excludes = excludes or [None] * m
    want = max(approx.candidate_count(kk) + _count(ex) for kk, ex in zip(ks, excludes))
    rows = approx.graph_rows(approx.transform.queries(queries), want, ids, threads)  # -1: none
    for i, ex in enumerate(excludes):
        if ex is not None and len(ex):
            rows[i, _among(rows[i], ex)] = -1
    valid = rows >= 0
    dist = _rescore(exact, queries, np.where(valid, rows, 0), name)
    dist[~valid] = np.inf
    order = np.lexsort((rows, np.round(dist, 12)), axis=1)
    out: list[tuple[np.ndarray, ...]] = []
    for i, kk in enumerate(ks):
        pick = order[i, :kk]
        pick = pick[valid[i, pick]]
        out.append((rows[i, pick], dist[i, pick], np.zeros(len(pick), np.int64)))
    return out


def _among(values: np.ndarray, few: np.ndarray) -> np.ndarray:
    """`np.isin(values, few)`; for a few values (a search's references) by comparing with each,
    about 4 us where `isin` takes 20 (a look-alike request of one reference)."""
    if len(few) > 16:
        return np.isin(values, few)
    return (values[:, None] == np.asarray(few)[None, :]).any(axis=1)


def _count(exclude: np.ndarray | None) -> int:
    return 0 if exclude is None else len(exclude)


def _rescore(exact: ExactIndex, queries: np.ndarray, rows: np.ndarray, name: str) -> np.ndarray:
    """Exact float64 distances (m, c) of each query to its own candidate rows (m, c)."""
    if name == "Cosine":
        sub = exact.gather(rows)                                  # (m, c, d) float64
        return np.stack([cosine_to_rows(q, s) for q, s in zip(queries, sub)])
    out = np.empty(rows.shape)
    for i, q in enumerate(queries):
        out[i] = exact.exact_scores(q, rows[i], name)
    return out


class _Request:
    def __init__(self, query: np.ndarray, k: int, exclude: np.ndarray | None):
        self.query, self.k, self.exclude = query, k, exclude
        self.result: tuple[np.ndarray, ...] | None = None
        self.error: BaseException | None = None
        self.done = False


class GraphRequests:
    """Single-query graph searches from many threads, answered together: a caller that finds
    no search running answers every request waiting (its own included) with one `search_each`;
    the others wait for it. No caller waits for others to arrive: requests merge only as they
    pile up behind a running search, so a lone request costs what it did alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: dict[tuple, tuple[tuple, list[_Request]]] = {}
        self._running = False

    def search(self, approx: ApproximateIndex, exact: ExactIndex, ids: np.ndarray,
               query: np.ndarray, k: int, metric: str,
               exclude_rows: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(rows, exact distances, zeros) of about the k nearest rows to one query."""
        request = _Request(np.asarray(query, dtype=np.float64).reshape(-1), k, exclude_rows)
        if request.query.shape != (exact.dim,):  # before merging: its error is its own
            raise ValueError(f"the query has shape {np.shape(query)}, the index {exact.dim} "
                             "dimensions")
        name = canonical_metric(metric)
        with self._lock:
            group = self._queue.setdefault((id(approx), id(exact), id(ids), name),
                                           ((approx, exact, ids, name), []))
            group[1].append(request)
            while not request.done and self._running:
                self._changed.wait()
            if request.done:
                return self._result(request)
            self._running = True
            queue, self._queue = self._queue, {}
        try:
            for (approx_, exact_, ids_, name_), requests in queue.values():
                self._answer(approx_, exact_, ids_, name_, requests)
        finally:
            with self._lock:
                for _, requests in queue.values():
                    for r in requests:
                        if not r.done:  # interrupted: nobody may wait forever
                            r.error, r.done = RuntimeError("the search was interrupted"), True
                self._running = False
                self._changed.notify_all()
        return self._result(request)

    @staticmethod
    def _answer(approx: ApproximateIndex, exact: ExactIndex, ids: np.ndarray, name: str,
                requests: list[_Request]) -> None:
        # One FAISS thread: the batch is the searches of the server's threads, which keep the
        # other cores busy; OpenMP's threads, spinning between batches, took them from them
        # (20 threads searching: 566 -> 879 searches/s, 2.4 -> 1.3 ms of CPU each).
        try:
            found = search_each(approx, exact, ids, np.stack([r.query for r in requests]),
                                [r.k for r in requests], name, [r.exclude for r in requests],
                                threads=1)
        except Exception as exc:
            for r in requests:
                r.error, r.done = exc, True
            return
        for r, result in zip(requests, found):
            r.result, r.done = result, True

    @staticmethod
    def _result(request: _Request) -> tuple[np.ndarray, ...]:
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

