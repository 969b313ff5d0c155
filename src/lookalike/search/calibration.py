"""How far an approximate index looks, measured on the collection's own images.

An index's recall depends on the collection, not only on its settings: the graph (M=32,
efConstruction 128) found recall@10 0.97-0.995 at efSearch 64 over 100,000 embedding mixtures
and 0.93 over 1,000,000 of them (README, "Search speed"). So when an index is built, and again
when it has grown by RECALIBRATE_GROWTH since, `calibrate` measures it: its queries are
CALIBRATION_QUERIES of the collection's images held out of the index until it is measured
(`held_out_rows`: drawn from all rows at a build, from the new rows when it grows), so that
they are to it what a new image or an upload is, and are then added; it finds their exact top
10 among the indexed rows in one pass over the matrix, and searches with each reach of the
kind's ladder (the graph's efSearch, the inverted files' nprobe), the smallest first, until the
candidates handed to the exact re-scoring hold TARGET_RECALL of those neighbours. (Images of
the index itself are easier queries for a graph, whose walk finds their own node and its
links: at 100,000 mixtures efSearch 64 found 0.993-0.997 of their neighbours and 0.970 of
fresh mixtures'. They are used only where too few images can be held out.) The index keeps
that reach and the recall measured there; a graph that falls short of the target at the
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

#: Held-out queries are at most a quarter of the rows they are drawn from, and at least this
#: many (else the index's own images are the queries).
MIN_HELD_OUT = 50

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
    held_out: bool = False    # the queries were images not in the index when measured

    @property
    def met(self) -> bool:
        return self.recall >= TARGET_RECALL

    def to_dict(self) -> dict:
        return {"reach": self.reach, "recall": self.recall, "rows": self.rows,
                "queries": self.queries, "held_out": self.held_out}

    @classmethod
    def from_dict(cls, saved: dict | None) -> Calibration | None:
        if not saved:
            return None
        return cls(int(saved["reach"]), float(saved["recall"]), int(saved["rows"]),
                   int(saved["queries"]), bool(saved.get("held_out", False)))

    def describe(self, kind: str) -> str:
        name = "efSearch" if kind == "hnsw" else "nprobe"
        verdict = "" if self.met else f", short of the {TARGET_RECALL} sought"
        whose = "new images held out of its" if self.held_out else "of its own"
        return (f"{name} {self.reach}: recall@{CALIBRATION_K} {self.recall:.3f} for "
                f"{self.queries} {whose} {self.rows:,}{verdict}")


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


def needs_calibration(approx: Calibrated, size: int) -> bool:
    """Whether the index, of `size` images once up to date, was never measured or will have
    grown by RECALIBRATE_GROWTH since."""
    if not ladder(approx) or size <= CALIBRATION_K:
        return False
    known = approx.calibration
    return known is None or size > (1 + RECALIBRATE_GROWTH) * known.rows


def held_out_rows(pool: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """The rows to hold out of an index until it is calibrated: up to CALIBRATION_QUERIES of
    `pool` (all rows at a build, the new ones when it grows), at most a quarter of them;
    None when that is under MIN_HELD_OUT."""
    count = min(CALIBRATION_QUERIES, len(pool) // 4)
    if count < MIN_HELD_OUT:
        return None
    return np.sort(np.random.default_rng(seed).choice(pool, count, replace=False))


def calibrate(approx: Calibrated, exact: ExactIndex, ids: np.ndarray,
              held_out: np.ndarray | None = None, seed: int = 0) -> Calibration | None:
    """Measure the smallest reach of `approx`'s ladder at which its candidates hold
    TARGET_RECALL of the exact top CALIBRATION_K of its queries (`exact`'s rows, of the sorted
    image `ids`), set it on `approx` and return it; the largest reach and its recall when none
    does. The queries are the `held_out` rows (not in the index; every other row of `exact`
    is), else CALIBRATION_QUERIES of its own rows, each left out of its answer. None for an
    index with nothing to choose or too few rows."""
    reaches = ladder(approx)
    n = len(exact)
    if not reaches or n <= CALIBRATION_K:
        return None
    k = CALIBRATION_K
    if held_out is not None:
        rows = np.sort(np.asarray(held_out, dtype=np.int64))
    else:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, min(CALIBRATION_QUERIES, n), replace=False))
    truth = true_neighbours(approx, exact, rows, k, rows if held_out is not None else None)
    queries = approx.transform.queries(exact.rows(rows))
    # The index's own rows come back as their own first candidate: one more is asked for.
    count = approx.candidate_count(k) + (held_out is None)
    best = None
    for reach in reaches:
        found = approx.rows_per_query(queries, count, ids, reach)
        hits = [len(np.intersect1d(f[f != r], t)) for f, t, r in zip(found, truth, rows)]
        best = Calibration(reach, float(np.sum(hits)) / truth.size, n, len(rows),
                           held_out is not None)
        if best.met:
            break
    assert best is not None
    approx.calibrated(best)
    return best


def true_neighbours(approx: Calibrated, exact: ExactIndex, rows: np.ndarray, k: int,
                    skip: np.ndarray | None = None) -> np.ndarray:
    """Each of `rows`' k nearest other rows (one row per query), none of the sorted `skip`
    rows, exactly, by L2 in the index's metric space (its transform), which ranks as the
    index's metric does."""
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
        if skip is not None:
            inside = skip[(skip >= chunk[0]) & (skip <= chunk[-1])]
            d[:, inside - chunk[0]] = np.inf
        take = min(k, d.shape[1])
        near = np.argpartition(d, take - 1, axis=1)[:, :take]
        best_d = np.hstack([best_d, np.take_along_axis(d, near, 1)])
        best_r = np.hstack([best_r, chunk[near]])
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, 1)
        best_r = np.take_along_axis(best_r, keep, 1)
    return best_r
