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
from threadpoolctl import threadpool_limits

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
    if method != "exemplar":
        w, b = linear_model(matrix, positives, negatives, method, weak_rows=weak_rows)
        return _linear_scores(matrix, inverse_norms, w, b)
    pos, neg = _marked(positives, negatives)
    weak = _weak(matrix, weak_rows)
    best = np.full(len(matrix), -np.inf, np.float32)
    for p in pos:  # exemplar SVMs: each positive against every negative
        w, b = _fit_svm(p[None], np.vstack([neg, weak]))
        np.maximum(best, _linear_scores(matrix, inverse_norms, w / np.linalg.norm(w),
                                        b / np.linalg.norm(w)), out=best)
    return best


def linear_model(matrix: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
                 method: str = DEFAULT_REFINE_METHOD, *, weak_rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float]:
    """(w, b) of the "rocchio" or "linear" model: an image x scores w . x / |x| + b."""
    pos, neg = _marked(positives, negatives)
    if method == "rocchio":
        return pos.mean(0) - (ROCCHIO_BETA * neg.mean(0) if len(neg) else 0.0), 0.0
    if method != "linear":
        raise LookalikeError(f"{method} is not a linear refine method")
    return _fit_logistic(pos, np.vstack([neg, _weak(matrix, weak_rows)]))


def refine_rows(index, positives: np.ndarray, negatives: np.ndarray,
                method: str = DEFAULT_REFINE_METHOD, k: int | None = None,
                candidates: np.ndarray | None = None, exclude: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of the k best rows of an ExactIndex by `method`, highest first (ties
    by row), only `candidates` (None: all) and never `exclude`. A linear model's score is
    |w| (1 - cosine distance to w) + b, so its best rows are the nearest to w: one exact
    cosine search finds them (its 8-bit first pass included) instead of scoring every row."""
    method = check_refine_method(method)
    if method == "exemplar":
        scores = refine_scores(index.matrix, index.inverse_norms(), positives, negatives,
                               method)
        rows = top_rows(scores, k, candidates, exclude)
        return rows, scores[rows].astype(np.float64)
    w, b = linear_model(index.matrix, positives, negatives, method)
    size = float(np.linalg.norm(w))
    if size == 0:  # nothing to tell the images apart: every one scores b
        rows = top_rows(np.zeros(len(index)), k, candidates, exclude)
        return rows, np.full(len(rows), b)
    rows, distances = index.search(w[None] / size, k, "Cosine", exclude=exclude,
                                   candidates=candidates)
    return rows, size * (1.0 - np.asarray(distances, np.float64)) + b


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


def _marked(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The marked vectors as unit float64 rows."""
    pos = _unit(np.atleast_2d(np.asarray(positives, dtype=np.float64)))
    return pos, _unit(np.asarray(negatives, dtype=np.float64).reshape(-1, pos.shape[1]))


def _weak(matrix: np.ndarray, weak_rows: np.ndarray | None) -> np.ndarray:
    """Unit rows of `matrix` taken as weak negatives: `weak_rows`, by default WEAK_NEGATIVES
    drawn with a fixed seed."""
    if weak_rows is None:
        rng = np.random.default_rng(0)
        weak_rows = rng.choice(len(matrix), min(WEAK_NEGATIVES, len(matrix)), replace=False)
    return _unit(np.asarray(matrix[np.sort(weak_rows)], dtype=np.float64))


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _linear_scores(matrix: np.ndarray, inverse_norms: np.ndarray, w: np.ndarray,
                   b: float) -> np.ndarray:
    """w . x / |x| + b for every row x, in one float32 matrix-vector product."""
    scores = matrix @ np.asarray(w, dtype=np.float32)
    scores *= inverse_norms.astype(np.float32, copy=False)
    return scores + np.float32(b)


#: The logistic regression's inverse regularisation (scikit-learn's C), with balanced class
#: weights: what benchmarks/quality.py measured best.
LOGISTIC_C = 10.0


def _fit_logistic(pos: np.ndarray, neg: np.ndarray, tol: float = 1e-10
                  ) -> tuple[np.ndarray, float]:
    """(w, b) minimising C sum_i s_i log(1 + exp(-y_i (w . x_i + b))) + |w|^2 / 2, with
    balanced weights s (scikit-learn's LogisticRegression(C, class_weight="balanced") and
    its optimum). Solved by Newton's method in the span of the n marked vectors (w = X' a,
    an (n+1)-square system; n is about 210 against 1280 dimensions): 1-3 ms, where
    scikit-learn's solvers took 80-350 ms for the same fit on a busy 2-core machine. On one
    BLAS thread: these small products lose more to threads waiting on a busy machine (0.1-6 s
    measured) than they gain."""
    with threadpool_limits(1, user_api="blas"):
        return _newton_logistic(np.vstack([pos, neg]), len(pos), tol)


def _newton_logistic(x: np.ndarray, positives: int, tol: float) -> tuple[np.ndarray, float]:
    """`_fit_logistic` on the rows of `x`, the first `positives` of them positive."""
    y = np.r_[np.ones(positives), -np.ones(len(x) - positives)]
    s = np.where(y > 0, len(y) / (2.0 * positives), len(y) / (2.0 * max(len(y) - positives, 1)))
    c = LOGISTIC_C * s
    gram = x @ x.T
    a, b = np.zeros(len(y)), 0.0

    def loss(a_: np.ndarray, b_: float) -> float:
        margin = y * (gram @ a_ + b_)
        return float(c @ np.logaddexp(0.0, -margin) + 0.5 * a_ @ gram @ a_)

    current = loss(a, b)
    for _ in range(100):
        f = gram @ a + b
        p = 1.0 / (1.0 + np.exp(y * f))              # sigma(-y f)
        g = -c * y * p                                # d loss / d f
        d = c * p * (1.0 - p)
        # Newton's step, the a-block divided by the Gram matrix (w moves within the span):
        # (D K + I) da + D 1 db = -(g + a);  1' D K da + 1' D 1 db = -1' g
        system = np.empty((len(y) + 1, len(y) + 1))
        system[:-1, :-1] = d[:, None] * gram
        system[:-1, :-1][np.diag_indices(len(y))] += 1.0
        system[:-1, -1] = d
        system[-1, :-1] = d @ gram
        system[-1, -1] = d.sum()
        rhs = -np.r_[g + a, g.sum()]
        step = np.linalg.solve(system, rhs)
        t = 1.0
        while t > 1e-8:  # backtracking: Newton's step can overshoot far from the optimum
            trial = loss(a + t * step[:-1], b + t * step[-1])
            if trial <= current:
                break
            t /= 2
        a, b = a + t * step[:-1], b + t * step[-1]
        done = current - trial <= tol * max(1.0, abs(trial))
        current = trial
        if done:
            break
    return x.T @ a, float(b)


def _fit_svm(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, float]:
    from sklearn.svm import LinearSVC

    x = np.vstack([pos, neg])
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    # liblinear's coordinate descent visits the samples in a random order: seeded, so the same
    # marks give the same scores (the viewer and the API once differed in the 4th digit).
    model = LinearSVC(C=1.0, class_weight={1: 50.0, 0: 0.5}, max_iter=2000, random_state=0)
    model.fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


__all__ = ["DEFAULT_NEGATIVE_RULE", "DEFAULT_REFINE_METHOD", "LOGISTIC_C", "NEGATIVE_RULES",
           "REFINE_METHODS", "check_refine_method", "linear_model", "negative_cost",
           "refine_rows", "refine_scores", "top_rows"]
