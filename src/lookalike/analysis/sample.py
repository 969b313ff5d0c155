"""A diverse sample of N images, for labelling or a first look: greedy farthest-point
(k-centre) selection, which picks each next image as far as possible from all picked so far.

Deterministic: it starts from the most typical image and breaks ties by position; the first
N of a sample of M > N are the sample of N, so one ordering serves every size.
"""

from __future__ import annotations

import numpy as np


def farthest_first(points: np.ndarray, n: int, start: int) -> np.ndarray:
    """Row numbers of `n` rows of `points` in greedy farthest-point order, from `start`."""
    n = min(n, len(points))
    if n <= 0:
        return np.zeros(0, np.int64)
    points = np.ascontiguousarray(points, np.float32)
    squares = (points * points).sum(axis=1)
    chosen = np.empty(n, np.int64)
    chosen[0] = start
    nearest = np.full(len(points), np.inf, np.float32)
    for step in range(1, n):
        last = chosen[step - 1]
        distance = squares + squares[last] - 2 * (points @ points[last])
        np.minimum(nearest, distance, out=nearest)
        nearest[chosen[:step]] = -1  # never picked twice, also when copies tie at 0
        chosen[step] = int(np.argmax(nearest))
    return chosen


def most_typical(typicality: np.ndarray, points: np.ndarray) -> int:
    """The row to start from: the most typical, the one nearest the centre among equals."""
    centre = points.mean(axis=0)
    spread = ((points - centre) ** 2).sum(axis=1)
    return int(np.lexsort((spread, -np.asarray(typicality)))[0])
