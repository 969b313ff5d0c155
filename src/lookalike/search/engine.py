"""The search engine of one collection: which search answers a query (exact, or FAISS
candidates re-ranked exactly), and what it keeps between searches (each model's matrix and
its row statistics, the FAISS indexes saved beside the database as `<db>.faiss/`).

`approximate` is resolved once into one of METHODS, as scikit-learn resolves `algorithm`, by
one policy (`choose_method`) that weighs the collection's size, free memory and whether the
graph index is built. The engine speaks image ids; rows of the matrix stay inside it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..catalogue.cached import ByGeneration
from ..catalogue.matrix import load_matrix
from ..catalogue.paths import faiss_folder
from ..catalogue.store import Store
from ..errors import LookalikeError
from ..locks import held
from .approximate import (
    AUTO_THRESHOLD,
    FAMILY,
    KINDS,
    ApproximateIndex,
    codes_bytes,
    graph_bytes,
    pq_usable,
    refuse_unusable_pq,
    search as approximate_search,
    supports as approximate_supports,
)
from .calibration import Calibration, calibrate, held_out_rows, needs_calibration
from .exact import ExactIndex
from .graph_search import GraphRequests, supports as graph_answers_each
from .memory import available_memory
from .normalise import Normalisation, normalise

#: What answers a search: the exact scan, or FAISS candidates (a compressed scan of 8-bit
#: codes, an inverted file of 8-bit or of product-quantised codes, or a graph) re-ranked
#: exactly.
METHODS = ("exact", *KINDS)

#: Below this many images the policy answers exactly even when the graph is built: the exact
#: pass takes about 2 ms there (README, "Search speed").
EXACT_BELOW = 20_000

#: The graph is chosen only where free memory holds it this many times over; else IVF of
#: 8-bit codes where memory holds them so, else IVF-PQ (with FAISS's precomputed table about
#: 7x smaller than 8-bit codes: `ivfpq_bytes`).
MEMORY_MARGIN = 2.0

#: `approximate` as a caller gives it -> what it asks for ("default": the policy, exact for
#: small collections; "approximate": the policy, never exact).
_ASKED = {None: "default", False: "exact", True: "approximate"}
_NAMED = {"auto": "approximate", **{kind: kind for kind in KINDS}}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Situation:
    """What the policy weighs: the collection's size and vector length, whether the graph
    index of the metric's family is built (loaded or saved beside the database, not being
    built), and the memory available (bytes; None: unknown, taken as plenty). The float32
    matrix is memory-mapped from disk and counts in none of these. `graph_short`: the built
    graph's calibration fell short of calibration.TARGET_RECALL at its longest walk."""

    n: int
    dim: int = 1280
    graph_built: bool = False
    free_memory: int | None = None
    graph_short: bool = False

    @property
    def graph_usable(self) -> bool:
        return self.graph_built and not self.graph_short

    @property
    def graph_fits(self) -> bool:
        return self._fits(graph_bytes(self.n, self.dim))

    @property
    def codes_fit(self) -> bool:
        """Whether the 8-bit codes of the scan or IVF fit."""
        return self._fits(codes_bytes(self.n, self.dim))

    def _fits(self, size: int) -> bool:
        return self.free_memory is None or self.free_memory >= MEMORY_MARGIN * size


@dataclass(frozen=True)
class SearchPlan:
    """What `SearchEngine.plan` tells: the method the policy takes for a top-10 search, the
    situation it weighed, and the approximate indexes saved for the metric's family with their
    calibrations (None: not measured)."""

    method: str
    situation: Situation
    indexes: dict[str, Calibration | None]

    def describe(self) -> str:
        """The choice and its reason, in one line for people."""
        s, names = self.situation, {"hnsw": "the graph index (HNSW)", "ivf": "the inverted "
                                    "file (IVF, 8-bit codes)", "ivfpq": "the inverted file of "
                                    "product-quantised codes (IVF-PQ)", "scan": "the "
                                    "compressed scan"}
        if self.method == "exact":
            why = (f"under {EXACT_BELOW:,} images" if s.n < EXACT_BELOW else
                   f"under {AUTO_THRESHOLD:,} images and no graph index that meets the recall "
                   "sought" if s.n < AUTO_THRESHOLD else "the metric has no approximate search")
            return f"exact search ({why})"
        if self.method == "scan":  # compares every row: nothing to calibrate
            return names["scan"] + " of every row's 8-bit code"
        measured = self.indexes.get(self.method)
        line = names[self.method] + (
            f", {measured.describe(self.method)}" if measured else
            ", not yet calibrated (measured at its next search)" if self.method in self.indexes
            else ", built on the first search")
        graph = self.indexes.get("hnsw")
        if self.method != "hnsw" and s.graph_short and graph is not None:
            line += f" (the graph falls short: {graph.describe('hnsw')})"
        elif self.method != "hnsw" and not s.graph_fits:
            line += " (the graph index would not fit twice in free memory)"
        return line


