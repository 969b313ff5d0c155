"""The grid's data: pages of the collection's images (filtered and sorted, also by what
`analyze` found), one image's entry, and where an image is in the grid."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ...analysis.browse import SORTS
from ...analysis.quality import FLAGS
from ...errors import LookalikeError
from ..errors import refusals
from ..state import State
from .common import NO_IMAGE, ImageId, image_json, row_or_404

router = APIRouter()

Category = Annotated[str | None, Query(max_length=4096)]
NamePart = Annotated[str | None, Query(max_length=1024, description="part of the name")]
Sort = Annotated[str, Query(description=f"one of {', '.join(SORTS)} (outlier: most unusual "
                                        "first; needs an analysis)")]
Cluster = Annotated[int | None, Query(ge=-1, le=2**31, description="only this cluster of the "
                                                                   "analysis (-1: in none)")]
Flag = Annotated[str | None, Query(max_length=64, description=f"one of {', '.join(FLAGS)}")]
Model = Annotated[str | None, Query(max_length=200, description="whose analysis sorts and "
                                                                "filters (default: the "
                                                                "collection's)")]
Tag = Annotated[str | None, Query(max_length=1024, description="tag words: only images "
                                                                "tagged with them (cat, dog)")]
_REFUSED = ("an unknown sort or flag, a sort or cluster without a current analysis, or tag "
            "words that name no ImageNet class")


class Chosen(BaseModel):
    """What `POST /api/images` takes: the query of `GET /api/images` and the chosen ids."""

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(..., max_length=1_000_000)
    offset: int = Field(0, ge=0, le=2**62)
    limit: int = Field(100, ge=1, le=1000)
    category: str | None = Field(None, max_length=4096)
    q: str | None = Field(None, max_length=1024)
    sort: str = "id"
    cluster: int | None = Field(None, ge=-1, le=2**31)
    flag: str | None = Field(None, max_length=64)
    model: str | None = Field(None, max_length=200)
    tag: str | None = Field(None, max_length=1024)


@router.get("/api/images", summary="One page of the collection's images",
            responses=refusals(s400=_REFUSED))
def list_images(state: State, offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                category: Category = None, q: NamePart = None, sort: Sort = "id",
                cluster: Cluster = None, flag: Flag = None, model: Model = None,
                tag: Tag = None):
    """Images in id order (or `sort=outlier`: most unusual first), filtered by category
    (with its sub-folders), by a part of the name (case-insensitive), by a `cluster` of the
    stored analysis, by a quality `flag` and by `tag` words (ImageNet classes); `total`
    counts every match. The catalogue sorts and filters: any page costs about the same."""
    total, rows = state.collection.images(offset, limit, category or None, q or None,
                                          sort=sort, cluster=cluster, flag=flag or None,
                                          model=model or None, tag=tag or None)
    return {"total": total, "offset": offset, "limit": limit,
            "items": [image_json(r) for r in rows]}


@router.post("/api/images", summary="One page of a chosen set of images",
             responses=refusals(s400=_REFUSED))
def list_chosen(state: State, chosen: Chosen):
    """As `GET /api/images`, among the images `ids` only (a lasso on the map: too many for
    an address)."""
    total, rows = state.collection.images(
        chosen.offset, chosen.limit, chosen.category or None, chosen.q or None,
        sort=chosen.sort, cluster=chosen.cluster, flag=chosen.flag or None, ids=chosen.ids,
        model=chosen.model or None, tag=chosen.tag or None)
    return {"total": total, "offset": chosen.offset, "limit": chosen.limit,
            "items": [image_json(r) for r in rows]}


@router.get("/api/images/{image_id}", summary="One image's catalogue entry",
            responses=refusals(s404=NO_IMAGE))
def get_image(state: State, image_id: ImageId):
    return image_json(row_or_404(state.collection, image_id))


@router.get("/api/images/{image_id}/position", summary="Where an image is in the grid",
            responses=refusals(s404=NO_IMAGE, s400=_REFUSED))
def position(state: State, image_id: ImageId, category: Category = None, q: NamePart = None,
             sort: Sort = "id", cluster: Cluster = None, flag: Flag = None, model: Model = None,
             tag: Tag = None):
    """The image's offset among `GET /api/images` with the same query (what the page
    needs to scroll its grid to it), or null when the filter leaves it out; `total`
    counts every match."""
    col = state.collection
    row_or_404(col, image_id)
    flag, model, tag = flag or None, model or None, tag or None
    total, _ = col.images(0, 0, category or None, q or None, sort=sort, cluster=cluster,
                          flag=flag, model=model, tag=tag)
    where = col.position(image_id, category or None, q or None, sort=sort, cluster=cluster,
                         flag=flag, model=model, tag=tag)
    return {"id": image_id, "position": where, "total": total}


@router.get("/api/images/{image_id}/tags", summary="One image's ImageNet tags",
            responses=refusals(s404=NO_IMAGE))
def image_tags(state: State, image_id: ImageId, model: Model = None):
    """The ImageNet classes the model's classifier saw in the image when it was indexed,
    most likely first ({"name", "synonyms", "score"}); none for a model without a classifier
    or a collection indexed before tags were kept (`note` says which)."""
    col = state.collection
    row_or_404(col, image_id)
    try:
        return {"id": image_id, "tags": col.tags(image_id, model=model or None)}
    except LookalikeError as exc:
        return {"id": image_id, "tags": [], "note": str(exc)}
