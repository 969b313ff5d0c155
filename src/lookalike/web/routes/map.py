"""The collection's map (`Collection.map`) as compact arrays for the Map view: every image a
point, with its category."""

from __future__ import annotations

import math

import numpy as np
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...api import Collection, MapLayout
from ..errors import refusals
from ..state import State

router = APIRouter()

#: Positions are rounded to this share of the map's extent: finer than a pixel of a
#: 10,000-pixel-wide view, and a third of the bytes of full floats.
RESOLUTION = 1e-5


@router.get("/api/map", summary="Every image as a point of the collection's map",
            responses=refusals(s400="a method or model the collection cannot lay out"))
def collection_map(state: State, method: str = "umap", model: str | None = None):
    """The map of `model` (default: the collection's) by `method` (umap, tsne or pca):
    `ids`, `x`, `y` (one entry per image, by id), `categories` (the category names) and
    `category` (each image's index in `categories`, -1 for none), with `method` (the one
    used), `model`, `fitted_on`, `placed` and `action` as `Collection.map` gives them.
    Computed on first request (UMAP: about two minutes at 100,000 images), then kept beside
    the database and in memory; images added later are placed into it."""
    col = state.collection
    # A collection of its own, sharing what it loads: a long fit holds no lock of the viewer.
    with Collection.open(col.store.path, share_with=col) as side:
        layout = side.map(model=model or None, method=method)
    return JSONResponse(compact(layout))


def compact(layout: MapLayout) -> dict:
    """The layout as JSON-ready arrays, positions rounded to RESOLUTION of its extent."""
    extent = float(max(np.ptp(layout.x), np.ptp(layout.y))) if len(layout) else 0.0
    digits = max(0, math.ceil(-math.log10(extent * RESOLUTION))) if extent > 0 else 0
    names = sorted({c for c in layout.categories if c is not None})
    number = {name: i for i, name in enumerate(names)}
    return {"ids": layout.ids.tolist(),
            "x": np.round(layout.x.astype(np.float64), digits).tolist(),
            "y": np.round(layout.y.astype(np.float64), digits).tolist(),
            "categories": names,
            "category": [number.get(c, -1) if c is not None else -1 for c in layout.categories],
            "method": layout.method, "model": layout.model, "fitted_on": layout.fitted_on,
            "placed": layout.placed, "action": layout.action}
