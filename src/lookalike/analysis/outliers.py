"""How unusual each image is: the distance to its k-th nearest neighbour, as FiftyOne's
uniqueness (which weighs the first three). An image with a few near copies is still found
unusual when k is above their number.

Computed with FAISS in the reduced space (space.py), never an all-pairs matrix: exact
(blockwise) up to EXACT_LIMIT images; above, through an inverted file (IVF) that compares
each image with the images of the NPROBE cells nearest to it, since the exact search took
89 s of the 133 s of `analyze` at 100,000 images on a busy 2-core machine.
"""

from __future__ import annotations

import numpy as np

#: The neighbour whose distance is the score: the 5th, so that a group of up to four
#: near-identical odd images still stands out.
OUTLIER_K = 5

#: Above this many images the search is approximate (IVF with sqrt(n) cells, NPROBE searched);
#: a missed neighbour can only make a score larger.
EXACT_LIMIT = 20_000
NPROBE = 16


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
    index = _index(faiss, points)
    index.add(points)
    squared, _ = index.search(points, k + 1)  # the row itself (or a copy of it) comes first
    return np.maximum(squared[:, k].astype(np.float64), 0) / 2


def _index(faiss, points: np.ndarray):
    d = points.shape[1]
    if len(points) <= EXACT_LIMIT:
        return faiss.IndexFlatL2(d)
    cells = int(len(points) ** 0.5)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, cells)
    index.cp.seed = 1234  # the cells' k-means: the same scores every run
    index.train(points)
    index.nprobe = NPROBE
    return index
