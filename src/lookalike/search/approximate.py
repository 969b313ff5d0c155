"""Approximate candidate search with FAISS, re-ranked exactly: for large collections.

Each metric is turned into an L2 search by a transform of the vectors: cosine -> unit rows
(for unit vectors L2 ranks as the inner product); Pearson -> centred unit rows; Spearman ->
ranks, then as Pearson; Euclidean -> the rows as they are; Mahalanobis -> rows whitened by the
collection's covariance. The absolute correlations search with q and -q. Manhattan and
Jaccard have no such transform and stay exact.

Four kinds of index: `"scan"` compares the query with the 8-bit code of every row (a
compressed exhaustive scan; 4x less memory than float32), `"ivf"` first picks the `nprobe`
nearest of about sqrt(N) clusters of such codes, `"ivfpq"` does the same over product-quantised
codes (at most PQ_MAX_BYTES bytes a row: about 7x less memory than 8-bit codes, for 10M+
vectors), and `"hnsw"` walks a graph of near neighbours (FAISS HNSW, M=32) whose rows are fp16
by default (GRAPH_STORAGE; 8-bit codes needed a longer walk for the same recall). Each
returns candidates that `ExactIndex` re-scores exactly (from the float32 matrix, memory-mapped
from disk), so distances are always exact and only recall is approximate. Indexes are saved
beside the database and brought up to date incrementally (FAISS ids are image ids; the graph,
which cannot remove, maps its labels to image ids and marks removed ones as tombstones,
filtered out before re-scoring); the trained kinds (scan, IVF, IVF-PQ) are rebuilt when the
collection has doubled since they were trained, the graph when tombstones pass
`GRAPH_REBUILD_SHARE` of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import LookalikeError
from .calibration import Calibration
from .exact import ExactIndex
from .metrics import canonical_metric, mahalanobis_transform, rank_rows

FAMILY = {"Cosine": "cosine", "Pearson": "pearson", "Absolute Pearson": "pearson",
          "Spearman": "spearman", "Absolute Spearman": "spearman", "Euclidean": "euclidean",
          "Mahalanobis": "mahalanobis"}

#: Collections at least this large are searched approximately by default.
AUTO_THRESHOLD = 200_000

#: The index kinds.
KINDS = ("scan", "ivf", "ivfpq", "hnsw")

#: The inverted files ("ivf", "ivfpq") probe this many of their lists, and they and the scan
#: hand max(CANDIDATES, 8k) candidates to the exact re-scoring. Measured at 100k x 1280
#: (README, "Memory per million vectors and recall of compressed codes"; about sqrt(N) lists):
#: recall@10 0.996 for 8-bit codes, 0.993 for IVF-PQ with 128 bytes (0.996 at nprobe 64, at
#: 1.6x the time; 0.992 with 100 candidates); 8-bit IVF at 1M: 0.996.
NPROBE = 32
CANDIDATES = 200

#: IVF-PQ's bytes per row, at most: one byte (PQ_BITS) for each of m parts of the vector, m the
#: largest divisor of the dimension up to this (FAISS needs m to divide it: 128 for 1280, 1024,
#: 768 and 512 dimensions, 125 for SqueezeNet's 1000, 64 for 64). Measured (README, as above):
#: 128 bytes reached recall@10 0.993 for 158 MB per million vectors, 64 bytes 0.990 for 97 MB.
PQ_MAX_BYTES = 128

#: IVF-PQ is refused for a dimension whose largest such divisor is under this (or under the
#: dimension itself, below it): a user's model of 257 values (a prime) would get one part, a
#: single byte a row, and at 30,000 rows of 257 recall@10 fell to 0.47 where IVF's 8-bit
#: codes found 0.88 (256 values, 128 parts: 0.89 both). 32 parts of 1280 values found 0.76
#: where 128 found 0.78 on the same kind of rows (16 parts: 0.71).
PQ_MIN_PARTS = 32

#: Bits of each part's code: 256 centroids per part, which FAISS wants trained on 39 x 256 =
#: 9,984 rows or more (the sample below has 20,000); a smaller collection gets as many bits as
#: its rows train (6 for 4,000 rows) instead of FAISS's warning and a half-trained codebook.
PQ_BITS = 8

#: The graph: FAISS HNSW, M links per node, built with efConstruction (chosen by measurement
#: in the README, "The graph index": efConstruction 128 reaches recall@10 0.998 at efSearch 96
#: at 100k where 40 needed 128 for 0.984-0.995; it builds about 3x slower).
GRAPH_M = 32
GRAPH_EF_CONSTRUCTION = 128

#: From GRAPH_LARGE rows on, the graph is built (and grown) with a longer walk: at a million
#: rows (README, "The peers at a million rows") efConstruction 128 stayed at recall@10 0.988
#: even at efSearch 1024, where 200 (hnswlib's default) reached 0.990 at 384 and 0.997 at 512
#: (1.86 ms a query), for a build about 1.5x as long. Where between 100,000 (128 enough) and
#: a million the longer build starts to pay is not measured: half a million is a guess.
GRAPH_LARGE = 500_000
GRAPH_EF_CONSTRUCTION_LARGE = 200


def graph_ef_construction(n: int) -> int:
    """The efConstruction a graph of n rows is built (or grown) with."""
    return GRAPH_EF_CONSTRUCTION_LARGE if n >= GRAPH_LARGE else GRAPH_EF_CONSTRUCTION

#: How the graph stores each row (bytes per value) and the efSearch it is searched with at
#: least: at 100k x 1280 (README, "The graph's storage") 8-bit codes reached recall@10 0.996
#: at efSearch 96 (0.52 ms CPU a query), fp16 0.991-0.996 at 48-64 (0.32-0.42 ms; FAISS's own
#: float32 HNSW at 64: 0.38 ms), float32 0.996 at 64 (0.51 ms: twice the bytes to read per
#: step). fp16: the least memory within 1.2x of FAISS HNSW. A graph saved before the storage
#: was recorded is 8-bit, and is kept.
GRAPH_STORAGES = {"8bit": (1, 96), "fp16": (2, 64), "float32": (4, 64)}
GRAPH_STORAGE = "fp16"
GRAPH_EF_SEARCH = GRAPH_STORAGES[GRAPH_STORAGE][1]

#: Candidates the graph returns for re-scoring: GRAPH_CANDIDATES_PER_K x k, at least
#: GRAPH_MIN_CANDIDATES (20 found as many true neighbours as 40 at 100k, in half the
#: re-scoring; 10 lose some to the 8-bit codes' misordering of near ties).
GRAPH_MIN_CANDIDATES = 20
GRAPH_CANDIDATES_PER_K = 2

#: The graph is rebuilt when this share of its nodes are tombstones (removed or changed images).
GRAPH_REBUILD_SHARE = 0.25


def graph_bytes(n: int, dim: int, storage: str = GRAPH_STORAGE) -> int:
    """About how much memory the graph of n rows takes: `storage`'s bytes per value, GRAPH_M
    * 2 links of 4 bytes at level 0 (and a few more above), an 8-byte label."""
    return n * (GRAPH_STORAGES[storage][0] * dim + GRAPH_M * 2 * 4 + 40)


def ivf_lists(n: int) -> int:
    """How many lists an inverted file of n rows has: about sqrt(n), at least 39 rows each
    (FAISS trains each centroid on 39 or more)."""
    return max(1, min(int(np.sqrt(n)), n // 39))


def pq_parts(dim: int) -> int:
    """IVF-PQ's number of parts m: the largest divisor of `dim` up to PQ_MAX_BYTES."""
    return max(m for m in range(1, min(PQ_MAX_BYTES, max(dim, 1)) + 1) if dim % m == 0)


