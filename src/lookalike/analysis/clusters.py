"""Clusters of a collection, and how typical each image is of its own.

Up to HDBSCAN_LIMIT images, "auto" is scikit-learn's HDBSCAN: it finds the number of
clusters itself and leaves images that belong to none as noise (-1); its membership
probability is the typicality. Above that, or when a number of clusters is asked for, it is
k-means through FAISS, and typicality is the distance to the centroid turned into 0..1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import LookalikeError

#: HDBSCAN's time grows about with the square of the images in 32 dimensions on two cores:
#: 2.8 s at 10,000, 10.9 s at 20,000 (mixtures of real embeddings); above, k-means.
HDBSCAN_LIMIT = 20_000

#: Fewer images than this are one cluster under "auto": too few to find any structure in.
SMALLEST_AUTO = 10

#: HDBSCAN's smallest cluster; at 20,000 images, 10. min_samples 2 found the most clusters
#: of Twemoji's subcategories (README).
MIN_CLUSTER_SIZE = 5
MIN_SAMPLES = 2

#: k-means iterations, and the seed that makes it repeatable.
KMEANS_ITERATIONS = 20
KMEANS_SEED = 1234

#: k-means runs from this many random starts and keeps the tightest: one start merged two of
#: six well-separated groups in tests/test_analyze.py (ARI 0.79), the best of five does not.
KMEANS_RESTARTS = 5


@dataclass
class Clusters:
    labels: np.ndarray       # int64, -1 for noise
    typicality: np.ndarray   # float64 in 0..1
    method: str              # "hdbscan", "kmeans" or "single"


def check_clusters(clusters: str | int, n: int) -> str | int:
    """`clusters` as "auto" or a number of clusters 1..n, else a LookalikeError."""
    if isinstance(clusters, str) and clusters.strip().lower() == "auto":
        return "auto"
    try:
        count = int(clusters)
    except (TypeError, ValueError):
        raise LookalikeError(f"clusters: {clusters!r} is neither 'auto' nor a number") from None
    if isinstance(clusters, float) and clusters != count:
        raise LookalikeError(f"clusters: {clusters!r} is not a whole number")
    if not 1 <= count <= n:
        raise LookalikeError(f"clusters: {count} is out of range; the collection has {n:,} "
                             f"images, so give 1 to {n:,} (or auto)")
    return count


def find_clusters(points: np.ndarray, clusters: str | int = "auto") -> Clusters:
    """Clusters of the unit rows `points` (space.ReducedSpace.clustering)."""
    n = len(points)
    clusters = check_clusters(clusters, n)
    if clusters == "auto":
        if n < SMALLEST_AUTO:
            return kmeans(points, 1)
        if n <= HDBSCAN_LIMIT:
            return hdbscan(points)
        return kmeans(points, auto_count(n))
    return kmeans(points, int(clusters))


def auto_count(n: int) -> int:
    """k-means' number of clusters under "auto": the rule of thumb sqrt(n / 2), at most 1,000
    (224 at 100,000 images)."""
    return int(min(1000, max(2, round((n / 2) ** 0.5))))


def hdbscan(points: np.ndarray) -> Clusters:
    from sklearn.cluster import HDBSCAN

    size = max(MIN_CLUSTER_SIZE, len(points) // 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = HDBSCAN(min_cluster_size=size, min_samples=MIN_SAMPLES, copy=True)
        labels = model.fit_predict(points.astype(np.float64))
    return Clusters(_renumbered(labels), np.asarray(model.probabilities_, np.float64),
                    "hdbscan")


def kmeans(points: np.ndarray, k: int) -> Clusters:
    """k-means on the unit rows (spherical: centroids kept at unit length)."""
    points = np.ascontiguousarray(points, np.float32)
    if k == 1:
        centroid = points.mean(axis=0, keepdims=True)
        labels = np.zeros(len(points), np.int64)
        distance = 1.0 - points @ _unit(centroid)[0]
        return Clusters(labels, _typicality(distance, labels), "single")
    import faiss

    model = faiss.Kmeans(points.shape[1], k, niter=KMEANS_ITERATIONS, seed=KMEANS_SEED,
                         spherical=True, nredo=KMEANS_RESTARTS, min_points_per_centroid=1,
                         max_points_per_centroid=256)
    model.train(points)
    sims, found = model.index.search(points, 1)
    labels = _renumbered(found[:, 0].astype(np.int64))
    return Clusters(labels, _typicality(1.0 - sims[:, 0].astype(np.float64), labels), "kmeans")


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1)


def _typicality(distance: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1 at the centroid, 0 for the member farthest from it: 1 - distance / the cluster's
    largest distance."""
    distance = np.maximum(np.asarray(distance, np.float64), 0)
    out = np.ones(len(labels))
    if not len(labels):
        return out
    largest = np.zeros(int(labels.max()) + 1)
    np.maximum.at(largest, labels, distance)
    spread = largest[labels]
    np.divide(distance, spread, out=out, where=spread > 0)
    return np.where(spread > 0, 1.0 - out, 1.0)


def _renumbered(labels: np.ndarray) -> np.ndarray:
    """Clusters numbered 0, 1, ... by decreasing size (ties: first member first); -1 kept."""
    labels = np.asarray(labels, np.int64)
    member = labels >= 0
    found, first, sizes = np.unique(labels[member], return_index=True, return_counts=True)
    order = np.lexsort((first, -sizes))  # by size, then by first member
    new_number = np.empty(len(found), np.int64)
    new_number[order] = np.arange(len(found))
    out = np.full(len(labels), -1, np.int64)
    out[member] = new_number[np.searchsorted(found, labels[member])]
    return out
