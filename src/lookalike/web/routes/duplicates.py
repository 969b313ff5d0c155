"""The Duplicates view's data: groups of copies (as `lookalike duplicates --format json`, plus
what a review shows: format and modification time), "not duplicates" and its undo, and the
decisions as a CSV or a move script. Groups are computed and cached by web/reviews.py."""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ...analysis.duplicates import DEFAULT_TIER, TIERS, DuplicateGroup
from ...formats import decisions
from ...formats.export import duplicate_records
from ...ingest.downloads import sniff
from ...locators import is_url
from ..errors import HTTPError, refusals
from ..reviews import GroupsQuery
from ..state import State, ViewerState

router = APIRouter()

_BAD_QUERY = "an unknown tier or model, a threshold outside 0-2, or a collection too small"
ImageIdValue = Annotated[int, Field(ge=1, le=2**63 - 1)]
#: Formats by extension where Pillow has no plugin registered for it.
_MORE_FORMATS = {".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF"}


class GroupsAsked(BaseModel):
    """Which groups: as `lookalike duplicates --tier --threshold | --range --model`."""

    tier: str = Field(DEFAULT_TIER, description=f"one of {', '.join(TIERS)}")
    # Strict: JSON `false` or "0.1" is not a distance (FastAPI would have made them 0 and 0.1).
    threshold: float | None = Field(None, strict=True, description="the largest cosine "
                                    "distance of a candidate pair (0-2)")
    lo: float | None = Field(None, strict=True, description="with hi: candidate pairs between "
                                                           "lo and hi")
    hi: float | None = Field(None, strict=True)
    model: str | None = Field(None, description="whose vectors find the candidates (null: "
                                                "the collection's default)")


class Review(GroupsAsked):
    """What `POST /api/duplicates` takes: the groups, the keepers a person chose, a page."""

    keep: dict[int, int] = Field(default_factory=dict, description="keepers chosen: {a group's "
                                 "representative (its first id): the id to keep}")
    offset: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1, le=100_000, description="groups in the page (null: "
                                                                  "all)")


class Dismissed(BaseModel):
    """A group a person marked as not duplicates (for the decisions' not-duplicate rows)."""

    ids: list[ImageIdValue] = Field(..., min_length=2, max_length=10_000)
    distances: list[float] | None = None


class Decisions(GroupsAsked):
    """What the decisions exports take."""

    keep: dict[int, int] = Field(default_factory=dict)
    dismissed: list[Dismissed] = Field(default_factory=list, max_length=100_000)
    target: str | None = Field(None, max_length=4096, description="the move script's folder "
                                                                  "(an absolute path)")


class Marks(BaseModel):
    """What `POST /api/duplicates/not-duplicates` takes."""

    ids: list[ImageIdValue] = Field(..., min_length=2, max_length=10_000)
    undo: bool = Field(False, description="forget that these are not duplicates")


@router.get("/api/duplicates", summary="Groups of copies in the collection",
            responses=refusals(s400=_BAD_QUERY))
def duplicates_get(state: State, tier: str = DEFAULT_TIER, threshold: float | None = None,
                   lo: float | None = None, hi: float | None = None, model: str | None = None,
                   offset: Annotated[int, Query(ge=0)] = 0,
                   limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
                   fresh: bool = False):
    """Groups largest first, each `{"group", "keep", "images"}` with the records of
    `lookalike duplicates --format json` plus `format` and `modified`; `groups_total`,
    `images_total` and `bytes_freed` (by moving every non-keeper) count all groups, the
    page (`offset`, `limit`) or not. Computed once per catalogue state and cached; `fresh`
    computes again."""
    asked = GroupsAsked(tier=tier, threshold=threshold, lo=lo, hi=hi, model=model)
    groups = _groups(state, asked, fresh)
    return _answer(asked, groups, offset, limit)


@router.get("/api/duplicates/progress", summary="How far the groups being computed have got")
def duplicates_progress(state: State):
    """`computing`: whether groups are being computed; `checked` of `total`: the candidate
    pairs the tier's check has done (0 of 0 while the candidates are being found)."""
    progress = state.duplicates.progress
    checked, total = progress if progress is not None else (0, 0)
    return {"computing": progress is not None, "checked": checked, "total": total}


@router.post("/api/duplicates", summary="Groups of copies, with the keepers a person chose",
             responses=refusals(s400=_BAD_QUERY))
def duplicates_post(state: State, review: Review):
    """As `GET /api/duplicates`, each group's keeper as `keep` says where it names one of its
    members (others are ignored); the view asks this way."""
    groups = _with_keepers(_groups(state, review), review.keep)
    return _answer(review, groups, review.offset, review.limit)


@router.post("/api/duplicates/not-duplicates", summary="Mark images as not copies of each other",
             responses=refusals(s400="an image not in the collection"))
