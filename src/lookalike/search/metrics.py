"""Orange's distance measures between rows of two matrices, vectorised.

Names and formulas follow Orange's Neighbors widget (Orange 3.40, checked by running it):
Pearson and Spearman distances are (1 - r) / 2, the absolute ones 1 - |r| (so since Orange
3.35), Spearman is Pearson on ranks, Jaccard treats non-zero as 1, Mahalanobis uses the inverse
covariance of the data rows (shrunk towards a multiple of the identity when singular).
Degenerate inputs give defined values where Orange gives NaN: cosine with a zero vector is 1
(0 between two zero vectors), a correlation with a constant vector is 0 (Pearson and Spearman
distance 0.5, their absolute forms 1), Jaccard between two all-zero vectors is 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import LookalikeError

#: Canonical names, as Orange spells them, in Orange's order.
METRICS = ("Euclidean", "Manhattan", "Mahalanobis", "Cosine", "Jaccard", "Spearman",
           "Absolute Spearman", "Pearson", "Absolute Pearson")

#: The metric and the number of look-alikes used when none is asked for: the Python API, the
#: command line and the web app (which sends them to its page in /api/collection) read them here.
DEFAULT_METRIC = "Cosine"
DEFAULT_K = 10

_ALIASES = {name.lower(): name for name in METRICS}
_ALIASES.update({name.lower().replace(" ", "-"): name for name in METRICS})
_ALIASES.update({name.lower().replace(" ", "_"): name for name in METRICS})
_ALIASES.update({name.lower().replace(" ", ""): name for name in METRICS})


class UnknownMetricError(LookalikeError, ValueError):
    pass


def canonical_metric(name: str) -> str:
    """The canonical spelling of a metric name (case-insensitive; '-' or '_' for spaces)."""
    try:
        return _ALIASES[str(name).strip().lower()]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; choose one of: {', '.join(METRICS)}") from None


def _as_2d(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"expected a matrix of row vectors, got an array of shape {a.shape}")
    return a


def _dot(x, y):
    """x @ y.T; small products skip BLAS, whose thread wake-up (milliseconds on a busy
    machine) would dwarf them, e.g. when re-scoring a few hundred search candidates."""
    if x.shape[0] * y.shape[0] * x.shape[1] <= 1 << 22:
        return np.einsum("ik,jk->ij", x, y)
    return x @ y.T


def _euclidean(x, y):
    if x.size * len(y) <= 1 << 24:  # small enough to subtract directly, which is exact
        out = np.empty((len(x), len(y)))
        step = max(1, (1 << 22) // max(1, y.size))
        for i in range(0, len(x), step):
            diff = x[i:i + step, None, :] - y[None, :, :]
            out[i:i + step] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
        return out
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * _dot(x, y)
    return np.sqrt(np.maximum(sq, 0.0))


def _manhattan(x, y):
    out = np.empty((len(x), len(y)))
    step = max(1, (1 << 22) // max(1, y.size))
    for i in range(0, len(x), step):
        out[i:i + step] = np.abs(x[i:i + step, None, :] - y[None, :, :]).sum(-1)
    return out


def _cosine(x, y):
    nx = np.linalg.norm(x, axis=1)
    ny = np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = _dot(x, y) / (nx[:, None] * ny[None, :])
    zx, zy = nx == 0, ny == 0
    sim = np.where(zx[:, None] | zy[None, :], np.where(zx[:, None] & zy[None, :], 1.0, 0.0), sim)
    return np.clip(1.0 - sim, 0.0, 2.0)


def cosine_to_rows(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine distances (float64) of one query (d,) to rows (c, d), as `distances` gives
    them up to the last bit, but each row's value the same whichever rows come with it (a
    row-by-row einsum, no BLAS blocking): exact search and the graph's re-scoring of other
    candidate sets then agree to the bit."""
    dots = np.einsum("cd,d->c", rows, q)
    q_norm = np.sqrt(np.einsum("cd,cd->c", q[None], q[None]))  # the rows' kernel: a row's
    norms = np.sqrt(np.einsum("cd,cd->c", rows, rows)) * q_norm  # distance to itself is 0
    if (norms > 0).all():
        return np.clip(1.0 - dots / norms, 0.0, 2.0)
    return _cosine(q[None], rows)[0]


def _jaccard(x, y):
    bx = (x != 0).astype(np.float64)
    by = (y != 0).astype(np.float64)
    inter = _dot(bx, by)
    union = bx.sum(1)[:, None] + by.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, 1.0 - inter / np.where(union > 0, union, 1), 0.0)


def _centre_normalise(a):
    c = a - a.mean(1, keepdims=True)
    n = np.linalg.norm(c, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, c / np.where(n > 0, n, 1), 0.0)


def _correlation(x, y):
    return np.clip(_dot(_centre_normalise(x), _centre_normalise(y)), -1.0, 1.0)


