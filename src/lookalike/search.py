"""Exact k-nearest-neighbour search over the rows of a matrix, for one or several queries.

With several queries a row's distance is its minimum distance to any of them (Orange's rule).
The matrix is scanned in chunks so memory stays bounded, the best candidates of each chunk are
kept with `argpartition`, and the final candidates are re-scored exactly.
"""

from __future__ import annotations

import numpy as np

from .metrics import canonical_metric, distances, mahalanobis_transform

CHUNK_ROWS = 65536


def nearest_rows(matrix: np.ndarray, queries: np.ndarray, k: int | None, metric: str = "cosine",
                 exclude: np.ndarray | None = None, candidates: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, distances) of the k rows of `matrix` nearest to any query, ascending.

    `exclude`: row indices never returned; `candidates`: if given, only these rows are searched.
    `k=None` ranks every row. Ties are broken by row index, so results are deterministic.
    """
    name = canonical_metric(metric)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    n = len(matrix)
    allowed = np.ones(n, bool) if candidates is None else np.zeros(n, bool)
    if candidates is not None:
        allowed[np.asarray(candidates, dtype=np.int64)] = True
    if exclude is not None and len(exclude):
        allowed[np.asarray(exclude, dtype=np.int64)] = False
    rows = np.flatnonzero(allowed)
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    if name == "Mahalanobis":
        transform = mahalanobis_transform(matrix)
        matrix = matrix @ transform
        queries = queries @ transform
        name = "Euclidean"
    best = np.empty(len(rows))
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        best[start:start + len(chunk)] = distances(queries, matrix[chunk], name).min(axis=0)
    if k is not None and k < len(rows):
        keep = np.argpartition(best, k - 1)[:k]
        # Include every row tied with the k-th so the tie-break by index is exact.
        kth = best[keep].max()
        keep = np.flatnonzero(best <= kth)
    else:
        keep = np.arange(len(rows))
    order = np.lexsort((rows[keep], best[keep]))
    chosen = keep[order][: (k if k is not None else None)]
    return rows[chosen], best[chosen]
