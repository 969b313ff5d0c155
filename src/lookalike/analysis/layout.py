"""Two-dimensional layouts of a collection's vectors (its map): UMAP (umap-learn), t-SNE
(openTSNE, as Orange uses) and PCA, each fitted once and able to place new vectors into the
layout it fitted without moving the others.

Vectors are compared as the search compares them by default, by cosine: rows are scaled to
unit length, then reduced by PCA to at most PCA_DIMENSIONS (UMAP and t-SNE on 1280 dimensions
cost several times more and lay out no better), then laid out. A seed makes every method
deterministic. umap-learn runs single-threaded when seeded; on two cores its unseeded, parallel
run was no faster (benchmarks/map.py, 10,000 x 1280: 25 s seeded, 32 s unseeded, on a busy
machine), and a map that moved on every refit would confuse: the seed is always set.

umap-learn and openTSNE are imported only when a layout is fitted or placed (importing numba
takes seconds).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The layout methods, the default first.
METHODS = ("umap", "tsne", "pca")
DEFAULT_METHOD = "umap"

#: Vectors are reduced by PCA to this many dimensions before UMAP and t-SNE.
PCA_DIMENSIONS = 50

#: UMAP and t-SNE need a few neighbours per point; fewer images than this are laid out by PCA.
MIN_NONLINEAR = 5

DEFAULT_SEED = 0


@dataclass
class Projection:
    """Unit rows, centred and projected on the principal axes: `(unit(X) - mean) @ axes.T`."""

    mean: np.ndarray    # (dim,) float32
    axes: np.ndarray    # (k, dim) float32

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        return ((_unit(vectors) - self.mean) @ self.axes.T).astype(np.float32)


@dataclass
class Fitted:
    """A fitted layout: `coords` (n, 2) float32 of the fitted vectors, `method` actually used
    (PCA below MIN_NONLINEAR images), the projection, and for UMAP and t-SNE the fitted object
    that places new points (`reducer`, picklable)."""

    coords: np.ndarray
    method: str
    projection: Projection
    reducer: Any = None


def fit(vectors: np.ndarray, method: str = DEFAULT_METHOD, seed: int = DEFAULT_SEED) -> Fitted:
    """Lay out `vectors` (n, dim) in two dimensions with `method` (one of METHODS)."""
    n = len(vectors)
    if method != "pca" and n < MIN_NONLINEAR:
        method = "pca"
    projection = _principal_axes(vectors, 2 if method == "pca" else PCA_DIMENSIONS, seed)
    reduced = projection(vectors)
    if method == "pca":
        return Fitted(_pad(reduced), "pca", projection)
    if method == "umap":
        reducer = _umap(n, seed)
        coords = reducer.fit_transform(reduced)
        return Fitted(np.asarray(coords, np.float32), "umap", projection, reducer)
    embedding = _tsne(n, seed).fit(reduced)
    return Fitted(np.asarray(embedding, np.float32), "tsne", projection, embedding)


def place(fitted: Fitted, vectors: np.ndarray) -> np.ndarray:
    """(m, 2) positions of new `vectors` in the layout `fitted`, which does not move."""
    if not len(vectors):
        return np.zeros((0, 2), np.float32)
    reduced = fitted.projection(vectors)
    if fitted.method == "pca":
        return _pad(reduced)
    if fitted.method == "umap":
        return np.asarray(fitted.reducer.transform(reduced), np.float32)
    n = len(fitted.coords)
    quiet = logging.getLogger("openTSNE")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        placed = fitted.reducer.transform(reduced, perplexity=min(5.0, max(1.0, (n - 1) / 3)))
    finally:
        quiet.setLevel(level)
    return np.asarray(placed, np.float32)


def _unit(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def _principal_axes(vectors: np.ndarray, k: int, seed: int) -> Projection:
    """The first `k` principal axes of the unit rows (fewer when there are fewer rows)."""
    x = _unit(vectors)
    mean = x.mean(axis=0)
    k = max(1, min(k, len(x) - 1, x.shape[1]))
    if len(x) > 2000 and k < x.shape[1] // 4:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(x)
        axes = pca.components_
    else:
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        axes = vt[:k]
    # A sign convention, so that the same vectors give the same picture whatever the solver.
    signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
    axes = axes * np.where(signs == 0, 1, signs)[:, None]
    return Projection(mean.astype(np.float32), np.ascontiguousarray(axes, np.float32))


def _pad(reduced: np.ndarray) -> np.ndarray:
    """The first two columns, zeros where there are fewer (a map of one or two images)."""
    out = np.zeros((len(reduced), 2), np.float32)
    width = min(2, reduced.shape[1])
    out[:, :width] = reduced[:, :width]
    return out


def _umap(n: int, seed: int):
    import umap

    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), min_dist=0.1,
                     metric="euclidean", random_state=seed, n_jobs=1, low_memory=True)


def _tsne(n: int, seed: int):
    import openTSNE

    return openTSNE.TSNE(n_components=2, perplexity=min(30.0, max(1.0, (n - 1) / 3)),
                         metric="euclidean", initialization="pca", random_state=seed,
                         n_jobs=1, verbose=False)


__all__ = ["DEFAULT_METHOD", "METHODS", "MIN_NONLINEAR", "Fitted", "Projection", "fit", "place"]
