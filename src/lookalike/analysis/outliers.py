"""How unusual each image is: the distance to its k-th nearest neighbour, as FiftyOne's
uniqueness (which weighs the first three). An image with a few near copies is still found
unusual when k is above their number.

Computed with FAISS's exact search in the reduced space (space.py): blockwise, in memory
bounded by the blocks, never an all-pairs matrix.
"""

from __future__ import annotations

import numpy as np

#: The neighbour whose distance is the score: the 5th, so that a group of up to four
#: near-identical odd images still stands out.
OUTLIER_K = 5


def outlier_scores(points: np.ndarray, k: int = OUTLIER_K) -> np.ndarray:
    """Each row's distance (half the squared Euclidean distance in the reduced space, about
    the cosine distance of the original vectors) to its k-th nearest other row; 0 for a
    collection of one."""
    import faiss

    n = len(points)
    if n < 2:
        return np.zeros(n)
    k = min(k, n - 1)
    points = np.ascontiguousarray(points, np.float32)
    index = faiss.IndexFlatL2(points.shape[1])
    index.add(points)
    squared, _ = index.search(points, k + 1)  # the row itself (or a copy of it) comes first
    return np.maximum(squared[:, k].astype(np.float64), 0) / 2
