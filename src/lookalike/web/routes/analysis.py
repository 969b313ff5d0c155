"""What `Collection.analyze` found, as compact arrays for the Map view's colours and the
grid's sorts and filters: each image's cluster, outlier score and quality flags, and the
clusters with their sizes. Computed in a worker when not stored (web/jobs.py)."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...analysis.analyze import Analysis, stored_clusters
from ...analysis.quality import FLAGS
from ..errors import refusals
from ..state import State
from .map import WAIT, Wait, computing

router = APIRouter()


@router.get("/api/analysis", summary="Each image's cluster, outlier score and quality flags",
            responses={202: {"description": "computing: ask again"},
                       **refusals(s400="a model the collection has no vectors of, or a "
                                       "collection of fewer than two images")})
def analysis(state: State, model: str | None = None, wait: Wait = WAIT):
    """`ids` (by id), `cluster` (-1: in none), `outlier` (cosine distance to the k-th
    nearest neighbour, 4 decimals) and `flags` (a bit per name of `flag_names` set) per
    image; `clusters`: `{cluster, size}` largest first (the noise last); `flag_counts`;
    `method` (of clustering) and `model`. As `lookalike analyze` stores it for the
    collection as it is now, or computed (with the clusters last asked for) in a worker:
    202 `{"status": "computing", "progress": "..."}` after `wait` seconds meanwhile."""
    col = state.collection
    what = f"Analysing {len(col):,} images (clusters, outliers; under two minutes at 100,000)"

    def compute(side):
        clusters = stored_clusters(side.store, model or side.default_model)
        return compact(side.analyze(model or None, clusters))
    done, answer = state.jobs.answer(("analysis", model or None, col.store.generation), what,
                                     compute, wait, lock=f"analysis {model or None}")
    if not done:
        return computing(answer, model=model)
    return JSONResponse(answer)


def compact(found: Analysis) -> dict:
    bits = np.zeros(len(found), np.int64)
    for n, name in enumerate(FLAGS):
        bits |= found.flags[name].astype(np.int64) << n
    return {"model": found.model, "method": found.method, "ids": found.ids.tolist(),
            "cluster": found.cluster.tolist(),
            "outlier": np.round(found.outlier.astype(np.float64), 4).tolist(),
            "flags": bits.tolist(), "flag_names": list(FLAGS),
            "flag_counts": found.flag_counts,
            "clusters": [{"cluster": c.cluster, "size": c.size} for c in found.clusters]}


__all__ = ["router"]
