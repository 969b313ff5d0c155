"""How far an approximate index looks, measured on the collection's own images.

An index's recall depends on the collection, not only on its settings: the graph (M=32,
efConstruction 128) found recall@10 0.995 at efSearch 64 over 100,000 embedding mixtures and
0.932 over 1,000,000 of them (README, "Search speed"). So when an index is built, and again
when it has grown by RECALIBRATE_GROWTH since, `calibrate` takes CALIBRATION_QUERIES of its own
images as queries (as a user picks an image to see its look-alikes; the image itself is left
out), finds their exact top 10 in one pass over the matrix, and searches with each reach of the
kind's ladder (the graph's efSearch, the inverted files' nprobe), the smallest first, until
the candidates handed to the exact re-scoring hold TARGET_RECALL of those neighbours. The index
keeps that reach and the recall measured there; a graph that falls short of the target at the
ladder's end is passed over by the policy (engine.choose_method) for the inverted file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .exact import ExactIndex

#: What the reach is chosen for: this share of each query's exact top CALIBRATION_K among the
#: candidates (the re-scoring is exact, so that is the answer's recall@10).
TARGET_RECALL = 0.99
CALIBRATION_K = 10

#: Queries drawn from the index's own rows: 300 put the measured recall within about 0.002 of
#: the collection's (the standard error of 3,000 neighbours found or missed at 0.99).
CALIBRATION_QUERIES = 300

#: The reaches tried, smallest first: the graph's efSearch (its storage's measured default is
#: where it starts) and the inverted files' nprobe. The last is the most either is given: past
#: efSearch 512 a graph walk costs 2-3 ms at a million rows, past nprobe 256 an inverted file
#: scans a sixth of a million codes.
EF_LADDER = (48, 64, 96, 128, 192, 256, 384, 512)
NPROBE_LADDER = (8, 16, 32, 64, 128, 256)

#: An index is calibrated again once it holds this share more rows than when it was measured.
RECALIBRATE_GROWTH = 0.25

#: Rows of the matrix compared with the queries at a time (300 x 32,768 float32 distances:
#: 39 MB).
_CHUNK = 32_768


@dataclass(frozen=True)
class Calibration:
    """The reach chosen, the recall@10 measured at it, and the index's size then."""

    reach: int
    recall: float
    rows: int
    queries: int

    @property
    def met(self) -> bool:
        return self.recall >= TARGET_RECALL

    def to_dict(self) -> dict:
        return {"reach": self.reach, "recall": self.recall, "rows": self.rows,
                "queries": self.queries}

    @classmethod
    def from_dict(cls, saved: dict | None) -> Calibration | None:
        if not saved:
            return None
        return cls(int(saved["reach"]), float(saved["recall"]), int(saved["rows"]),
                   int(saved["queries"]))

    def describe(self, kind: str) -> str:
        name = "efSearch" if kind == "hnsw" else "nprobe"
        verdict = "" if self.met else f", short of the {TARGET_RECALL} sought"
        return (f"{name} {self.reach}: recall@{CALIBRATION_K} {self.recall:.3f} on "
                f"{self.queries} of its {self.rows:,} images{verdict}")


class Calibrated(Protocol):
    """What calibration asks of an index (approximate.ApproximateIndex)."""

    kind: str
    shards: list
    transform: Any
    calibration: Calibration | None

    @property
    def ntotal(self) -> int: ...

    @property
    def default_reach(self) -> int: ...

    def candidate_count(self, k: int) -> int: ...

    def rows_per_query(self, q: np.ndarray, count: int, ids: np.ndarray, reach: int
                       ) -> np.ndarray: ...

    def calibrated(self, calibration: Calibration) -> None: ...


def ladder(approx: Calibrated) -> tuple[int, ...]:
    """The reaches `calibrate` tries for this index, smallest first (empty: nothing to choose,
    the compressed scan looks at every row)."""
    if approx.kind == "hnsw":
        return tuple(ef for ef in EF_LADDER if ef >= approx.default_reach)
    if approx.kind in ("ivf", "ivfpq"):
        nlist = int(approx.shards[0].nlist)
        reaches = tuple(p for p in NPROBE_LADDER if p < nlist)
        return reaches + (nlist,) if len(reaches) < len(NPROBE_LADDER) else reaches
    return ()


def needs_calibration(approx: Calibrated) -> bool:
    """Whether the index was never measured, or has grown by RECALIBRATE_GROWTH since."""
    if not ladder(approx) or approx.ntotal <= CALIBRATION_K:
        return False
    known = approx.calibration
    return known is None or approx.ntotal > (1 + RECALIBRATE_GROWTH) * known.rows


def calibrate(approx: Calibrated, exact: ExactIndex, ids: np.ndarray,
              seed: int = 0) -> Calibration | None:
    """Measure the smallest reach of `approx`'s ladder at which its candidates hold
    TARGET_RECALL of CALIBRATION_QUERIES of its own rows' exact top CALIBRATION_K (`exact`'s
    rows, of the sorted image `ids`), set it on `approx` and return it; the largest reach and
    its recall when none does. None for an index with nothing to choose or too few rows."""
    reaches = ladder(approx)
    n = len(exact)
    if not reaches or n <= CALIBRATION_K:
        return None
    k = CALIBRATION_K
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(CALIBRATION_QUERIES, n), replace=False))
    truth = true_neighbours(approx, exact, rows, k)
    queries = approx.transform.queries(exact.rows(rows))
    count = approx.candidate_count(k) + 1  # the query's own row comes back too
    best = None
    for reach in reaches:
        found = approx.rows_per_query(queries, count, ids, reach)
        hits = [len(np.intersect1d(f[f != r], t)) for f, t, r in zip(found, truth, rows)]
        best = Calibration(reach, float(np.sum(hits)) / truth.size, approx.ntotal, len(rows))
        if best.met:
            break
    assert best is not None
    approx.calibrated(best)
    return best


def true_neighbours(approx: Calibrated, exact: ExactIndex, rows: np.ndarray,
                    k: int) -> np.ndarray:
    """Each of `rows`' k nearest other rows (one row per query), exactly, by L2 in the index's
    metric space (its transform), which ranks as the index's metric does."""
    space = approx.transform.metric_space
    q = space(exact.rows(rows))
    m = len(q)
    best_d = np.full((m, 0), np.inf, np.float32)
    best_r = np.zeros((m, 0), np.int64)
    for start in range(0, len(exact), _CHUNK):
        chunk = np.arange(start, min(len(exact), start + _CHUNK))
        block = space(exact.rows(chunk))
        d = np.einsum("ij,ij->i", block, block)[None, :] - 2 * (q @ block.T)
        own = (rows >= chunk[0]) & (rows <= chunk[-1])
        d[np.flatnonzero(own), rows[own] - chunk[0]] = np.inf  # not its own neighbour
        take = min(k, d.shape[1])
        near = np.argpartition(d, take - 1, axis=1)[:, :take]
        best_d = np.hstack([best_d, np.take_along_axis(d, near, 1)])
        best_r = np.hstack([best_r, chunk[near]])
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_r = np.take_along_axis(best_r, keep, 1)
    return best_r