def pq_usable(dim: int) -> bool:
    """Whether IVF-PQ can cut vectors of `dim` values into enough parts (PQ_MIN_PARTS)."""
    return pq_parts(dim) >= min(dim, PQ_MIN_PARTS)


def refuse_unusable_pq(dim: int) -> None:
    """One line for vectors IVF-PQ cannot cut into enough equal parts."""
    if not pq_usable(dim):
        raise LookalikeError(
            f"IVF-PQ cuts each vector into {PQ_MIN_PARTS} to {PQ_MAX_BYTES} equal parts and "
            f"{dim} values have no such cut (only {pq_parts(dim)}): search these vectors "
            "with approximate 'ivf' or 'hnsw'")


def pq_bits(training_rows: int) -> int:
    """Bits per part for a codebook trained on `training_rows` rows: PQ_BITS where they give
    39 rows per centroid, else fewer (at least 1)."""
    return int(np.clip(np.floor(np.log2(max(training_rows, 1) / 39)), 1, PQ_BITS))


def codes_bytes(n: int, dim: int) -> int:
    """About how much memory the 8-bit codes of n rows take (the scan; IVF adds its
    centroids): a byte per value and an 8-byte id (measured 1,288-1,304 B a row at 1280)."""
    return n * (dim + 8) + ivf_lists(n) * dim * 4


