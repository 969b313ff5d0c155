"""The reduced space the collection analyses work in: a PCA of the unit-length vectors.

Clusters, outlier scores and the diverse sample all need many distances between all images;
in 1280 dimensions at 100,000 images those take minutes on two cores, in 64 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Principal components kept. On the Twemoji sample the first 32 hold 54 % of the variance
#: of the unit vectors and cluster as well as 64 (ARI/NMI within 0.01, README); the outlier
#: distances use 64 plus what is left outside them.
CLUSTER_DIM = 32
DISTANCE_DIM = 64

#: The components are fitted on at most this many rows, evenly spaced (then every row is
#: projected): 64 components of 1280-d vectors are settled long before, and the covariance of
#: 100,000 rows took 19 s of `analyze` on a busy 2-core machine.
FIT_ROWS = 20_000

#: Rows per block when accumulating the covariance: bounded memory at any size.
_BLOCK = 16_384


@dataclass
class ReducedSpace:
    """`clustering`: unit rows of the first CLUSTER_DIM components (cosine geometry);
    `distances`: the first DISTANCE_DIM components plus one coordinate, the length of what
    is left outside them, so that half the squared Euclidean distance there approximates
    (from below) the cosine distance of the original vectors."""

    clustering: np.ndarray
    distances: np.ndarray
    variance_kept: float      # share of the variance in the DISTANCE_DIM components


def reduce(matrix: np.ndarray) -> ReducedSpace:
    """The ReducedSpace of the rows of `matrix` (n x d float32)."""
    n, d = matrix.shape
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1).astype(np.float32)
    mean = unit.mean(axis=0, dtype=np.float64).astype(np.float32)
    fit = unit[np.linspace(0, n - 1, FIT_ROWS).astype(np.int64)] if n > FIT_ROWS else unit
    cov = np.zeros((d, d), np.float64)
    for start in range(0, len(fit), _BLOCK):
        block = fit[start:start + _BLOCK] - mean
        cov += (block.T @ block).astype(np.float64)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    keep = min(DISTANCE_DIM, d, max(n - 1, 1))
    basis = np.ascontiguousarray(vectors[:, order[:keep]], dtype=np.float32)
    centred = unit - mean
    coords = centred @ basis
    left = np.sqrt(np.maximum((centred * centred).sum(axis=1) - (coords * coords).sum(axis=1),
                              0))
    distances = np.hstack([coords, left[:, None]]).astype(np.float32)
    head = coords[:, :CLUSTER_DIM]
    head_norms = np.linalg.norm(head, axis=1, keepdims=True)
    clustering = (head / np.where(head_norms > 0, head_norms, 1)).astype(np.float32)
    total = float(values.sum())
    kept = float(values[order[:keep]].sum()) / total if total > 0 else 1.0
    return ReducedSpace(np.ascontiguousarray(clustering), np.ascontiguousarray(distances), kept)
