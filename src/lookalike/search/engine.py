"""The search engine of one collection: which search answers a query (exact, or FAISS
candidates re-ranked exactly), and what it keeps between searches (each model's matrix and
its row statistics, the FAISS indexes saved beside the database as `<db>.faiss/`).

`approximate` is resolved once into one of METHODS, as scikit-learn resolves `algorithm`.
The engine speaks image ids; rows of the matrix stay inside it.
"""

from __future__ import annotations

import numpy as np

from ..catalogue.cached import ByGeneration
from ..catalogue.matrix import load_matrix
from ..catalogue.paths import faiss_folder
from ..catalogue.store import Store
from ..errors import LookalikeError
from .approximate import (
    AUTO_THRESHOLD,
    FAMILY,
    ApproximateIndex,
    search as approximate_search,
    supports as approximate_supports,
)
from .exact import ExactIndex

#: What answers a search: the exact scan, or FAISS candidates (a compressed scan of 8-bit
#: codes, or an inverted file) re-ranked exactly.
METHODS = ("exact", "scan", "ivf")

#: `approximate` as a caller gives it -> what it asks for ("default": FAISS from
#: AUTO_THRESHOLD images on; "approximate": FAISS, IVF from AUTO_THRESHOLD on, else the scan).
_ASKED = {None: "default", False: "exact", True: "approximate"}
_NAMED = {"auto": "approximate", "scan": "scan", "ivf": "ivf"}


class SearchEngine:
    """Searches the vectors of one catalogue (`store`), loading each model's matrix once per
    catalogue generation. Engines of several Collections open on the same database can
    share what they load (`share`): what one loads or builds, the others use."""

    def __init__(self, store: Store, share: SearchEngine | None = None):
        self.store = store
        self._exact: ByGeneration = share._exact if share is not None else ByGeneration()
        self._approx: dict[tuple[str, str, str], tuple[int, ApproximateIndex]] = \
            share._approx if share is not None else {}

    def index(self, model: str) -> tuple[np.ndarray, ExactIndex]:
        """(sorted image ids, the exact index over their vectors) of `model`."""
        return self._exact.get(self.store.generation, model,
                               lambda: _exact_index(self.store, model))

    def prepare(self, model: str) -> None:
        """Build now the 8-bit first pass of exact cosine search (built anyway after a few
        searches): a server calls it at start-up."""
        self.index(model)[1].start_int8(wait=True)

    def forget(self) -> None:
        """Let go of the loaded matrices (after indexing: the next search loads the new ones)."""
        self._exact.clear()

    def search(self, model: str, queries: np.ndarray, k: int | None, metric: str, *,
               exclude: np.ndarray | None = None, among: np.ndarray | None = None,
               approximate: bool | str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image ids, distances, position of each one's nearest query) of the k images
        nearest to any query, nearest first (`k=None`: every one). `exclude`: image ids never
        returned; `among`: if given, only these image ids are searched. `metric` is canonical
        (metrics.canonical_metric)."""
        ids, index = self.index(model)
        method = choose_method(approximate, len(ids), metric, k, filtered=among is not None)
        if method != "exact":  # its ids and index: the catalogue may have moved on meanwhile
            approx, ids, index = self._approximate_index(model, metric, method, ids, index)
        skip = None if exclude is None else np.flatnonzero(np.isin(ids, exclude))
        if method == "exact":
            rows = None if among is None else np.flatnonzero(np.isin(ids, among))
            found, dist, nearest = index.search(queries, k, metric, exclude=skip,
                                                candidates=rows, return_query=True)
        else:
            assert k is not None  # choose_method: k=None is exact
            found, dist, nearest = approximate_search(approx, index, ids, queries, k, metric,
                                                      exclude_rows=skip, return_query=True)
        return ids[found], dist, nearest

    def _approximate_index(self, model: str, metric: str, kind: str, ids: np.ndarray,
                           index: ExactIndex) -> tuple[ApproximateIndex, np.ndarray, ExactIndex]:
        """The FAISS index of `kind` for `metric`'s family, loaded from `<db>.faiss/` or built,
        brought up to date with the catalogue; with the ids and exact index it matches."""
        family = FAMILY[metric]
        key = (model, family, kind)
        generation = self.store.generation
        cached = self._approx.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1], ids, index
        path = faiss_folder(self.store.path) / f"{model}.{family}.{kind}.index"
        approx = cached[1] if cached is not None else ApproximateIndex.load(path)
        current_ids, hashes = self.store.vector_hashes(model)
        if not np.array_equal(current_ids, ids):  # the catalogue moved on since the matrix loaded
            ids, index = self.index(model)
            current_ids, hashes = self.store.vector_hashes(model)
        if approx is None or len(ids) >= 2 * max(approx.trained_on, 1) or approx.kind != kind:
            approx = ApproximateIndex.build(ids, hashes, index, metric, kind)
            changed = True
        else:
            changed = approx.sync(ids, hashes, index) > 0
        if changed:
            try:
                approx.save(path)
            except OSError:
                pass  # still usable from memory
        self._approx[key] = (generation, approx)
        return approx, ids, index


def choose_method(approximate: bool | str | None, n: int, metric: str, k: int | None,
                  filtered: bool = False) -> str:
    """The one of METHODS that answers: `approximate` is None (FAISS from AUTO_THRESHOLD
    images on), False (exact), True (FAISS, IVF from AUTO_THRESHOLD on, else the scan) or
    "scan" / "ivf"; `n` images, a canonical `metric`. k=None and filtered searches are exact,
    and so are metrics FAISS cannot serve (an error if FAISS was asked for)."""
    asked = _asked(approximate)
    if asked == "exact" or k is None or filtered:
        return "exact"
    if not approximate_supports(metric):
        if asked != "default":
            raise LookalikeError(f"{metric} has no approximate search; it is always exact "
                                 "(approximate search covers Cosine, Euclidean, Pearson, "
                                 "Spearman, their absolute forms and Mahalanobis)")
        return "exact"
    if asked == "default":
        return "ivf" if n >= AUTO_THRESHOLD else "exact"
    if asked == "approximate":
        return "ivf" if n >= AUTO_THRESHOLD else "scan"
    return asked


def _asked(approximate: bool | str | None) -> str:
    for value, asked in _ASKED.items():
        if approximate is value:
            return asked
    if isinstance(approximate, str) and approximate in _NAMED:
        return _NAMED[approximate]
    raise LookalikeError(f"approximate must be True, False, None, 'ivf' or 'scan', "
                         f"not {approximate!r}")


def _exact_index(store: Store, model: str) -> tuple[np.ndarray, ExactIndex]:
    ids, matrix = load_matrix(store, model)
    return ids, ExactIndex(matrix)


__all__ = ["METHODS", "SearchEngine", "choose_method"]
