"""The user's judgement in a search: negative references ("not like this") and relevance
feedback ("more like these", refine from images marked right and wrong).

Negative references keep Orange's rule for the positives (an image's distance is its
distance to the nearest positive) and add the distance to the nearest negative: `negative_cost`
combines the two, and the exact search ranks by it (`ExactIndex.search_with_negatives`).

Relevance feedback scores every image of the collection by one of REFINE_METHODS, fitted on
the marked images (`refine_scores`); the numbers behind the defaults are in
benchmarks/quality.py (`--feedback`) and the README ("Not like this, more like these").
"""

from __future__ import annotations

import numpy as np

from ..errors import LookalikeError

#: How negatives enter the ranking (`negative_cost`): "subtract" ranks by d+ - w * d-
#: (d+: distance to the nearest positive, d-: to the nearest negative); "exclude" ranks the
#: images nearer to a positive than to every negative first, by d+, then the others, by d+.
NEGATIVE_RULES = ("subtract", "exclude")
DEFAULT_NEGATIVE_RULE = "subtract"
SUBTRACT_WEIGHT = 0.5

#: "exclude" puts an image nearer to a negative this far behind (distances are at most 2
#: for the cosine family; any metric's are finite).
_PUSHED = 1e9

#: Ways to refine (`refine_scores`): a Rocchio query move, a logistic regression on the
#: vectors, and exemplar SVMs (one linear SVM per positive, the best of them scores).
REFINE_METHODS = ("rocchio", "linear", "exemplar")
DEFAULT_REFINE_METHOD = "linear"
ROCCHIO_BETA = 0.5
#: Images drawn at random from the collection as weak negatives of the fitted models.
WEAK_NEGATIVES = 200


def negative_cost(d_pos: np.ndarray, d_neg: np.ndarray, rule: str = DEFAULT_NEGATIVE_RULE
                  ) -> np.ndarray:
    """The ranking cost (lower first) of images at `d_pos` from their nearest positive and
    `d_neg` from their nearest negative. Increasing in d_pos, non-increasing in d_neg, so
    bounds on the two distances bound it."""
    d_pos = np.asarray(d_pos, dtype=np.float64)
    d_neg = np.asarray(d_neg, dtype=np.float64)
    if rule == "subtract":
        return d_pos - SUBTRACT_WEIGHT * d_neg
    if rule == "exclude":
        return np.where(d_neg < d_pos, _PUSHED + d_pos, d_pos)
    raise LookalikeError(f"unknown rule for negatives {rule!r}; choose one of "
                         f"{', '.join(NEGATIVE_RULES)}")


def check_refine_method(method: str) -> str:
    if method not in REFINE_METHODS:
        raise LookalikeError(f"unknown refine method {method!r}; choose one of "
                             f"{', '.join(REFINE_METHODS)}")
    return method


def refine_scores(matrix: np.ndarray, inverse_norms: np.ndarray, positives: np.ndarray,
                  negatives: np.ndarray, method: str = DEFAULT_REFINE_METHOD, *,
                  weak_rows: np.ndarray | None = None) -> np.ndarray:
    """A score for every row of `matrix` (higher: more wanted), from the vectors of the
    images marked right (`positives`, at least one) and wrong (`negatives`, maybe none).
    Vectors are compared by direction (made unit), as the cosine does; `inverse_norms` are
    the rows' 1/|x| (0 for a zero row). `weak_rows`: rows of `matrix` taken as weak
    negatives by the fitted methods (default: WEAK_NEGATIVES drawn with a fixed seed)."""
    method = check_refine_method(method)
    pos = _unit(np.atleast_2d(np.asarray(positives, dtype=np.float64)))
    neg = _unit(np.asarray(negatives, dtype=np.float64).reshape(-1, pos.shape[1]))
    if method == "rocchio":
        query = pos.mean(0) - (ROCCHIO_BETA * neg.mean(0) if len(neg) else 0.0)
        return _linear_scores(matrix, inverse_norms, query, 0.0)
    if weak_rows is None:
        rng = np.random.default_rng(0)
        weak_rows = rng.choice(len(matrix), min(WEAK_NEGATIVES, len(matrix)), replace=False)
    weak = _unit(np.asarray(matrix[np.sort(weak_rows)], dtype=np.float64))
    if method == "linear":
        w, b = _fit_logistic(pos, np.vstack([neg, weak]))
        return _linear_scores(matrix, inverse_norms, w, b)
    best = np.full(len(matrix), -np.inf, np.float32)
    for p in pos:  # exemplar SVMs: each positive against every negative
        w, b = _fit_svm(p[None], np.vstack([neg, weak]))
        np.maximum(best, _linear_scores(matrix, inverse_norms, w / np.linalg.norm(w),
                                        b / np.linalg.norm(w)), out=best)
    return best


def top_rows(scores: np.ndarray, k: int | None, candidates: np.ndarray | None = None,
             exclude: np.ndarray | None = None) -> np.ndarray:
    """The rows of the k highest scores (k=None: all), highest first, ties by row; only
    `candidates` (None: all) and never `exclude`."""
    allowed = np.ones(len(scores), bool)
    if candidates is not None:
        allowed[:] = False
        allowed[candidates] = True
    if exclude is not None:
        allowed[exclude] = False
    rows = np.flatnonzero(allowed)
    key = -np.asarray(scores, dtype=np.float64)[rows]
    if k is not None and k < len(rows):
        keep = np.argpartition(key, k - 1)[:k]
        cut = key[keep].max()
        rows, key = rows[key <= cut], key[key <= cut]  # all tied at the cut, then by row
    return rows[np.lexsort((rows, key))][:k]


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _linear_scores(matrix: np.ndarray, inverse_norms: np.ndarray, w: np.ndarray,
                   b: float) -> np.ndarray:
    """w . x / |x| + b for every row x, in one float32 matrix-vector product."""
    scores = matrix @ np.asarray(w, dtype=np.float32)
    scores *= inverse_norms.astype(np.float32, copy=False)
    return scores + np.float32(b)


def _fit_logistic(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    model = LogisticRegression(C=10.0, class_weight="balanced", max_iter=200)
    model.fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def _fit_svm(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.svm import LinearSVC

    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    model = LinearSVC(C=1.0, class_weight={1: 50.0, 0: 0.5}, max_iter=2000)
    model.fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


__all__ = ["DEFAULT_NEGATIVE_RULE", "DEFAULT_REFINE_METHOD", "NEGATIVE_RULES", "REFINE_METHODS",
           "check_refine_method", "negative_cost", "refine_scores", "top_rows"]
