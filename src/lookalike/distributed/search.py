"""Exact search across a Dask cluster: each worker answers the k nearest of its shards of the
matrix (distributed/shards.py) with the single-machine exact search (search/exact.py), and the
driver merges the answers. Distances are computed row by row in float64, and ties broken by
image id as on one machine, so the ids and distances are those of the local search.

Mahalanobis is refused: its covariance is a statistic of the whole collection, which no shard
holds (`similar` without --cluster answers it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..catalogue.store import Store
from ..errors import LookalikeError
from ..search.exact import ExactIndex
from ..search.metrics import canonical_metric
from .client import connect
from .shards import Shards, current_shards, shard_count

if TYPE_CHECKING:
    from distributed import Client

#: Metrics the shards can answer alone: each row's distance depends on that row and the queries.
SHARDABLE = ("Cosine", "Euclidean", "Manhattan", "Jaccard", "Pearson", "Absolute Pearson",
             "Spearman", "Absolute Spearman")

# On each worker: the shards it has opened, with the row statistics their searches computed
# (norms, ranks), kept between searches. Keyed by path; a path names one generation's cut.
_OPENED: dict[str, tuple[np.ndarray, ExactIndex]] = {}
_OPENING = threading.Lock()


def check_shardable(metric: str) -> str:
    name = canonical_metric(metric)
    if name not in SHARDABLE:
        raise LookalikeError(f"--metric {name} needs the whole collection's covariance, which "
                             "no shard holds: search without --cluster, or choose another metric")
    return name


def _opened(path: str) -> tuple[np.ndarray, ExactIndex]:
    with _OPENING:
        found = _OPENED.get(path)
        if found is None:
            for other in [p for p in _OPENED if Path(p).parent != Path(path).parent]:
                del _OPENED[other]  # an older cut: its files are gone or going
            ids = np.load(Path(path).with_suffix(".ids.npy"))
            found = ids, ExactIndex(np.load(path, mmap_mode="r"))
            _OPENED[path] = found
        return found


def _rows_of(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rows of the sorted shard `ids` that hold one of the `wanted` image ids."""
    rows = np.searchsorted(ids, wanted)
    inside = rows < len(ids)
    rows, wanted = rows[inside], wanted[inside]
    return rows[ids[rows] == wanted]


def search_shard(path: str, queries: np.ndarray, k: int | None, metric: str,
                 exclude: np.ndarray | None, among: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On a worker: (image ids, distances, nearest query) of the k nearest of one shard."""
    ids, index = _opened(path)
    skip = None if exclude is None else _rows_of(ids, exclude)
    candidates = None if among is None else _rows_of(ids, among)
    rows, dist, which = index.search(queries, k, metric, exclude=skip, candidates=candidates,
                                     return_query=True)
    return ids[rows], dist, which


def merge(answers: list[tuple[np.ndarray, np.ndarray, np.ndarray]], k: int | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k nearest of every shard's k nearest: by distance rounded as the exact search rounds
    it, then by image id (the local search's row order), so ties fall the same way."""
    ids = np.concatenate([a[0] for a in answers]).astype(np.int64)
    dist = np.concatenate([a[1] for a in answers]).astype(np.float64)
    which = np.concatenate([a[2] for a in answers]).astype(np.int64)
    order = np.lexsort((ids, np.round(dist, 12)))[: (k if k is not None else None)]
    return ids[order], dist[order], which[order]


def search_shards(client: Client, shards: Shards, queries: np.ndarray, k: int | None,
                  metric: str, exclude: np.ndarray | None = None,
                  among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids, distances, nearest query) of the k nearest in every shard, nearest first.
    Shard i goes to the same worker every time (its pages and row statistics stay there),
    or to any other if that one is gone."""
    name = check_shardable(metric)
    workers = sorted(client.scheduler_info()["workers"])
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float64))
    futures = [client.submit(search_shard, path, queries, k, name, exclude, among,
                             workers=[workers[i % len(workers)]] if workers else None,
                             allow_other_workers=True, pure=False)
               for i, path in enumerate(shards.parts)]
    return merge(client.gather(futures), k)


def sharded_nearest(store: Store, model: str, cluster: str | Any, queries: np.ndarray,
                    k: int | None, metric: str, exclude: np.ndarray | None = None,
                    among: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`search_shards` on the cluster `cluster` names (client.connect), with `model`'s
    shards brought up to date with the catalogue first (at least one per worker)."""
    check_shardable(metric)
    with connect(cluster) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        rows = store.count_vectors(model)
        shards = current_shards(store, model, shard_count(rows, workers))
        return search_shards(client, shards, queries, k, metric, exclude, among)


__all__ = ["SHARDABLE", "check_shardable", "merge", "search_shard", "search_shards",
           "sharded_nearest"]
