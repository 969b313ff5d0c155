"""What the routes share: the image id path parameter, an image's JSON, the refusals for a
missing or changed file."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import Path as PathParam, Query

from ...api import Collection
from ...formats.export import extras_of
from ...ingest import originals
from ...ingest.reading import ReadingOptionError, ReadingOptions, parse_window
from ..errors import HTTPError

ImageId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="the image's id in the "
                                                                    "collection")]

Window = Annotated[str | None, Query(max_length=64, description="LOW,HIGH: the percentiles of "
                                     "16-bit and float samples shown as black and white "
                                     "(default: the collection's, e.g. 0.1,99.9)")]

NO_IMAGE = "no usable image with this id in the collection, or its file is gone"
CHANGED = "the file changed since it was indexed (re-index to see it again)"


def image_json(row: dict) -> dict[str, Any]:
    out = {"id": row["id"], "path": row["path"], "name": row["name"], "category": row["category"],
           "width": row["width"], "height": row["height"], "size": row["size"]}
    if row.get("extras"):  # the other columns of a table the image was listed in
        out["extras"] = extras_of(row)
    return out


def row_or_404(col: Collection, image_id: int) -> dict:
    row = col.image(image_id)
    if row is None:
        raise HTTPError(404, f"image {image_id}: no such image in the collection")
    return row


def read_original(row: dict, image_id: int) -> bytes:
    try:
        return originals.read_catalogued(row["locator"], row["content_hash"])
    except originals.FileGone as exc:
        raise HTTPError(404, f"image {image_id}: its file is gone ({exc}): {row['path']}") from None
    except originals.FileChanged as exc:
        raise HTTPError(409, f"image {image_id}: {exc}: {row['path']}") from None


def reading_for(col: Collection, window: str | None) -> tuple[ReadingOptions, bool]:
    """The collection's reading options with the display `window` asked for, and whether they
    are the collection's own (only those pictures are cached: a user trying windows would
    fill the cache); HTTP 400 for a window that is not two increasing percentiles."""
    reading = col.reading
    if not window:
        return reading, True
    try:
        low, high = parse_window(window)
    except ReadingOptionError:
        raise HTTPError(400, f"window={window}: not two increasing percentiles in 0..100; "
                             "give LOW,HIGH, e.g. 0.1,99.9") from None
    chosen = replace(reading, window=(low, high))
    return chosen, chosen == reading
