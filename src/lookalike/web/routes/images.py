"""The grid's data: pages of the collection's images, one image's entry, and where an image is
in the grid."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..errors import refusals
from ..state import State
from .common import NO_IMAGE, ImageId, image_json, row_or_404

router = APIRouter()

Category = Annotated[str | None, Query(max_length=4096)]
NamePart = Annotated[str | None, Query(max_length=1024, description="part of the name")]


@router.get("/api/images", summary="One page of the collection's images")
def list_images(state: State, offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                category: Category = None, q: NamePart = None):
    """Images in id order, filtered by category (with its sub-folders) and by a part of
    the name (case-insensitive); `total` counts every match."""
    total, rows = state.collection.images(offset, limit, category or None, q or None)
    return {"total": total, "offset": offset, "limit": limit,
            "items": [image_json(r) for r in rows]}


@router.get("/api/images/{image_id}", summary="One image's catalogue entry",
            responses=refusals(s404=NO_IMAGE))
def get_image(state: State, image_id: ImageId):
    return image_json(row_or_404(state.collection, image_id))


@router.get("/api/images/{image_id}/position", summary="Where an image is in the grid",
            responses=refusals(s404=NO_IMAGE))
def position(state: State, image_id: ImageId, category: Category = None, q: NamePart = None):
    """The image's offset among `GET /api/images` with the same filter (what the page
    needs to scroll its grid to it), or null when the filter leaves it out; `total`
    counts every match."""
    col = state.collection
    row_or_404(col, image_id)
    total, _ = col.images(0, 0, category or None, q or None)
    return {"id": image_id, "position": col.position(image_id, category or None, q or None),
            "total": total}