class SearchEngine:
    """Searches the vectors of one catalogue (`store`), loading each model's matrix once per
    catalogue generation. Engines of several Collections open on the same database can
    share what they load (`share`): what one loads or builds, the others use."""

    def __init__(self, store: Store, share: SearchEngine | None = None):
        self.store = store
        self._exact: ByGeneration = share._exact if share is not None else ByGeneration()
        self._approx: dict[tuple[str, str, str], tuple[int, ApproximateIndex]] = \
            share._approx if share is not None else {}
        # One lock per index: a build (minutes for a large graph) happens once, and the
        # policy sees an index being built as not built, so searches go on exactly meanwhile.
        self._building: dict[tuple[str, str, str], threading.Lock] = \
            share._building if share is not None else {}
        self._locks_lock: threading.Lock = (share._locks_lock if share is not None
                                            else threading.Lock())
        # Saved graphs' calibrations by index, with the file's stamp: read once per change.
        self._saved_calibrations: dict[tuple[str, str, str],
                                       tuple[tuple[int, int], Calibration | None]] = \
            share._saved_calibrations if share is not None else {}
        # (size, modification time) of each index file as this engine last loaded or saved it
        self._saved: dict[tuple[str, str, str], tuple[int, int] | None] = \
            share._saved if share is not None else {}
        # Single-query graph searches from several threads (a server's requests) merge here.
        self._graph_requests: GraphRequests = (share._graph_requests if share is not None
                                               else GraphRequests())

    def index(self, model: str, normalisation: Normalisation | None = None
              ) -> tuple[np.ndarray, ExactIndex]:
        """(sorted image ids, the exact index over their vectors) of `model`; with a
        `normalisation`, over the vectors normalised per plate (search/normalise.py), derived
        from the stored ones and kept in memory for this catalogue generation."""
        if normalisation is not None:
            return self._exact.get(self.store.generation, (model, normalisation),
                                   lambda: self._normalised(model, normalisation))
        return self._exact.get(self.store.generation, model,
                               lambda: _exact_index(self.store, model))

    def _normalised(self, model: str, how: Normalisation) -> tuple[np.ndarray, ExactIndex]:
        ids, index = self.index(model)
        extras = [row.get("extras") for row in self.store.rows(ids.tolist())]
        return ids, ExactIndex(normalise(index.matrix, extras, how))

    def prepare(self, model: str) -> None:
        """Build now the 8-bit first pass of exact cosine search (built anyway after a few
        searches): a server calls it at start-up."""
        self.index(model)[1].start_int8(wait=True)

    def prepare_graph(self, model: str, metric: str = "Cosine") -> bool:
        """Build (or load and bring up to date) the graph index of `model` for `metric`'s
        family now, unless the policy would never use it (a small collection): a server
        calls it in the background at start-up. A graph whose calibration falls short of the
        recall sought is kept, and the index the policy takes instead (the inverted file, on
        a collection large enough to search approximately) is built too. Returns whether the
        graph is ready."""
        ids, index = self.index(model)
        if len(ids) < EXACT_BELOW or not approximate_supports(metric):
            return False
        self._approximate_index(model, metric, "hnsw", ids, index)
        instead = choose_method(None, self.situation(model, metric, len(ids), index.dim), metric,
                                k=10)
        if instead not in ("exact", "hnsw"):
            self._approximate_index(model, metric, instead, ids, index)
        return True

    def situation(self, model: str, metric: str, n: int, dim: int) -> Situation:
        """What `choose_method` needs to know about this collection now."""
        built = self._graph_built(model, metric)
        short = built and self._graph_short(model, metric)
        # Free memory matters only while the graph is not built (reading it: /proc/meminfo).
        return Situation(n, dim, built, None if built and not short else available_memory(),
                         short)

    def plan(self, model: str, metric: str, n: int, dim: int) -> SearchPlan:
        """Which search answers a top-10 search of `model` (`n` vectors of `dim` values) by
        `metric` now, and why; with the approximate indexes saved for it and their
        calibrations."""
        situation = self.situation(model, metric, n, dim)
        method = choose_method(None, situation, metric, 10)
        saved = {}
        if approximate_supports(metric):
            for kind in KINDS:
                key = (model, FAMILY[metric], kind)
                loaded = self._approx.get(key)
                if loaded is not None:
                    saved[kind] = loaded[1].calibration
                elif self._index_path(key).is_file():
                    saved[kind] = ApproximateIndex.saved_calibration(self._index_path(key))
        return SearchPlan(method, situation, saved)

    def answers_from_graph(self, model: str, metric: str, k: int | None,
                           approximate: bool | str | None = None) -> bool:
        """Whether `search` of one query with these arguments and no filter would be answered
        by the graph as it is in memory now: the model's matrix and the graph of `metric`'s
        family loaded for the catalogue's current generation, so that nothing is loaded,
        built or brought up to date first. Computes nothing and waits for nothing."""
        if not approximate_supports(metric):
            return False
        generation = self.store.generation
        loaded = self._exact.peek(generation, model)
        graph = self._approx.get((model, FAMILY[metric], "hnsw"))
        if loaded is None or graph is None or graph[0] != generation:
            return False
        ids, index = loaded
        try:
            method = choose_method(approximate, self.situation(model, metric, len(ids),
                                                               index.dim), metric, k)
        except LookalikeError:
            return False
        return method == "hnsw" and graph_answers_each(graph[1], metric)

    def _graph_built(self, model: str, metric: str) -> bool:
        if not approximate_supports(metric):
            return False
        key = (model, FAMILY[metric], "hnsw")
        lock = self._lock(key)
        if lock.locked():  # being built (or brought up to date): not yet
            return False
        return key in self._approx or self._index_path(key).is_file()

    def _graph_short(self, model: str, metric: str) -> bool:
        """Whether the built graph's calibration fell short of the recall sought: read from
        the graph in memory, else from its saved metadata (once per change of the file)."""
        key = (model, FAMILY[metric], "hnsw")
        loaded = self._approx.get(key)
        if loaded is not None:
            calibration = loaded[1].calibration
        else:
            path = self._index_path(key)
            stamp = _stamp(path)
            if stamp is None:
                return False
            known = self._saved_calibrations.get(key)
            if known is None or known[0] != stamp:
                known = self._saved_calibrations[key] = (
                    stamp, ApproximateIndex.saved_calibration(path))
            calibration = known[1]
        return calibration is not None and not calibration.met

    def _lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._locks_lock:
            return self._building.setdefault(key, threading.Lock())

    def _index_path(self, key: tuple[str, str, str]):
        model, family, kind = key
        return faiss_folder(self.store.path) / f"{model}.{family}.{kind}.index"

    def forget(self) -> None:
        """Let go of the loaded matrices (after indexing: the next search loads the new ones)."""
        self._exact.clear()

    def search(self, model: str, queries: np.ndarray, k: int | None, metric: str, *,
               exclude: np.ndarray | None = None, among: np.ndarray | None = None,
               approximate: bool | str | None = None, return_method: bool = False,
               normalisation: Normalisation | None = None) -> tuple:
        """(image ids, distances, position of each one's nearest query) of the k images
        nearest to any query, nearest first (`k=None`: every one); with `return_method`, also
        the one of METHODS that answered. `exclude`: image ids never returned; `among`: if
        given, only these image ids are searched. `metric` is canonical
        (metrics.canonical_metric). A `normalisation` searches the normalised vectors,
        exactly (FAISS indexes hold the stored ones)."""
        ids, index = self.index(model, normalisation)
        if normalisation is not None and approximate not in (None, False):
            raise LookalikeError("searches with per-plate normalisation (--normalise) are "
                                 "exact; leave out --approximate")
        method = "exact" if normalisation is not None else choose_method(
            approximate, self.situation(model, metric, len(ids), index.dim), metric, k,
            filtered=among is not None)
        if method != "exact":  # its ids and index: the catalogue may have moved on meanwhile
            approx, ids, index = self._approximate_index(model, metric, method, ids, index)
        skip = None if exclude is None else _rows_of(ids, exclude)
        if method == "exact":
            rows = None if among is None else np.flatnonzero(np.isin(ids, among))
            found, dist, nearest = index.search(queries, k, metric, exclude=skip,
                                                candidates=rows, return_query=True)
        elif len(np.atleast_2d(queries)) == 1 and graph_answers_each(approx, metric):
            assert k is not None  # choose_method: k=None is exact
            found, dist, nearest = self._graph_requests.search(approx, index, ids, queries, k,
                                                               metric, exclude_rows=skip)
        else:
            assert k is not None
            found, dist, nearest = approximate_search(approx, index, ids, queries, k, metric,
                                                      exclude_rows=skip, return_query=True)
        if return_method:
            return ids[found], dist, nearest, method
        return ids[found], dist, nearest

    def _approximate_index(self, model: str, metric: str, kind: str, ids: np.ndarray,
                           index: ExactIndex) -> tuple[ApproximateIndex, np.ndarray, ExactIndex]:
        """The FAISS index of `kind` for `metric`'s family, loaded from `<db>.faiss/` or built,
        brought up to date with the catalogue; with the ids and exact index it matches."""
        key = (model, FAMILY[metric], kind)
        cached = self._approx.get(key)
        if cached is not None and cached[0] == self.store.generation:
            return cached[1], ids, index
        path = self._index_path(key)

        def waiting() -> None:
            log.info("%s: waiting for another process that is bringing it up to date", path.name)
        # Across processes too (a server's workers, two commands on one database): one builds
        # or updates the saved index, the others wait and then load what it saved.
        with self._lock(key), held(path.with_name(path.name + ".lock"), on_wait=waiting):
            return self._bring_up_to_date(key, metric, ids, index)

    def _bring_up_to_date(self, key: tuple[str, str, str], metric: str, ids: np.ndarray,
                          index: ExactIndex) -> tuple[ApproximateIndex, np.ndarray, ExactIndex]:
        model, _, kind = key
        generation = self.store.generation
        cached = self._approx.get(key)
        if cached is not None and cached[0] == generation:  # another thread just did it
            return cached[1], ids, index
        path = self._index_path(key)
        approx = self._saved_or(key, cached, path)
        current_ids, hashes = self.store.vector_hashes(model)
        if not np.array_equal(current_ids, ids):  # the catalogue moved on since the matrix loaded
            ids, index = self.index(model)
            current_ids, hashes = self.store.vector_hashes(model)
        # A graph has nothing trained to outgrow; the others are retrained at twice the size.
        outgrown = kind != "hnsw" and approx is not None and len(ids) >= 2 * max(
            approx.trained_on, 1)
        held = None  # calibration's queries, held out of the index until it is measured
        if approx is None or outgrown or approx.kind != kind:
            approx, held = _built(path, ids, hashes, index, metric, kind)
            changed = True
        else:
            if needs_calibration(approx, len(ids)):  # grown by a quarter since it was measured
                held = held_out_rows(approx.new_rows(ids))
            changed = approx.sync(ids, hashes, index, hold_out=held) > 0
            if approx.stale:  # too many tombstones in the graph
                approx, held = _built(path, ids, hashes, index, metric, kind)
        changed = _calibrated(approx, model, index, ids, hashes, held) or changed
        if changed:
            try:
                approx.save(path)
            except OSError:
                pass  # still usable from memory
        self._saved[key] = _stamp(path)
        self._approx[key] = (generation, approx)
        return approx, ids, index

    def _saved_or(self, key: tuple[str, str, str], cached: tuple[int, ApproximateIndex] | None,
                  path) -> ApproximateIndex | None:
        """The index to bring up to date: the one in memory, unless another process has saved
        a newer one since this one was loaded or saved (then that: it may need no change)."""
        if cached is not None and self._saved.get(key) == _stamp(path):
            return cached[1]
        loaded = ApproximateIndex.load(path)
        if loaded is not None:
            log.info("%s: loaded (%d vectors)", path.name, loaded.ntotal)
            return loaded
        return cached[1] if cached is not None else None