def ivfpq_bytes(n: int, dim: int) -> int:
    """About how much memory IVF-PQ over n rows takes: m bytes of codes and an 8-byte id a
    row, the centroids, and the table FAISS precomputes (a float per list, part and centroid:
    131 MB at a million rows of 1280, 414 MB at 10 million)."""
    m, lists = pq_parts(dim), ivf_lists(n)
    return n * (m + 8) + lists * dim * 4 + lists * m * (1 << PQ_BITS) * 4


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a declared dependency
        raise LookalikeError("approximate search needs FAISS: pip install faiss-cpu") from None
    return faiss


def supports(metric: str) -> bool:
    return canonical_metric(metric) in FAMILY


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return np.divide(a, n, out=np.zeros_like(a), where=n > 0)


@dataclass
class _Transform:
    """The metric's transform, then an affine map onto 0..255 so FAISS can keep one byte per
    value without its own scaling (QT_8bit_direct scans about twice as fast as its trained
    8-bit codes; measured in benchmarks/search.py).

    Every family is searched by L2 in that space: the inner-product families are unit vectors,
    for which L2 ranks exactly as the inner product does. (FAISS 1.15's QT_8bit_direct returns
    zeros for inner products from 32 dimensions up, so inner products are not used.) The scale
    is one number for all dimensions, which keeps L2 distances proportional.
    """

    family: str
    lo: np.ndarray          # per-dimension offset
    scale: np.float32       # one step of the 0..255 code, in metric-space units
    whitening: np.ndarray | None = None  # Mahalanobis only

    @classmethod
    def fit(cls, family: str, sample: np.ndarray,
            whitening: np.ndarray | None = None) -> _Transform:
        t = cls(family, np.zeros(sample.shape[1], np.float32), np.float32(1.0), whitening)
        rows = t.metric_space(sample)
        lo, hi = rows.min(0), rows.max(0)
        t.scale = np.float32(max(float((hi - lo).max()), 1e-12) / 255.0)
        t.lo = lo
        return t

    def metric_space(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float32)
        if self.family == "cosine":
            return _unit(rows)
        if self.family in ("pearson", "spearman"):
            if self.family == "spearman":
                rows = rank_rows(rows).astype(np.float32)
            return _unit(rows - rows.mean(1, keepdims=True))
        if self.family == "mahalanobis":
            if self.whitening is None:
                raise ValueError("a Mahalanobis transform needs its whitening matrix")
            return np.ascontiguousarray(rows @ self.whitening.astype(np.float32))
        return np.ascontiguousarray(rows)

    def codes(self, rows: np.ndarray, clip: bool = True) -> np.ndarray:
        """Rows as the 0..255 values FAISS stores (rounded by FAISS to 8-bit codes, clipped
        to their range unless told: a graph of fp16 or float32 rows keeps them as they are)."""
        c = (self.metric_space(rows) - self.lo) / self.scale
        return np.ascontiguousarray(np.clip(c, 0, 255) if clip else c, dtype=np.float32)

    def queries(self, q: np.ndarray) -> np.ndarray:
        """Queries in the same space (not rounded, not clipped)."""
        return np.ascontiguousarray((self.metric_space(q) - self.lo) / self.scale, dtype=np.float32)


