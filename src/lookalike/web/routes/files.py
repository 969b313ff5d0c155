"""An image's files: a thumbnail, the original bytes, and a rendition a browser can show;
thumbnails and renditions are made on first request and cached beside the database."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ...formats.thumbnails import (
    make_rendition,
    make_thumbnail,
    needs_rendition,
    thumbnail_media_type,
)
from ...ingest.decode import ImageSkipped
from ...ingest.omezarr import ZarrFolder
from ..errors import HTTPError, refusals
from ..files import THUMBNAIL_SIZES, download_name, media_type, snap_size
from ..state import State
from .common import CHANGED, NO_IMAGE, ImageId, read_original, row_or_404

router = APIRouter()

_CACHED = {"Cache-Control": "private, max-age=3600"}
_SIZES = ", ".join(map(str, THUMBNAIL_SIZES))


@router.get("/api/images/{image_id}/thumbnail", summary="A thumbnail of an image",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                       304: {"description": "unchanged since the ETag in If-None-Match"},
                       **refusals(s404=NO_IMAGE, s409=CHANGED,
                                  s422="the file cannot be decoded into a thumbnail")})
def thumbnail(state: State, request: Request, image_id: ImageId,
              size: Annotated[int, Query(ge=1, le=4096, description="longest side wanted; "
                                         f"served at the next of {_SIZES}")] = 256):
    """JPEG, or PNG for images with transparency; made on first request and cached
    beside the database, keyed by content (and the collection's reading options) and size."""
    row = row_or_404(state.collection, image_id)
    step = snap_size(size)
    reading = state.collection.reading
    digest = row["content_hash"] and reading.picture_key(row["content_hash"])
    etag = f'"{digest.hex()}-{step}"' if digest else None
    headers = dict(_CACHED)
    if etag:
        headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    data = state.thumbnails.get(digest, step) if digest else None
    if data is None:
        original_data = read_original(row, image_id)
        try:
            data = make_thumbnail(original_data, step, reading)
        except ImageSkipped as exc:
            raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
        if digest:
            state.thumbnails.put(digest, step, data)
    return Response(data, media_type=thumbnail_media_type(data), headers=headers)


@router.get("/api/images/{image_id}/original", summary="The image file itself",
            response_class=Response, responses={200: {"content": {"image/*": {}}},
                                                **refusals(s404=NO_IMAGE, s409=CHANGED)})
def original(state: State, image_id: ImageId):
    """Exactly the bytes that were indexed; refused if the file changed since. An OME-Zarr
    image (a folder) comes as a PNG or JPEG of it, as `display` serves it."""
    row = row_or_404(state.collection, image_id)
    data = read_original(row, image_id)
    if isinstance(data, ZarrFolder):
        return display(state, image_id)
    name = download_name(row, data)
    return Response(data, media_type=media_type(data), headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", **_CACHED})


@router.get("/api/images/{image_id}/display", summary="The image as a browser can show it",
            response_class=Response,
            responses={200: {"content": {"image/*": {}}},
                       **refusals(s404=NO_IMAGE, s409=CHANGED,
                                  s422="the file cannot be decoded")})
def display(state: State, image_id: ImageId):
    """The original when browsers show its format (JPEG, PNG, GIF, WebP, BMP); else (HEIC,
    AVIF, TIFF, ...) a PNG or JPEG of it at full size (longest side at most 8,192 px),
    made once and cached beside the database. The page's preview shows this."""
    row = row_or_404(state.collection, image_id)
    original_data = read_original(row, image_id)
    if not needs_rendition(original_data):
        return Response(original_data, media_type=media_type(original_data), headers=_CACHED)
    reading = state.collection.reading
    digest = row["content_hash"] and reading.picture_key(row["content_hash"])
    data = state.thumbnails.get(digest, "display") if digest else None
    if data is None:
        try:
            data = make_rendition(original_data, reading)
        except ImageSkipped as exc:
            raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
        if digest:
            state.thumbnails.put(digest, "display", data)
    return Response(data, media_type=thumbnail_media_type(data), headers=_CACHED)