def choose_method(approximate: bool | str | None, situation: Situation | int, metric: str,
                  k: int | None, filtered: bool = False) -> str:
    """The one of METHODS that answers. `approximate`: None (the policy below), False
    (exact), True (the policy, never exact) or a kind ("scan", "ivf", "ivfpq", "hnsw");
    `situation`:
    the collection (a number of images alone: nothing built, memory unknown); a canonical
    `metric`. k=None and filtered searches are exact, and so are metrics FAISS cannot serve
    (an error if FAISS was asked for).

    The policy: exact below EXACT_BELOW images (and below AUTO_THRESHOLD unless the graph is
    built); else the graph when it is built and its calibration met the recall sought
    (search/calibration.py), or when it is not built and fits in free memory (MEMORY_MARGIN
    times its size; built on first use); else IVF where its 8-bit codes fit so, else IVF-PQ
    (IVF where the vectors' length has no cut into PQ_MIN_PARTS parts, `pq_usable`). Asked
    for approximate search on a small collection without a graph: the compressed scan
    (IVF-PQ where its codes do not fit)."""
    if isinstance(situation, int):
        situation = Situation(situation)
    asked = _asked(approximate)
    if asked == "exact" or k is None or filtered:
        return "exact"
    if not approximate_supports(metric):
        if asked != "default":
            raise LookalikeError(f"{metric} has no approximate search; it is always exact "
                                 "(approximate search covers Cosine, Euclidean, Pearson, "
                                 "Spearman, their absolute forms and Mahalanobis)")
        return "exact"
    if asked == "ivfpq":
        refuse_unusable_pq(situation.dim)
    if asked not in ("default", "approximate"):
        return asked
    n = situation.n
    if asked == "default" and (n < EXACT_BELOW or (n < AUTO_THRESHOLD
                                                   and not situation.graph_usable)):
        return "exact"
    if situation.graph_usable:
        return "hnsw"
    if n >= AUTO_THRESHOLD and situation.graph_fits and not situation.graph_built:
        return "hnsw"
    if not situation.codes_fit and pq_usable(situation.dim):
        return "ivfpq"
    return "ivf" if n >= AUTO_THRESHOLD else "scan"