def not_duplicates(state: State, marks: Marks):
    """Every pair of these images is never grouped again (kept in the database by content,
    as `lookalike not-duplicates`); `undo` forgets it. `changed`: pairs changed."""
    changed = state.duplicates.mark_not_duplicates(list(marks.ids), marked=not marks.undo)
    return {"ids": marks.ids, "undo": marks.undo, "changed": changed}


@router.post("/api/duplicates/decisions.csv", summary="The decisions as CSV",
             response_class=Response, responses={200: {"content": {"text/csv": {}}},
                                                 **refusals(s400=_BAD_QUERY)})
def decisions_csv(state: State, asked: Decisions):
    """One row per image: group, group_size, path, keep, action (keep, move or
    not-duplicate), distance, width, height, size, id."""
    groups, dismissed = _decided(state, asked)
    text = decisions.decisions_csv(decisions.decisions(groups, dismissed))
    return _attachment(text.encode("utf-8"), "text/csv; charset=utf-8", "duplicates.csv")


@router.post("/api/duplicates/move-script", summary="A shell script that moves the copies",
             response_class=Response, responses={200: {"content": {"text/x-shellscript": {}}},
                                                 **refusals(s400=_BAD_QUERY + "; a target "
                                                            "that is not an absolute path")})
def move_script(state: State, asked: Decisions):
    """A POSIX shell script that moves each group's non-keepers into `target` when the user
    runs it (nothing is moved here); see `lookalike duplicates --move-script`."""
    decisions.check_target(asked.target or "")
    groups, dismissed = _decided(state, asked)
    script = state.collection.move_script(groups, asked.target or "", dismissed)
    return _attachment(script, "text/x-shellscript", "move-duplicates.sh")


# -- inside ------------------------------------------------------------------------------------

def _groups(state: ViewerState, asked: GroupsAsked, fresh: bool = False) -> list[DuplicateGroup]:
    if (asked.lo is None) != (asked.hi is None):
        raise HTTPError(400, "give both lo and hi (a range of cosine distances), or neither")
    window = (asked.lo, asked.hi) if asked.lo is not None and asked.hi is not None else None
    query = GroupsQuery.of(asked.tier, asked.threshold, window, asked.model)
    return state.duplicates.groups(query, fresh)


def _with_keepers(groups: list[DuplicateGroup], keep: dict[int, int]) -> list[DuplicateGroup]:
    return [dataclasses.replace(g, keep=keep[g.ids[0]])
            if keep.get(g.ids[0]) in g.ids else g for g in groups]


def _decided(state: ViewerState, asked: Decisions):
    groups = _with_keepers(_groups(state, asked), asked.keep)
    store = state.collection.store
    dismissed = []
    for d in asked.dismissed:
        rows = store.rows(d.ids)
        distances = d.distances if d.distances and len(d.distances) == len(rows) else \
            [0.0] * len(rows)
        dismissed.append(DuplicateGroup(0, [r["id"] for r in rows], distances, 0, rows))
    return groups, dismissed


def _answer(asked: GroupsAsked, groups: list[DuplicateGroup], offset: int,
            limit: int | None) -> JSONResponse:
    page = groups[offset:None if limit is None else offset + limit]
    by_group: dict[int, list[dict]] = {}
    for record, row in zip(duplicate_records(page), (r for g in page for r in g.rows)):
        record["format"] = _format(row)
        record["modified"] = _modified(row.get("mtime_ns"))
        by_group.setdefault(record["group"], []).append(record)
    freed = sum(r["size"] or 0 for g in groups for r in g.rows if r["id"] != g.keep)
    return JSONResponse({
        "tier": asked.tier, "threshold": asked.threshold, "lo": asked.lo, "hi": asked.hi,
        "model": asked.model, "groups_total": len(groups),
        "images_total": sum(len(g) for g in groups), "bytes_freed": freed,
        "offset": offset, "limit": limit,
        "groups": [{"group": g.number, "keep": g.keep, "images": by_group[g.number]}
                   for g in page]})


def _format(row: dict) -> str | None:
    """The image's format: by its extension, else (no or an unknown one) by its first bytes."""
    from PIL import Image

    path = row["path"]
    ext = os.path.splitext(path.split("?")[0] if is_url(path) else path)[1].lower()
    known = Image.registered_extensions().get(ext) or _MORE_FORMATS.get(ext)
    if known or is_url(path):
        return known
    try:
        with open(path, "rb") as f:
            return sniff(f.read(1 << 16))
    except OSError:
        return None


def _modified(mtime_ns: int | None) -> str | None:
    if mtime_ns is None:
        return None
    when = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _attachment(data: bytes, media_type: str, name: str) -> Response:
    return Response(data, media_type=media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


__all__ = ["router"]