def rank_rows(a: np.ndarray) -> np.ndarray:
    """Ranks within each row, ties given their average rank (as scipy.stats.rankdata)."""
    a = np.asarray(a, dtype=np.float64)
    n, d = a.shape
    order = np.argsort(a, axis=1, kind="mergesort")
    sorted_vals = np.take_along_axis(a, order, axis=1)
    ranks = np.empty_like(a)
    for i in range(n):
        v = sorted_vals[i]
        # Run boundaries of equal values; each run gets the mean of its positions (1-based).
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        ends = np.r_[starts[1:], d]
        avg = (starts + ends + 1) / 2.0
        ranks[i, order[i]] = np.repeat(avg, ends - starts)
    return ranks


#: Below this many images per dimension the covariance is estimated too poorly for
#: Mahalanobis distances to mean much (on 48 photos of 1280 dimensions the cat's nearest
#: look-alikes were chessboards): `mahalanobis_note` says so where the answer is shown.
MAHALANOBIS_ROWS_PER_DIMENSION = 2

#: A covariance is treated as singular when some dimension is a linear combination of the
#: others up to this share of the largest variance (a Cholesky pivot that small).
_SINGULAR_PIVOT = 1e-10


def mahalanobis_note(rows: int, dim: int) -> str | None:
    """A sentence for people when `rows` vectors of `dim` dimensions are too few for
    Mahalanobis distances to be trusted, else None."""
    needed = MAHALANOBIS_ROWS_PER_DIMENSION * dim
    if rows >= needed:
        return None
    return (f"Mahalanobis distances are unreliable here: the covariance of {dim}-dimensional "
            f"vectors needs about {needed:,} images to be estimated and the collection has "
            f"{rows:,}, so its regularisation and noise decide much of the ranking; Cosine is "
            "the safer choice.")


def mahalanobis_transform(data: np.ndarray, shrinkage: float = 0.1) -> np.ndarray:
    """A matrix W with (x-y) W W^T (x-y)^T the squared Mahalanobis distance for `data`'s rows
    (rows times W are whitened; W W^T is the inverse covariance).

    LAPACK runs on one thread here: at 1280 dimensions its Cholesky, inverse and eigenvalues
    took 0.04-0.2 s each on one thread but up to 2.8 s with OpenBLAS's two threads on a busy
    two-core machine (the first Mahalanobis search on Twemoji took 4.4 s).

    When the covariance C of `data` is well conditioned, W W^T is its exact inverse (as Orange
    and scipy use). When it is singular (always, with more dimensions than rows), C is shrunk
    towards a multiple of the identity first: (1 - s) C + s (trace(C)/d) I, with s = `shrinkage`.
    """
    data = _as_2d(data)
    n, d = data.shape
    if n < 2:
        return np.eye(d)
    centred = data - data.mean(0)
    cov = centred.T @ centred / (n - 1)
    scale = float(np.trace(cov)) / d if d else 0.0
    if not scale > 0 or not np.isfinite(scale):
        return np.eye(d)
    with threadpool_limits(1, user_api="blas"):
        lower = _cholesky(cov) if n > d else None  # rank <= n - 1: singular
        if lower is None:
            cov = (1.0 - shrinkage) * cov
            cov[np.diag_indices(d)] += shrinkage * scale
            lower = np.linalg.cholesky(cov)
        return np.linalg.inv(lower).T


def _cholesky(cov: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of `cov`, or None when `cov` is (nearly) singular: a pivot
    under _SINGULAR_PIVOT of the largest variance."""
    try:
        lower = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return None
    if np.diag(lower).min() ** 2 <= _SINGULAR_PIVOT * np.diag(cov).max():
        return None
    return lower


def distances(x, y=None, metric: str = "Euclidean", *, data=None) -> np.ndarray:
    """Distances between the rows of `x` and of `y` (default: `x`), shape (len(x), len(y)).

    Mahalanobis takes its covariance from `data` if given, else from the rows of `x`, the first
    argument, as Orange does: `Orange.distance.Mahalanobis(e1, e2)` fits on `e1`, and the
    Neighbors widget passes the data rows first and the references second. So
    `distances(collection, references, "mahalanobis")` gives Orange's numbers.
    """
    name = canonical_metric(metric)
    x = _as_2d(x)
    y = x if y is None else _as_2d(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"vectors differ in length: {x.shape[1]} and {y.shape[1]}")
    if name == "Mahalanobis":
        transform = mahalanobis_transform(x if data is None else data)
        return _euclidean(x @ transform, y @ transform)
    if name in ("Spearman", "Absolute Spearman"):
        x, y = rank_rows(x), rank_rows(y)
    fn: Callable | None = {
        "Euclidean": _euclidean,
        "Manhattan": _manhattan,
        "Cosine": _cosine,
        "Jaccard": _jaccard,
    }.get(name)
    if fn is not None:
        return fn(x, y)
    return correlation_distance(_correlation(x, y), name)


def correlation_distance(r, metric: str):
    """Orange's distance for a correlation r: (1 - r) / 2, or 1 - |r| for the absolute forms
    (`metric` canonical; Spearman's r is Pearson's on ranks)."""
    if metric.startswith("Absolute"):
        return 1.0 - np.abs(r)
    return (1.0 - r) / 2.0
