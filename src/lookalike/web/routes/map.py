"""The Map view's data: the collection's map (`Collection.map`) as compact arrays, every
image a point with its category, and the groups of copies as colours. A map not yet computed
is computed in a worker (web/jobs.py): the request is answered 202 "computing" meanwhile."""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from ...analysis.duplicates import DEFAULT_TIER
from ...analysis.layout import METHODS
from ...api import MapLayout
from ..errors import refusals
from ..reviews import GroupsQuery
from ..state import State

router = APIRouter()

#: Positions are rounded to this share of the map's extent: finer than a pixel of a
#: 10,000-pixel-wide view, and a third of the bytes of full floats.
RESOLUTION = 1e-5

#: How long a request waits for a computation before it is answered "computing".
WAIT = 10.0
Wait = Annotated[float, Query(ge=0, le=60, description="seconds to wait for a computation "
                                                       "before answering 202 \"computing\"")]

_SPEED = {"umap": "about two minutes at 100,000 images", "tsne": "minutes at 100,000 images",
          "pca": "seconds"}


def computing(progress: str, **facts) -> JSONResponse:
    """The answer while a computation runs: 202, what is computed and for how long."""
    return JSONResponse({"status": "computing", "progress": progress, **facts}, status_code=202)


@router.get("/api/map", summary="Every image as a point of the collection's map",
            responses={200: {"content": {"application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}}},
                             "description": "the map (JSON, or with format=binary the "
                                            "typed arrays)"},
                       202: {"description": "computing: ask again"},
                       **refusals(s400="a method or model the collection cannot lay out")})
def collection_map(state: State, method: str = "umap", model: str | None = None,
                   wait: Wait = WAIT, format: Literal["json", "binary"] = "json"):
    """The map of `model` (default: the collection's) by `method` (umap, tsne or pca):
    `ids`, `x`, `y` (one entry per image, by id), `categories` (the category names) and
    `category` (each image's index in `categories`, -1 for none), with `method` (the one
    used), `model`, `fitted_on`, `placed` and `action` as `Collection.map` gives them.
    Computed on first request in a worker (UMAP: about two minutes at 100,000 images), then
    kept beside the database and in memory; images added later are placed into it. While it
    is computed, after `wait` seconds: 202 `{"status": "computing", "progress": "..."}`.

    `format=binary` (what the Map view asks for: a third of the bytes at a million images,
    and no parsing) answers the same as application/octet-stream: a little-endian uint32
    header length, the JSON header (the fields but the arrays, and `arrays`: [name, type,
    count] in the order they follow; spaces pad it to a multiple of 8 bytes), then the
    arrays: `ids` (int32, or float64 when an id needs more), `x` and `y` (float32, not
    rounded), `category` (int32)."""
    col = state.collection
    if method.lower() not in METHODS:
        col.map(method=method)  # the error that names the nearest method
    model, method = model or None, method.lower()
    what = f"Laying out {len(col):,} images by {method.upper()} ({_SPEED[method]})"
    done, answer = state.jobs.answer(("map", model, method, col.store.generation), what,
                                     lambda side: side.map(model=model, method=method), wait,
                                     lock=f"map {method} {model}")
    if not done:
        return computing(answer, method=method, model=model)
    if format == "binary":
        return Response(binary(answer), media_type="application/octet-stream")
    return JSONResponse(compact(answer))


@router.get("/api/map/duplicates", summary="The groups of copies, as the map colours them",
            responses={202: {"description": "computing: ask again"},
                       **refusals(s400="an unknown tier or model, or a threshold outside 0-2")})
def map_duplicates(state: State, tier: str = DEFAULT_TIER, threshold: float | None = None,
                   model: str | None = None, compute: bool = False):
    """`ids` and `group` (each image's group number) of the images in a group of copies,
    when the Duplicates view (or `compute`) has had them computed; else `{"computed":
    false}`, or, with `compute`, 202 "computing" while they are."""
    query = GroupsQuery.of(tier, threshold, None, model)
    groups = state.duplicates.ready(query, start=compute)
    if groups is None:
        if compute:
            return computing(f"Finding the {tier} copies among {len(state.collection):,} "
                             "images", tier=tier)
        return {"computed": False, "tier": tier}
    ids = [i for g in groups for i in g.ids]
    return {"computed": True, "tier": tier, "groups": len(groups), "ids": ids,
            "group": [g.number for g in groups for _ in g.ids]}


def _category_numbers(layout: MapLayout) -> tuple[list[str], list[int]]:
    """The category names (sorted) and each image's index among them, -1 for none."""
    names = sorted({c for c in layout.categories if c is not None})
    number = {name: i for i, name in enumerate(names)}
    return names, [number.get(c, -1) if c is not None else -1 for c in layout.categories]


def _facts(layout: MapLayout) -> dict:
    return {"method": layout.method, "model": layout.model, "fitted_on": layout.fitted_on,
            "placed": layout.placed, "action": layout.action}


_TYPES = {"<i4": "int32", "<f4": "float32", "<f8": "float64"}


def binary(layout: MapLayout) -> bytes:
    """The layout as `format=binary` sends it (see `collection_map`)."""
    names, numbers = _category_numbers(layout)
    ids = np.asarray(layout.ids)
    wide = len(ids) and (ids.min() < -2**31 or ids.max() >= 2**31)
    arrays = [("ids", ids.astype("<f8" if wide else "<i4")),
              ("x", np.asarray(layout.x, "<f4")), ("y", np.asarray(layout.y, "<f4")),
              ("category", np.asarray(numbers, "<i4"))]
    header = json.dumps({"categories": names, **_facts(layout), "arrays": [
        [name, _TYPES[a.dtype.str], len(a)] for name, a in arrays]}).encode()
    header += b" " * (-(4 + len(header)) % 8)
    return b"".join([np.uint32(len(header)).astype("<u4").tobytes(), header,
                     *(a.tobytes() for _, a in arrays)])


def compact(layout: MapLayout) -> dict:
    """The layout as JSON-ready arrays, positions rounded to RESOLUTION of its extent."""
    extent = float(max(np.ptp(layout.x), np.ptp(layout.y))) if len(layout) else 0.0
    digits = max(0, math.ceil(-math.log10(extent * RESOLUTION))) if extent > 0 else 0
    names, numbers = _category_numbers(layout)
    return {"ids": layout.ids.tolist(),
            "x": np.round(layout.x.astype(np.float64), digits).tolist(),
            "y": np.round(layout.y.astype(np.float64), digits).tolist(),
            "categories": names, "category": numbers, **_facts(layout)}


__all__ = ["computing", "router"]
