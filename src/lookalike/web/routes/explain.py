"""Why two images look alike: the heat maps of `Collection.explain` for two images of the
collection, as JSON grids the viewer's preview overlays."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ..state import State
from .common import NO_IMAGE, image_json, row_or_404

router = APIRouter()

ExplainId = Annotated[int, Query(ge=1, le=2**63 - 1, description="an image's id in the collection")]


@router.get("/api/explain", summary="Where two images of the collection match each other",
            responses={404: {"description": NO_IMAGE},
                       400: {"description": "a model that cannot explain (your own ONNX "
                                            "model), or an image that cannot be read"}})
def explain(state: State, a: ExplainId, b: ExplainId, model: str | None = None):
    """`Collection.explain(a, b)`: `images[0].heat` is a grid (rows top to bottom) of how
    strongly each part of image `a` matches image `b`, 0 to 1, and `images[1].heat` the
    other way round; `peak` is the hottest cell's centre as (x, y) fractions of the image's
    width and height; `distance` is the pair's, as a search shows it."""
    rows = [row_or_404(state.collection, i) for i in (a, b)]
    state.warmup.wait_for_models(120)
    with state.lock:  # it may load a model, as an upload search does
        why = state.collection.explain(a, b, model=model or None)
    answer = why.to_dict()
    for image, row in zip(answer["images"], rows):
        image.update(image_json(row))
    return JSONResponse(answer)