class ApproximateIndex:
    """A FAISS index over one model's vectors for one metric family."""

    def __init__(self, shards: list, transform: _Transform, kind: str, trained_on: int,
                 ids: np.ndarray, hashes: np.ndarray, storage: str = "8bit"):
        self.shards = shards                # FAISS indexes (one today; kept as a list on disk)
        self.transform = transform
        self.kind = kind
        self.trained_on = trained_on
        self.ids = ids                      # sorted image ids held by the index
        self.hashes = hashes                # their content hashes ('S16'), to see changes
        self.nprobe = NPROBE
        self.labels = np.zeros(0, np.int64)
        self.storage = storage              # the graph's; scan and IVF "8bit", IVF-PQ "pq"
        self.ef_search = GRAPH_STORAGES.get(storage, GRAPH_STORAGES[GRAPH_STORAGE])[1]
        #: How far its searches look (efSearch, nprobe) as measured on the collection
        #: (search/calibration.py); None: not measured, its kind's default.
        self.calibration: Calibration | None = None
        self._params: dict[int, Any] = {}   # SearchParametersHNSW by efSearch
        self._rows_for: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def labels(self) -> np.ndarray:
        """The graph's labels are its rows in order of adding: the image id of each, -1 for a
        tombstone (an image removed or changed since it was added)."""
        return self._labels

    @labels.setter
    def labels(self, labels: np.ndarray) -> None:
        self._labels = labels
        # Counted once, not per search: counting 100k labels took 0.09 ms of a 0.8 ms search.
        self._tombstones = int(np.count_nonzero(labels < 0))

    @property
    def tombstones(self) -> int:
        return self._tombstones if self.kind == "hnsw" else 0

    @property
    def stale(self) -> bool:
        """Whether the graph holds so many tombstones that it should be rebuilt."""
        return self.kind == "hnsw" and self.tombstones > GRAPH_REBUILD_SHARE * max(1, self.ntotal)

    @property
    def ntotal(self) -> int:
        return sum(s.ntotal for s in self.shards)

    @property
    def default_reach(self) -> int:
        """How far its searches look before calibration: the graph's efSearch for its storage,
        the inverted files' NPROBE."""
        if self.kind == "hnsw":
            return GRAPH_STORAGES.get(self.storage, GRAPH_STORAGES[GRAPH_STORAGE])[1]
        return NPROBE

    def calibrated(self, calibration: Calibration) -> None:
        """Search from now on as far as `calibration` chose."""
        self.calibration = calibration
        if self.kind == "hnsw":
            self.ef_search = calibration.reach
        else:
            self.nprobe = calibration.reach

    def candidate_count(self, k: int) -> int:
        """How many candidates a search for k hands to the exact re-scoring."""
        if self.kind == "hnsw":
            return max(GRAPH_MIN_CANDIDATES, GRAPH_CANDIDATES_PER_K * k)
        return max(CANDIDATES, 8 * k)

    # -- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, ids: np.ndarray, hashes: np.ndarray, exact: ExactIndex, metric: str,
              kind: str = "auto", seed: int = 0, storage: str = GRAPH_STORAGE,
              hold_out: np.ndarray | None = None) -> ApproximateIndex:
        """The index of `kind` over every row of `exact` (image `ids`, content `hashes`) but
        the rows `hold_out` (calibration's queries, added by `add_rows` once measured)."""
        faiss = _faiss()
        family = FAMILY[canonical_metric(metric)]
        n, d = len(exact), exact.dim
        if kind == "auto":
            kind = "ivf" if n >= AUTO_THRESHOLD else "scan"
        if kind not in KINDS:
            raise ValueError(f"unknown approximate index kind {kind!r}; use "
                             f"{', '.join(KINDS)} or auto")
        rng = np.random.default_rng(seed)
        nlist = ivf_lists(n) if kind in ("ivf", "ivfpq") else 0
        # 20,000 rows give each of IVF-PQ's 256 centroids per part 78 (FAISS asks for 39),
        # and 50 rows per list the inverted files' centroids.
        sample_size = min(n, max(20_000, 50 * nlist))
        sample_rows = np.sort(rng.choice(n, sample_size, replace=False)) if n else np.zeros(0, int)
        sample = exact.rows(sample_rows)
        whitening = mahalanobis_transform(sample[:20_000]) if family == "mahalanobis" else None
        transform = _Transform.fit(family, sample, whitening)
        metric_type = faiss.METRIC_L2
        direct = faiss.ScalarQuantizer.QT_8bit_direct
        if kind != "hnsw":
            storage = "pq" if kind == "ivfpq" else "8bit"
        elif storage not in GRAPH_STORAGES:
            raise ValueError(f"unknown graph storage {storage!r}; use "
                             f"{', '.join(GRAPH_STORAGES)}")
        if kind == "hnsw":
            shards = [_empty_graph(d, storage, transform.codes(sample[:1000]), n)]
        elif kind == "scan":
            # One shard: scanning shards from a thread pool measured no faster (4.5 vs 4.3 ms
            # over 100k codes), the single scan is already 2-2.5x under the float32 floor.
            shards = [faiss.IndexIDMap2(faiss.IndexScalarQuantizer(d, direct, metric_type))]
        else:
            shards = [_trained_ivf(kind, transform.codes(sample, clip=storage == "8bit"),
                                   nlist, seed)]
        made = cls(shards, transform, kind, n, np.zeros(0, np.int64), np.zeros(0, "S16"),
                   storage)
        rows = np.arange(n) if hold_out is None else np.setdiff1d(np.arange(n), hold_out)
        made._add(ids, hashes, exact, rows)
        return made

    def add_rows(self, ids: np.ndarray, hashes: np.ndarray, exact: ExactIndex,
                 rows: np.ndarray) -> None:
        """Add `exact`'s `rows` (image `ids`, content `hashes`), none of them in the index:
        the rows held out of `build` or `sync` for calibration."""
        self._add(ids, hashes, exact, np.asarray(rows, dtype=np.int64))

    def _add(self, ids, hashes, exact: ExactIndex, rows: np.ndarray, batch: int = 65536) -> None:
        for start in range(0, len(rows), batch):
            part = rows[start:start + batch]
            codes = self.transform.codes(exact.rows(part), clip=self.storage == "8bit")
            part_ids = ids[part].astype(np.int64)
            if self.kind == "hnsw":
                hnsw = self.shards[0].hnsw  # a graph grown past GRAPH_LARGE builds longer
                hnsw.efConstruction = max(hnsw.efConstruction,
                                          graph_ef_construction(self.ntotal + len(part)))
                self.shards[0].add(codes)  # labels follow on: ntotal, ntotal + 1, ...
                self.labels = np.concatenate([self.labels, part_ids])
                continue
            # Spread over the shards, smallest first, so they stay the same size.
            order = np.argsort([s.ntotal for s in self.shards], kind="stable")
            pieces = np.array_split(np.arange(len(part)), len(self.shards))
            for shard_no, piece in zip(order, pieces):
                if len(piece):
                    self.shards[shard_no].add_with_ids(codes[piece], part_ids[piece])
        merged_ids = np.concatenate([self.ids, ids[rows]])
        merged_hashes = np.concatenate([self.hashes, hashes[rows]])
        order = np.argsort(merged_ids, kind="stable")
        self.ids, self.hashes = merged_ids[order], merged_hashes[order]

    def _remove(self, gone: np.ndarray) -> None:
        if len(gone):
            if self.kind == "hnsw":  # a graph cannot remove: tombstones
                labels = self.labels.copy()
                labels[np.isin(labels, gone)] = -1
                self.labels = labels
            else:
                for shard in self.shards:
                    shard.remove_ids(np.asarray(gone, dtype=np.int64))
            keep = ~np.isin(self.ids, gone)
            self.ids, self.hashes = self.ids[keep], self.hashes[keep]

    def new_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the sorted `ids` whose images the index does not hold."""
        return np.flatnonzero(~np.isin(ids, self.ids))

    def sync(self, ids: np.ndarray, hashes: np.ndarray, exact: ExactIndex,
             hold_out: np.ndarray | None = None) -> int:
        """Bring the index up to date with the collection (sorted `ids`, their content
        `hashes`, rows of `exact`): drop vanished and changed images, add new and changed
        ones but the rows `hold_out` (calibration's queries, added by `add_rows` once
        measured). Returns how many changes were applied."""
        if len(ids):
            pos = np.minimum(np.searchsorted(ids, self.ids), len(ids) - 1)
            same = (ids[pos] == self.ids) & (hashes[pos] == self.hashes)
        else:
            same = np.zeros(len(self.ids), bool)
        gone = self.ids[~same]
        self._remove(gone)
        new_rows = self.new_rows(ids)
        if hold_out is not None:
            new_rows = np.setdiff1d(new_rows, hold_out)
        if len(new_rows):
            self._add(ids, hashes, exact, new_rows)
        return len(gone) + len(new_rows)

    # -- searching ---------------------------------------------------------------------------

    def candidates(self, queries: np.ndarray, metric: str, count: int) -> np.ndarray:
        """Image ids of about `count` candidates per query (the union over queries)."""
        faiss = _faiss()
        name = canonical_metric(metric)
        q = self.transform.queries(np.atleast_2d(queries))
        if name in ("Absolute Pearson", "Absolute Spearman"):
            q = np.vstack([q, -q])
        count = int(min(max(count, 1), max(1, self.ntotal)))
        # Fewer than 8 queries gain nothing from OpenMP here, and its spinning threads stall the
        # BLAS threads of the exact re-ranking (scan: p95 29 ms with 2 threads, 5 ms with one).
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(q) < 8 else before)
        try:
            if self.kind == "hnsw":
                found = self._graph_candidates(q, count)
            elif self.kind in ("ivf", "ivfpq"):
                ivf = self.shards[0]
                params = faiss.SearchParametersIVF(nprobe=min(self.nprobe, ivf.nlist))
                found = ivf.search(q, count, params=params)[1]
            else:
                found = np.concatenate([s.search(q, min(count, max(1, s.ntotal)))[1]
                                        for s in self.shards], axis=1)
        finally:
            faiss.omp_set_num_threads(before)
        found = found.ravel()
        return np.unique(found[found >= 0])

    def _graph_candidates(self, q: np.ndarray, count: int) -> np.ndarray:
        """Image ids of the graph's `count` nearest labels per query, tombstones dropped
        (asked for that many more as their share of the graph)."""
        labels = self._graph_search(q, count)
        found = np.where(labels >= 0, self.labels[np.maximum(labels, 0)], -1)
        return found

    def _graph_search(self, q: np.ndarray, count: int, ef_search: int | None = None
                      ) -> np.ndarray:
        """The graph's positions (-1: none) of about `count` nearest per query, asked for as
        many more as tombstones' share of the graph (efSearch: `ef_search`, else its own)."""
        extra = int(np.ceil(count * self.tombstones / max(1, self.ntotal)))
        want = min(count + extra, max(1, self.ntotal))
        ef = max(ef_search or self.ef_search, want)
        params = self._params.get(ef)
        if params is None:  # made once: a SWIG object per search cost 5 us
            params = self._params[ef] = _faiss().SearchParametersHNSW(efSearch=ef)
        return self.shards[0].search(q, want, params=params)[1]

    def graph_rows(self, q: np.ndarray, count: int, ids: np.ndarray,
                   threads: int | None = None) -> np.ndarray:
        """Rows of the sorted `ids` (the exact index's) of about `count` nearest per query of
        the graph (transformed queries `q`), -1 where none: tombstones, ids not in `ids`.
        `threads`: FAISS's threads for the walks (None: all from 8 queries, else one)."""
        faiss = _faiss()
        before = faiss.omp_get_max_threads()
        if threads is None:
            threads = 1 if len(q) < 8 else before  # as in `candidates`
        faiss.omp_set_num_threads(threads)
        try:
            positions = self._graph_search(q, count)
        finally:
            faiss.omp_set_num_threads(before)
        return self._row_table(ids)[positions]

    def rows_per_query(self, q: np.ndarray, count: int, ids: np.ndarray, reach: int
                       ) -> np.ndarray:
        """Rows of the sorted `ids` of the `count` candidates of each (transformed) query,
        -1 where none, searching as far as `reach` (efSearch or nprobe): what `calibrate`
        measures. The scan has no reach and is not asked."""
        if self.kind == "hnsw":
            return self._row_table(ids)[self._graph_search(q, count, reach)]
        ivf = self.shards[0]
        params = _faiss().SearchParametersIVF(nprobe=min(reach, ivf.nlist))
        found = ivf.search(q, min(count, max(1, self.ntotal)), params=params)[1]
        rows = np.minimum(np.searchsorted(ids, found), max(0, len(ids) - 1))
        known = (found >= 0) & (len(ids) > 0)
        if len(ids):
            known &= ids[rows] == found
        return np.where(known, rows, -1)

    def _row_table(self, ids: np.ndarray) -> np.ndarray:
        """Each graph position's row of `ids`, -1 for a tombstone or an id not in `ids`, and a
        last -1 that FAISS's -1 (no neighbour) picks. Kept while `ids` and the labels are the
        same objects: mapping labels to ids, then ids to rows, took 0.03 ms a search."""
        cached = self._rows_for
        if cached is not None and cached[0] is ids and cached[1] is self._labels:
            return cached[2]
        labels = self._labels
        rows = np.minimum(np.searchsorted(ids, labels), max(0, len(ids) - 1))
        known = (labels >= 0) & (len(ids) > 0)
        if len(ids):
            known &= ids[rows] == labels
        table = np.append(np.where(known, rows, -1), -1).astype(np.int64)
        self._rows_for = (ids, labels, table)
        return table

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the shards, then the metadata file whose presence says they are whole.

        Not through fileio.atomic_file: FAISS writes by file name, and serialising an index
        to memory first would hold a second copy of it (1.3 GB at a million images)."""
        faiss = _faiss()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmps = []
        try:
            for shard in self.shards:
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                os.close(fd)
                tmps.append(tmp)
                try:
                    faiss.write_index(shard, tmp)
                except RuntimeError as exc:  # how FAISS reports a failed write (a full disk)
                    raise OSError(f"cannot write {tmp}: {exc}") from None
            meta = {"kind": self.kind, "family": self.transform.family,
                    "trained_on": self.trained_on, "shards": len(self.shards),
                    "storage": self.storage,
                    "calibration": None if self.calibration is None
                    else self.calibration.to_dict()}
            extra: dict[str, Any] = {"ids": self.ids, "hashes": self.hashes,
                                     "lo": self.transform.lo, "scale": self.transform.scale}
            if self.transform.whitening is not None:
                extra["whitening"] = self.transform.whitening
            if self.kind == "hnsw":
                extra["labels"] = self.labels
            fd, meta_tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            tmps.append(meta_tmp)
            with open(meta_tmp, "wb") as fh:
                np.savez(fh, meta=json.dumps(meta), **extra)
            for i, tmp in enumerate(tmps[:-1]):
                os.replace(tmp, f"{path}.{i}")
            os.replace(meta_tmp, path)  # last: its presence means the shards are whole
        finally:
            for leftover in tmps:
                if os.path.exists(leftover):
                    os.unlink(leftover)

    @staticmethod
    def saved_calibration(path: Path) -> Calibration | None:
        """The calibration of the index saved at `path`, read without loading the index
        (None: not saved, not measured, or unreadable)."""
        try:
            with np.load(path) as extra:
                meta = json.loads(str(extra["meta"]))
            return Calibration.from_dict(meta.get("calibration"))
        except Exception:
            return None

    @classmethod
    def load(cls, path: Path) -> ApproximateIndex | None:
        faiss = _faiss()
        if not path.is_file():
            return None
        try:
            with np.load(path) as extra:
                meta = json.loads(str(extra["meta"]))
                whitening = extra.get("whitening")
                transform = _Transform(meta["family"], extra["lo"], extra["scale"], whitening)
                ids, hashes = extra["ids"], extra["hashes"]
                labels = extra["labels"] if "labels" in extra.files else None
            shards = [faiss.read_index(f"{path}.{i}") for i in range(meta["shards"])]
        except Exception:
            return None  # unreadable: it will be rebuilt
        made = cls(shards, transform, meta["kind"], int(meta["trained_on"]), ids, hashes,
                   meta.get("storage", "8bit"))  # saved before storage was recorded: 8-bit
        if labels is not None:
            made.labels = labels
        calibration = Calibration.from_dict(meta.get("calibration"))
        if calibration is not None:
            made.calibrated(calibration)
        if made.kind == "hnsw" and len(made.labels) != made.ntotal:
            return None  # not whole: it will be rebuilt
        return made


def _trained_ivf(kind: str, sample: np.ndarray, nlist: int, seed: int):
    """An empty inverted file (L2) of `nlist` lists trained on `sample` (transformed rows):
    of 8-bit codes ("ivf"), or product-quantised ("ivfpq", pq_parts of pq_bits each, coding
    each row's residual from its list's centroid)."""
    faiss = _faiss()
    d = sample.shape[1]
    quantizer = faiss.IndexFlat(d, faiss.METRIC_L2)
    if kind == "ivfpq":
        refuse_unusable_pq(d)
        if len(sample) < 2:  # a codebook needs two rows to train on, even of one bit
            sample = np.repeat(sample, 2, axis=0)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, pq_parts(d), pq_bits(len(sample)))
        ivf.pq.cp.seed = seed
        # pq_bits gives every centroid 39 rows where the collection has 78; below that FAISS
        # would print a warning for each of the m parts.
        ivf.pq.cp.min_points_per_centroid = 1
        ivf.pq.cp.niter = 10  # as benchmarks/search_storage.py measured it (default: 25)
    else:
        ivf = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist,
                                            faiss.ScalarQuantizer.QT_8bit_direct,
                                            faiss.METRIC_L2, False)
    ivf.cp.seed = seed
    ivf.cp.niter = 10
    ivf.train(sample)
    return ivf


def _empty_graph(d: int, storage: str, sample: np.ndarray, n: int):
    """An empty FAISS HNSW graph (L2) storing each row as `storage` says, for n rows."""
    faiss = _faiss()
    if storage == "float32":
        graph = faiss.IndexHNSWFlat(d, GRAPH_M, faiss.METRIC_L2)
    else:
        quantiser = {"8bit": faiss.ScalarQuantizer.QT_8bit_direct,
                     "fp16": faiss.ScalarQuantizer.QT_fp16}[storage]
        graph = faiss.IndexHNSWSQ(d, quantiser, GRAPH_M, faiss.METRIC_L2)
        graph.train(sample)  # nothing to learn for these two quantisers
    graph.hnsw.efConstruction = graph_ef_construction(n)
    return graph


def search(approx: ApproximateIndex, exact: ExactIndex, ids: np.ndarray, queries: np.ndarray,
           k: int, metric: str, exclude_rows: np.ndarray | None = None,
           candidates: int | None = None, return_query: bool = False) -> tuple[np.ndarray, ...]:
    """(rows, exact distances) of about the k nearest rows, from FAISS candidates re-scored;
    with `return_query`, also the position of each row's nearest query (ties: the first)."""
    n_exclude = 0 if exclude_rows is None else len(exclude_rows)
    want = candidates or approx.candidate_count(k)
    found = approx.candidates(queries, metric, want + n_exclude)
    rows = np.searchsorted(ids, found)
    rows = rows[(rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == found)]
    if exclude_rows is not None and n_exclude:
        rows = np.setdiff1d(rows, exclude_rows)
    scores, which = exact.exact_scores(queries, rows, metric, return_query=True)
    order = np.lexsort((rows, np.round(scores, 12)))[:k]
    if return_query:
        return rows[order], scores[order], which[order]
    return rows[order], scores[order]