def _asked(approximate: bool | str | None) -> str:
    for value, asked in _ASKED.items():
        if approximate is value:
            return asked
    if isinstance(approximate, str) and approximate in _NAMED:
        return _NAMED[approximate]
    kinds = ", ".join(repr(kind) for kind in KINDS)
    raise LookalikeError(f"approximate must be True, False, None or one of {kinds}, "
                         f"not {approximate!r}")


def _rows_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Sorted rows of those of `wanted` image ids that are in the sorted `ids`: a binary
    search per wanted id (np.isin over every id took 0.3 ms of a 1.2 ms search at 100k)."""
    wanted = np.unique(np.asarray(wanted, dtype=ids.dtype))
    rows = np.searchsorted(ids, wanted)
    inside = rows < len(ids)
    rows, wanted = rows[inside], wanted[inside]
    return rows[ids[rows] == wanted]


def _built(path, ids: np.ndarray, hashes: np.ndarray, index: ExactIndex, metric: str,
           kind: str) -> tuple[ApproximateIndex, np.ndarray | None]:
    """(the index of `kind` over every row, but those held out for its calibration, which
    `_calibrated` adds; those rows, None when none)."""
    started = time.perf_counter()
    held = None if kind == "scan" else held_out_rows(np.arange(len(ids)))
    made = ApproximateIndex.build(ids, hashes, index, metric, kind, hold_out=held)
    log.info("%s: built (%d vectors) in %.1f s", path.name, made.ntotal,
             time.perf_counter() - started)
    return made, held


def _calibrated(approx: ApproximateIndex, model: str, index: ExactIndex, ids: np.ndarray,
                hashes: np.ndarray, held: np.ndarray | None) -> bool:
    """Calibrate `approx` if it is due (search/calibration.py), on the `held` rows when some
    were held out of it, which are then added. Returns whether it changed."""
    if held is None and not needs_calibration(approx, len(ids)):
        return False
    measured = calibrate(approx, index, ids, held_out=held)
    if held is not None:
        approx.add_rows(ids, hashes, index, held)
    if measured is not None:
        log.info("%s index of %s: %s", approx.kind, model, measured.describe(approx.kind))
    return True


def _stamp(path) -> tuple[int, int] | None:
    """(size, modification time in ns) of a saved index, None when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _exact_index(store: Store, model: str) -> tuple[np.ndarray, ExactIndex]:
    ids, matrix = load_matrix(store, model)
    return ids, ExactIndex(matrix)


__all__ = ["EXACT_BELOW", "METHODS", "SearchEngine", "Situation", "available_memory",
           "choose_method"]
