"""Exact k-nearest-neighbour search over one float32 matrix, for one or several queries.

Every metric that can be is answered with one BLAS product per chunk of rows plus per-row
statistics computed once (norms, means, ranks, the Mahalanobis quadratic form): cosine,
Euclidean, Pearson, Spearman and Mahalanobis cost about one matrix-vector product, which is
the memory-bandwidth floor. Manhattan and Jaccard are scanned directly. With several queries a
row's distance is its minimum distance to any of them (Orange's rule), and which of them
is nearest can be returned with it. The best candidates are kept with `argpartition` and
re-scored exactly in float64, so float32 rounding never changes the ranking. Memory stays
bounded: rows are processed in chunks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from .memory import available_memory
from .metrics import (
    canonical_metric,
    correlation_distance,
    cosine_to_rows,
    distances,
    mahalanobis_transform,
    rank_rows,
)

if TYPE_CHECKING:
    from .int8_scan import Int8Cosine

log = logging.getLogger(__name__)

#: Rows per block when statistics are computed (they make float64 copies of the block).
CHUNK_ROWS = 1 << 16
#: Cells (rows x queries) per block of a search: the matrix block itself is a view, only the
#: block's distances are materialised, so one BLAS call usually covers the whole matrix
#: (each call costs a thread wake-up, measurable at 100k rows).
SEARCH_CELLS = 1 << 22

#: After a pass over the matrix, the next one waits for as many callers as the last had, for
#: at most this share of the last pass's duration (and at most MERGE_WAIT_MAX seconds).
MERGE_WAIT_SHARE = 0.25
MERGE_WAIT_MAX = 0.02

#: A pass about to start while requests are still arriving (a burst) waits until none has
#: arrived for GATHER_SHARE of the last pass's duration (at most GATHER_QUIET_MAX seconds),
#: and for at most four times that in all: a lone request waits 0.5 ms at 100,000 x 1280.
GATHER_SHARE = 0.02
GATHER_QUIET_MAX = 0.001

#: Cosine searches of a matrix of at least INT8_MIN_ROWS rows get an 8-bit first pass
#: (int8_scan.py) once it has been searched INT8_AFTER_PASSES times: building it takes about
#: a second per 100,000 x 1280 rows. It is built only where it fits (`int8_fits`): it needs
#: about INT8_BUILD_BYTES bytes per value of free memory while it is built (the codes, their
#: copies in the ONNX model and in onnxruntime: 1.65 GB at 200,000 x 1280, measured) and
#: keeps about 2.3 bytes per value; and the model that holds the codes must stay under
#: protobuf's 2 GB (INT8_MAX_VALUES: 1.6 million rows of 1280).
INT8_MIN_ROWS = 20_000
INT8_BUILD_BYTES = 7
INT8_MAX_VALUES = (1 << 31) - (1 << 24)
INT8_AFTER_PASSES = 3
#: Once built, the 8-bit pass is timed against the float32 pass on this machine for passes of
#: these many queries (best of INT8_TRIALS runs each), and used only for passes of at most the
#: largest number it won at by INT8_MARGIN: on a CPU with VNNI it is several times faster; on
#: one without it can be slower, above all for several queries at once (issue 18 measured
#: 341 ms against 156 ms for 20 queries on an AVX2-only EPYC).
INT8_TRIAL_QUERIES = (1, 4, 16)
INT8_TRIALS = 3
INT8_MARGIN = 0.9

#: How much a float32 cosine bound is widened beyond the product's own rounding, to cover
#: the rounding of 1 - cosine and of the bound (ExactIndex._cosine_bounds).
COSINE_ROUNDING = 2.0 ** -21

#: kth_smallest first takes the k-th smallest of every KTH_SAMPLE-th value.
KTH_SAMPLE = 64

#: Metrics answered through one matrix product per chunk.
PRODUCT_METRICS = ("Cosine", "Euclidean", "Pearson", "Absolute Pearson", "Spearman",
                   "Absolute Spearman", "Mahalanobis")


class ExactIndex:
    """The vectors of a collection (row i of `matrix`), searchable with every metric.

    `matrix` may be a read-only memory map: it is never copied as a whole. Per-metric row
    statistics are computed on first use and kept; the object is safe to share between threads.
    """

    def __init__(self, matrix: np.ndarray):
        if matrix.ndim != 2:
            raise ValueError(f"expected a matrix, got shape {matrix.shape}")
        self.matrix = matrix if matrix.dtype == np.float32 else matrix.astype(np.float32)
        # Indexing a np.memmap goes through Python-level __getitem__ and __array_finalize__
        # (0.25 ms per call); the plain view of the same memory does not.
        self._rows_view = self.matrix.view(np.ndarray)
        self._stats: dict[str, object] = {}
        self._lock = threading.RLock()  # a statistic may be computed from another
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._queue_changed = threading.Condition(self._queue_lock)
        self._scanning = False
        self._last_batch = 0       # queries in the last pass ...
        self._busy_served = 0      # requests answered since the queue last ran dry ...
        self._last_round = 0       # ... and as many in the last such round of passes
        # the 8-bit first pass for cosine, once built (int8_scan.py)
        self._int8: Int8Cosine | None = None
        self._int8_wanted = False
        self._int8_limit = 0       # ... used for passes of at most this many queries
        self.int8_passes = 0       # passes the 8-bit first pass served
        #: Which exact cosine pass serves this index, and why (a sentence; None until decided).
        self.int8_choice: str | None = None
        self._cosine_passes = 0
        self._merge_until = 0.0    # ... and until when the next pass waits for as many
        self._last_pass_s = 0.0    # how long the last pass took
        self._last_arrival = 0.0   # when the last request was queued

    def __len__(self) -> int:
        return len(self.matrix)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    # -- per-row statistics, computed once --------------------------------------------------

    def _stat(self, key: str, compute):
        value = self._stats.get(key)
        if value is None:
            with self._lock:
                value = self._stats.get(key)
                if value is None:
                    value = compute()
                    self._stats[key] = value
        return value

    def _chunks(self, rows: int | None = None):
        rows = rows or CHUNK_ROWS
        for start in range(0, len(self.matrix), rows):
            yield start, np.asarray(self.matrix[start:start + rows])

    def sq_norms(self) -> np.ndarray:
        def compute():
            out = np.empty(len(self.matrix))
            for start, chunk in self._chunks():
                c = chunk.astype(np.float64)
                out[start:start + len(c)] = np.einsum("ij,ij->i", c, c)
            return out
        return self._stat("sq_norms", compute)

    def inverse_norms(self) -> np.ndarray:
        """1 / the norm of each row, as float32 (0 for a zero row)."""
        def compute():
            norms = np.sqrt(self.sq_norms())
            with np.errstate(divide="ignore"):
                return np.where(norms > 0, 1.0 / norms, 0.0).astype(np.float32)
        return self._stat("inverse_norms", compute)

    def centred_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(row means, norms of the centred rows)."""
        def compute():
            means = np.empty(len(self.matrix))
            for start, chunk in self._chunks():
                means[start:start + len(chunk)] = chunk.mean(1, dtype=np.float64)
            centred_sq = self.sq_norms() - self.dim * means ** 2
            return means, np.sqrt(np.maximum(centred_sq, 0.0))
        return self._stat("centred", compute)

    def ranks(self) -> ExactIndex:
        """The rows replaced by their ranks (Spearman = Pearson on ranks), as an index."""
        def compute():
            out = np.empty(self.matrix.shape, np.float32)
            for start, chunk in self._chunks():
                out[start:start + len(chunk)] = rank_rows(chunk)
            return ExactIndex(out)
        return self._stat("ranks", compute)

    def mahalanobis(self) -> tuple[np.ndarray, np.ndarray]:
        """(W, x^T W W^T x per row) for the collection's (regularised) covariance, whose
        inverse is W W^T (metrics.mahalanobis_transform)."""
        def compute():
            transform = mahalanobis_transform(np.asarray(self.matrix, dtype=np.float64))
            quad = np.empty(len(self.matrix))
            for start, chunk in self._chunks():
                t = chunk.astype(np.float64) @ transform
                quad[start:start + len(t)] = np.einsum("ij,ij->i", t, t)
            return transform, quad
        return self._stat("mahalanobis", compute)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Rows as float64, in the order given (read in ascending order: kind to memory maps)."""
        order = np.argsort(index, kind="stable")
        out = np.empty((len(index), self.dim))
        out[order] = self._rows_view[np.asarray(index)[order]]
        return out

    def gather(self, index: np.ndarray) -> np.ndarray:
        """The rows of an array of row numbers of any shape, as float64 (shape + (dim,))."""
        return self._rows_view[index].astype(np.float64)

    # -- search ------------------------------------------------------------------------------

    def bounds(self, queries: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds on every row's distance to its nearest query.

        Product metrics are computed in float32 BLAS; the bounds cover its rounding (a float32
        dot product of length d errs by at most about d * 2**-24 * |x| |q|), so a row whose
        lower bound exceeds the k-th smallest upper bound cannot be among the k nearest.
        Manhattan and Jaccard are computed exactly (both bounds equal).
        """
        return self.bounds_many([queries], metric)[0]

    def bounds_many(self, groups: list[np.ndarray],
                    metric: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """`bounds` for several independent groups of queries, in one pass over the matrix:
        the queries of every group go into one BLAS product, which reads the matrix once."""
        name = canonical_metric(metric)
        groups = [np.atleast_2d(np.asarray(g, dtype=np.float64)) for g in groups]
        for g in groups:
            if g.shape[1] != self.dim:
                raise ValueError(f"queries have {g.shape[1]} dimensions, the index {self.dim}")
        if name in ("Spearman", "Absolute Spearman"):
            return self.ranks().bounds_many([rank_rows(g) for g in groups],
                                            name.replace("Spearman", "Pearson"))
        n = len(self.matrix)
        edges = np.cumsum([0] + [len(g) for g in groups])
        if name in PRODUCT_METRICS:
            queries = np.vstack(groups)
            norms = np.linalg.norm(queries, axis=1)
            cosine = name == "Cosine" and bool(np.all(norms > 0))
            if cosine:  # unit queries: the product is the cosine once divided by the row norm
                unit = queries / norms[:, None]
                self._cosine_passes += 1
                if self._int8 is not None and len(unit) <= self._int8_limit:
                    self.int8_passes += 1
                    return _group_minima(self._int8.bounds(unit), edges)
                if self._cosine_passes >= INT8_AFTER_PASSES:
                    self.start_int8()
                return _group_minima(self._cosine_bounds(unit), edges)
            out = [(np.empty(n), np.empty(n)) for _ in groups]
            q32, extra = self._prepare_queries(queries, name)
            padded = _pad_rows(np.asarray(q32, dtype=np.float32))
            for start, chunk in self._chunks(max(CHUNK_ROWS, SEARCH_CELLS // len(padded))):
                rows = slice(start, start + len(chunk))
                products = _products(chunk, padded)[: len(queries)]
                a, b = self._finish(products, start, extra, name)
                for (lo, hi), first, last in zip(out, edges[:-1], edges[1:]):
                    lo[rows] = a[first:last].min(0)
                    hi[rows] = b[first:last].min(0)
        else:
            out = [(np.empty(n), np.empty(n)) for _ in groups]
            for g, (lo, hi) in zip(groups, out):
                for start, chunk in self._chunks(max(1, SEARCH_CELLS // (len(g) * self.dim))):
                    lo[start:start + len(chunk)] = distances(g, chunk, name).min(0)
                hi[:] = lo
        return out

    def start_int8(self, wait: bool = False) -> None:
        """Build the 8-bit first pass for cosine searches (int8_scan.py) in the background,
        once, if the matrix is large enough to gain and small enough to copy; searches use
        it as soon as it is ready. A process that searches once never pays for it."""
        with self._lock:
            if self._int8_wanted or not len(self.matrix) >= INT8_MIN_ROWS:
                return
            self._int8_wanted = True
            fits, why_not = int8_fits(self.matrix.size, available_memory())
            if not fits:
                self.int8_choice = f"float32 products (no 8-bit first pass: {why_not})"
                log.info("exact search: %s", self.int8_choice)
                return

        def build() -> None:
            from .int8_scan import Int8Cosine

            try:
                int8 = Int8Cosine(self.matrix)
                self._int8_limit, self.int8_choice = self._time_int8(int8)
                if self._int8_limit:
                    self._int8 = int8
                log.info("exact search: %s", self.int8_choice)
            except Exception:  # out of memory, say: the float32 pass goes on serving
                log.warning("the 8-bit first pass could not be built", exc_info=True)

        if wait:
            build()
        else:
            threading.Thread(target=build, name="lookalike-int8", daemon=True).start()

    def _time_int8(self, int8: Int8Cosine) -> tuple[int, str]:
        """(the most queries per pass for which `int8` beat the float32 pass here: 0 if it
        never did, unbounded if it did at every size timed; a sentence saying so with the
        times), from timed passes of real rows."""
        rng = np.random.default_rng(0)
        picked = np.asarray(self.matrix[np.sort(rng.choice(len(self.matrix),
                                                           max(INT8_TRIAL_QUERIES),
                                                           replace=False))], np.float64)
        norms = np.linalg.norm(picked, axis=1, keepdims=True)
        unit = picked / np.where(norms > 0, norms, 1.0)
        limit, times = 0, []
        for n in INT8_TRIAL_QUERIES:
            q = unit[:n]
            t8 = _best_time(int8.bounds, q)
            t32 = _best_time(self._cosine_bounds, q)
            times.append(f"{n} quer{'y' if n == 1 else 'ies'} {t8 * 1e3:.1f} ms against "
                         f"{t32 * 1e3:.1f} ms")
            if t8 > INT8_MARGIN * t32:
                break
            limit = n
        measured = "; ".join(times)
        if not limit:
            return 0, (f"float32 products (the 8-bit first pass was slower on this CPU: "
                       f"{measured})")
        if limit == max(INT8_TRIAL_QUERIES):  # won at every size: more queries gain as much
            return 1 << 62, (f"8-bit first pass (measured on this CPU, 8-bit against float32: "
                             f"{measured})")
        return limit, (f"8-bit first pass for up to {limit} queries at once, float32 products "
                       f"above (measured on this CPU, 8-bit against float32: {measured})")

    def _cosine_bounds(self, unit: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(lower, upper) bounds on 1 - cosine of every row, for each unit query (rows of
        norm 1), from one float32 product per chunk of rows.

        The bounds stay float32: a float64 copy of each query's distances and two more for
        its bounds cost 2.7 ms per query at 100,000 rows, as much as 20 queries' share of the
        product (README, "Search speed"). They are widened by COSINE_ROUNDING to cover the
        rounding of 1 - cosine and of the bounds themselves (each under 2**-23 for values
        of at most 2).
        """
        n = len(self.matrix)
        out = [(np.empty(n, np.float32), np.empty(n, np.float32)) for _ in range(len(unit))]
        inverse = self.inverse_norms()
        slack = np.float32((self.dim + 8) * 2.0 ** -24 + COSINE_ROUNDING)
        padded = _pad_rows(np.asarray(unit, dtype=np.float32))
        for start, chunk in self._chunks(max(CHUNK_ROWS, SEARCH_CELLS // len(padded))):
            rows = slice(start, start + len(chunk))
            products = _products(chunk, padded)[: len(unit)]
            products *= inverse[rows]
            for (lo, hi), cosine in zip(out, products):
                np.subtract(np.float32(1), cosine, out=lo[rows])
                np.add(lo[rows], slack, out=hi[rows])
                lo[rows] -= slack
        return out

    def _prepare_queries(self, q: np.ndarray, name: str):
        extra = {"q_norm": np.linalg.norm(q, axis=1)}
        if name == "Mahalanobis":
            w = self.mahalanobis()[0]
            mq = (q @ w) @ w.T  # q times the inverse covariance
            extra.update(q_quad=np.einsum("ij,ij->i", q, mq), q_norm=np.linalg.norm(mq, axis=1))
            return np.ascontiguousarray(mq, dtype=np.float32), extra
        if name in ("Pearson", "Absolute Pearson"):
            means = q.mean(1)
            extra.update(q_mean=means, q_centred=np.linalg.norm(q - means[:, None], axis=1))
        return np.ascontiguousarray(q, dtype=np.float32), extra

    def _finish(self, products: np.ndarray, start: int, extra: dict, name: str):
        """Lower and upper bounds on the distances of rows start... to each query, from their
        float32 products (queries, rows)."""
        rows = slice(start, start + products.shape[1])
        p = products.astype(np.float64)
        sq = self.sq_norms()[rows][None, :]
        q_norm = extra["q_norm"][:, None]
        err = (self.dim + 4) * 2.0 ** -24 * np.sqrt(sq) * q_norm
        if name == "Cosine":  # only with a zero query; the others take the unit-query path
            denom = np.sqrt(sq) * q_norm
            zero = denom == 0
            safe = np.where(zero, 1.0, denom)
            dist = np.where(zero, np.where((sq == 0) & (q_norm == 0), 0.0, 1.0), 1.0 - p / safe)
            e = np.where(zero, 0.0, err / safe)
            return dist - e, dist + e
        if name in ("Euclidean", "Mahalanobis"):
            if name == "Euclidean":
                s = sq + q_norm ** 2 - 2 * p
            else:
                s = self.mahalanobis()[1][rows][None, :] + extra["q_quad"][:, None] - 2 * p
            slack = 2 * err + 1e-12 * np.abs(s)
            return np.sqrt(np.maximum(s - slack, 0)), np.sqrt(np.maximum(s + slack, 0))
        means, centred = self.centred_stats()
        mx, nx = means[rows][None, :], centred[rows][None, :]
        nq = extra["q_centred"][:, None]
        cov = p - self.dim * mx * extra["q_mean"][:, None]
        defined = (nx > 0) & (nq > 0)
        denom = np.where(defined, nx * nq, 1.0)
        r = np.where(defined, np.clip(cov / denom, -1.0, 1.0), 0.0)
        e = np.where(defined, err / denom, 0.0)  # the error of r; |r| errs no more
        if name == "Pearson":
            e = e / 2  # (1 - r) / 2 halves it; Absolute Pearson's 1 - |r| does not
        dist = correlation_distance(r, name)
        return dist - e, dist + e

    def exact_scores(self, queries: np.ndarray, rows: np.ndarray, metric: str,
                     return_query: bool = False):
        """Exact float64 distances of the given rows to their nearest query; with
        `return_query`, also the position of that query for each row (ties: the first)."""
        name = canonical_metric(metric)
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        out = np.empty(len(rows))
        which = np.zeros(len(rows), np.int64)
        step = max(1, min(CHUNK_ROWS, (1 << 24) // max(1, self.dim * len(queries))))
        for i in range(0, len(rows), step):
            sub = self.rows(rows[i:i + step])
            if name == "Mahalanobis":
                transform = self.mahalanobis()[0]
                d = distances(queries @ transform, sub @ transform, "Euclidean")
            elif name == "Cosine":  # as the graph re-scores its candidates (graph_search.py)
                d = np.stack([cosine_to_rows(q, sub) for q in queries])
            else:
                d = distances(queries, sub, name)
            out[i:i + len(sub)] = d.min(0)
            if return_query and len(queries) > 1:
                # Rounded as the ranking is, so that last-bit differences between summation
                # orders do not choose between equally near queries: the first one given wins.
                which[i:i + len(sub)] = np.round(d, 12).argmin(0)
        return (out, which) if return_query else out

    def search(self, queries: np.ndarray, k: int | None, metric: str = "Cosine",
               exclude: np.ndarray | None = None, candidates: np.ndarray | None = None,
               return_query: bool = False) -> tuple[np.ndarray, ...]:
        """(row indices, distances) of the k rows nearest to any query, ascending.

        `exclude`: rows never returned; `candidates`: if given, only these rows are searched.
        `k=None` ranks every row. Ties are broken by row index, so results are deterministic.
        `return_query`: a third array gives, for each row, the position of the query it is
        nearest to (of equally near queries, the first).

        Searches asked for at the same time from several threads (a web server's requests)
        are answered together: one thread scans the matrix once for all of them, which is
        what a memory-bound scan needs to serve many clients.
        """
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index {self.dim}")
        request = _Request(queries, k, canonical_metric(metric), exclude, candidates)
        with self._queue_lock:
            self._queue.append(request)
            self._last_arrival = time.perf_counter()
            self._queue_changed.notify_all()
        while True:
            with self._queue_lock:
                if request.done:
                    break
                if self._scanning:
                    self._queue_changed.wait()
                    continue
                wait = self._wait_before_pass(time.perf_counter())
                if wait > 0:
                    self._queue_changed.wait(wait)
                    continue
                batch, self._queue = self._queue, []
                self._scanning = True
            started = time.perf_counter()
            try:
                self._answer(batch)
            finally:
                with self._queue_lock:
                    for r in batch:  # interrupted (Ctrl-C): nobody may wait forever
                        if not r.done:
                            r.error, r.done = RuntimeError("the search was interrupted"), True
                    self._scanning = False
                    now = time.perf_counter()
                    self._last_batch = len(batch)
                    self._busy_served += len(batch)
                    if not self._queue:  # a round of callers is answered
                        self._last_round, self._busy_served = self._busy_served, 0
                    self._last_pass_s = now - started
                    self._merge_until = now + min(MERGE_WAIT_MAX,
                                                  MERGE_WAIT_SHARE * (now - started))
                    self._queue_changed.notify_all()
        if request.error is not None:
            raise request.error
        assert request.result is not None  # done without an error: answered
        return request.result if return_query else request.result[:2]

    def _wait_before_pass(self, now: float) -> float:
        """How long the caller about to start a pass should wait for more requests first
        (0: start now); called with the queue's lock held."""
        # The callers of the last pass come back soon (a web client's next request):
        # waiting briefly for them merges two half-size passes into one, which costs
        # less than two (they would otherwise alternate for as long as the load lasts).
        # After the queue ran dry, wait for the whole last round of callers: 20
        # threads that ask at once arrive over a few milliseconds, and without this
        # their searches went out as two passes of 13 and 7 queries each time, 1.7
        # times the cost of one pass of 20 at 100,000 x 1280 (README, "Search speed").
        expected = self._last_batch if self._busy_served else \
            max(self._last_batch, self._last_round)
        if len(self._queue) < expected and self._merge_until > now:
            return self._merge_until - now
        if len(self._queue) >= expected > 1:
            return 0.0
        # A burst that finds the index idle: its first request went out alone, in a pass
        # that the other 19 then waited for. Requests still arriving every few tenths of a
        # millisecond are gathered first, for at most a small share of a pass.
        quiet = min(GATHER_QUIET_MAX, GATHER_SHARE * self._last_pass_s)
        if now - self._last_arrival < quiet and now - self._queue[0].queued < 4 * quiet:
            return quiet - (now - self._last_arrival)
        return 0.0

    def search_with_negatives(self, positives: np.ndarray, negatives: np.ndarray,
                              k: int | None, metric: str, cost,
                              exclude: np.ndarray | None = None,
                              candidates: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(rows, cost, distance to the nearest positive, position of that positive,
        distance to the nearest negative, position of that negative) of the k rows of least
        `cost(d_pos, d_neg)`, ascending (ties: by row). `cost` must increase with d_pos and
        not increase with d_neg (feedback.negative_cost): then one pass over the matrix bounds
        both distances of every row, and only the rows whose lower bound on the cost can
        reach the k-th upper bound are computed exactly, so the answer is exact."""
        name = canonical_metric(metric)
        # float32 bounds (the cosine pass) become float64 exactly, before `cost` rounds
        (lo_p, hi_p), (lo_n, hi_n) = [(np.asarray(a, np.float64), np.asarray(b, np.float64))
                                      for a, b in self.bounds_many([positives, negatives], name)]
        lo, hi = cost(lo_p, hi_n), cost(hi_p, lo_n)
        allowed = np.ones(len(lo), bool)
        if candidates is not None:
            allowed[:] = False
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        if exclude is not None and len(exclude):
            allowed[np.asarray(exclude, dtype=np.int64)] = False
        lo[~allowed], hi[~allowed] = np.inf, np.inf
        n_allowed = int(allowed.sum())
        if k is None or k >= n_allowed:
            pool = np.flatnonzero(allowed)
        else:
            pool = np.flatnonzero(lo <= kth_smallest(hi, k))
        d_pos, which_pos = self.exact_scores(positives, pool, name, return_query=True)
        d_neg, which_neg = self.exact_scores(negatives, pool, name, return_query=True)
        exact = cost(d_pos, d_neg)
        order = np.lexsort((pool, np.round(exact, 12)))[: (k if k is not None else None)]
        return (pool[order], exact[order], d_pos[order], which_pos[order], d_neg[order],
                which_neg[order])

    def _answer(self, batch: list[_Request]) -> None:
        by_metric: dict[str, list[_Request]] = {}
        for r in batch:
            by_metric.setdefault(r.metric, []).append(r)
        for name, requests in by_metric.items():
            try:
                all_bounds = self.bounds_many([r.queries for r in requests], name)
            except Exception as exc:  # the same error for every request of this metric
                for r in requests:
                    r.error, r.done = exc, True
                continue
            for r, (lo, hi) in zip(requests, all_bounds):
                try:
                    r.result = self._select(r, lo, hi)
                except Exception as exc:
                    r.error = exc
                r.done = True

    def _select(self, r: _Request, lo: np.ndarray, hi: np.ndarray):
        k, name, queries = r.k, r.metric, r.queries
        allowed = None
        if r.candidates is not None:
            allowed = np.zeros(len(lo), bool)
            allowed[np.asarray(r.candidates, dtype=np.int64)] = True
        if r.exclude is not None and len(r.exclude):
            if allowed is None:
                allowed = np.ones(len(lo), bool)
            allowed[np.asarray(r.exclude, dtype=np.int64)] = False
        if allowed is not None:
            lo[~allowed] = np.inf
            hi[~allowed] = np.inf
        n_allowed = len(lo) if allowed is None else int(allowed.sum())
        if n_allowed == 0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        if k is None or k >= n_allowed:
            pool = np.arange(len(lo)) if allowed is None else np.flatnonzero(allowed)
        else:
            kth = kth_smallest(hi, k)
            pool = np.flatnonzero(lo <= kth)
        exact, which = self.exact_scores(queries, pool, name, return_query=True)
        # Equal distances (duplicates, equal rank orders) are ordered by row; rounding first
        # keeps last-bit differences between summation orders from breaking such ties.
        order = np.lexsort((pool, np.round(exact, 12)))[: (k if k is not None else None)]
        return pool[order], exact[order], which[order]


def _best_time(run, *args) -> float:
    best = float("inf")
    for _ in range(INT8_TRIALS):
        start = time.perf_counter()
        run(*args)
        best = min(best, time.perf_counter() - start)
    return best


def int8_fits(values: int, free_memory: int | None) -> tuple[bool, str]:
    """Whether the 8-bit first pass of a matrix of `values` numbers may be built with
    `free_memory` bytes available (None: unknown, taken as plenty), and if not, why."""
    if values > INT8_MAX_VALUES:
        return False, (f"{values:,} values are more than its model can hold "
                       f"({INT8_MAX_VALUES:,})")
    needed = INT8_BUILD_BYTES * values
    if free_memory is not None and free_memory < needed:
        return False, (f"building it needs about {needed / 2**30:.1f} GB of free memory, "
                       f"{free_memory / 2**30:.1f} GB are free")
    return True, ""


def kth_smallest(values: np.ndarray, k: int) -> float:
    """The k-th smallest of `values` (k >= 1), as `np.partition(values, k - 1)[k - 1]`.

    For a few out of many, the k-th smallest of every KTH_SAMPLE-th value bounds the answer
    from above (k values at least are no larger), so only the values under it are
    partitioned: 0.1 ms instead of 0.8 ms for k = 10 of 100,000 on this project's machine,
    where np.partition cost as much per query as its share of a 20-query product.
    """
    if len(values) >= KTH_SAMPLE * 4 * k:
        sample = values[::KTH_SAMPLE]
        bound = np.partition(sample, k - 1)[k - 1]
        under = values[values <= bound]
        if len(under) >= k:  # fewer only with NaN values: partition them all
            values = under
    return np.partition(values, k - 1)[k - 1]


def _products(chunk: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(queries, rows) float32 products: the one BLAS call per chunk of a pass.

    Computed as chunk @ queries.T and transposed into a copy: OpenBLAS's product in that
    order took 5-25% less time for 8 to 20 queries over 100,000 x 1280 on this project's
    machine, more than the copy costs.
    """
    return np.ascontiguousarray((chunk @ queries.T).T)


def _group_minima(per_query: list[tuple[np.ndarray, np.ndarray]],
                  edges: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each group's bounds (queries edges[i]..edges[i+1]) from every query's: the minima."""
    out = []
    for first, last in zip(edges[:-1], edges[1:]):
        if last - first == 1:
            out.append(per_query[first])
        else:
            group = per_query[first:last]
            out.append((np.min([b[0] for b in group], axis=0),
                        np.min([b[1] for b in group], axis=0)))
    return out


def _pad_rows(queries: np.ndarray) -> np.ndarray:
    """The queries with zero rows added up to a multiple of 8 (one query stays as it is).

    OpenBLAS's float32 product with 2 to 7 right-hand columns took 2-3 times as long as with
    8 on this project's machine (it is slower than 8 separate matrix-vector products), and 9
    to 15 longer than 16: padding costs little arithmetic and saves that.
    """
    n = len(queries)
    if n == 1 or n % 8 == 0:
        return queries
    padded = np.zeros((n + 8 - n % 8, queries.shape[1]), np.float32)
    padded[:n] = queries
    return padded


class _Request:
    """One caller's search, waiting to be answered with others."""

    def __init__(self, queries, k, metric, exclude, candidates):
        self.queries, self.k, self.metric = queries, k, metric
        self.exclude, self.candidates = exclude, candidates
        self.queued = time.perf_counter()
        self.result: tuple[np.ndarray, ...] | None = None
        self.error: BaseException | None = None
        self.done = False


def nearest_rows(matrix: np.ndarray, queries: np.ndarray, k: int | None, metric: str = "cosine",
                 exclude: np.ndarray | None = None, candidates: np.ndarray | None = None,
                 return_query: bool = False) -> tuple[np.ndarray, ...]:
    """One-off exact search: `ExactIndex(matrix).search(...)`."""
    return ExactIndex(np.asarray(matrix, dtype=np.float32)).search(
        queries, k, metric, exclude=exclude, candidates=candidates, return_query=return_query)
