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
from ...ingest import originals
from ...ingest.decode import ImageSkipped
from ...ingest.omezarr import ZarrFolder
from ..errors import HTTPError, refusals
from ..files import THUMBNAIL_SIZES, download_name, media_type, snap_size
from ..state import State
from .common import (
    CHANGED,
    NO_IMAGE,
    ImageId,
    Window,
    read_original,
    reading_for,
    row_or_404,
)

router = APIRouter()

_CACHED = {"Cache-Control": "private, max-age=3600"}
_SIZES = ", ".join(map(str, THUMBNAIL_SIZES))
_BAD_WINDOW = "a window that is not LOW,HIGH percentiles in 0..100"


@router.get("/api/images/{image_id}/thumbnail", summary="A thumbnail of an image",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}}},
                       304: {"description": "unchanged since the ETag in If-None-Match"},
                       **refusals(s400=_BAD_WINDOW, s404=NO_IMAGE, s409=CHANGED,
                                  s422="the file cannot be decoded into a thumbnail")})
def thumbnail(state: State, request: Request, image_id: ImageId,
              size: Annotated[int, Query(ge=1, le=4096, description="longest side wanted; "
                                         f"served at the next of {_SIZES}")] = 256,
              window: Window = None):
    """JPEG, or PNG for images with transparency; made on first request and cached
    beside the database, keyed by content (and the collection's reading options) and size.
    `window` shows 16-bit and float samples through other percentiles (not cached)."""
    row = row_or_404(state.collection, image_id)
    step = snap_size(size)
    reading, own = reading_for(state.collection, window)
    digest = row["content_hash"] and reading.picture_key(row["content_hash"])
    etag = f'"{digest.hex()}-{step}"' if digest else None
    headers = dict(_CACHED)
    if etag:
        headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    data = state.thumbnails.get(digest, step) if digest and own else None
    if data is None:
        original_data = read_original(row, image_id)
        try:
            data = make_thumbnail(original_data, step, reading)
        except ImageSkipped as exc:
            raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
        if digest and own:
            state.thumbnails.put(digest, step, data)
    return Response(data, media_type=thumbnail_media_type(data), headers=headers)


@router.get("/api/images/{image_id}/original", summary="The image file itself",
            response_class=Response, responses={200: {"content": {"image/*": {}}},
                                                **refusals(s404=NO_IMAGE, s409=CHANGED)})
def original(state: State, image_id: ImageId, window: Window = None):
    """Exactly the bytes that were indexed; refused if the file changed since. An OME-Zarr
    image (a folder) comes as a PNG or JPEG of it, as `display` serves it."""
    row = row_or_404(state.collection, image_id)
    data = read_original(row, image_id)
    if isinstance(data, ZarrFolder):
        return display(state, image_id, window)
    name = download_name(row, data)
    return Response(data, media_type=media_type(data), headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", **_CACHED})


@router.get("/api/images/{image_id}/display", summary="The image as a browser can show it",
            response_class=Response,
            responses={200: {"content": {"image/*": {}}},
                       **refusals(s400=_BAD_WINDOW, s404=NO_IMAGE, s409=CHANGED,
                                  s422="the file cannot be decoded")})
def display(state: State, image_id: ImageId, window: Window = None):
    """The original when browsers show its format (JPEG, PNG, GIF, WebP, BMP); else (HEIC,
    AVIF, TIFF, OME-Zarr, ...) a PNG or JPEG of it at full size (longest side at most 8,192
    px), made once and cached beside the database. The page's preview shows this; `window`
    shows 16-bit and float samples through other percentiles (a 16-bit PNG is rendered then)."""
    row = row_or_404(state.collection, image_id)
    reading, own = reading_for(state.collection, window)
    original_data = read_original(row, image_id)
    if own and not needs_rendition(original_data):
        return Response(original_data, media_type=media_type(original_data), headers=_CACHED)
    digest = row["content_hash"] and reading.picture_key(row["content_hash"])
    data = state.thumbnails.get(digest, "display") if digest and own else None
    if data is None:
        try:
            data = make_rendition(original_data, reading)
        except ImageSkipped as exc:
            raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
        if digest and own:
            state.thumbnails.put(digest, "display", data)
    return Response(data, media_type=thumbnail_media_type(data), headers=_CACHED)


@router.get("/api/images/{image_id}/samples", summary="An image's sample type and window",
            responses=refusals(s404=NO_IMAGE, s409=CHANGED, s422="the file cannot be decoded"))
def samples(state: State, image_id: ImageId):
    """The type of the image's samples ("uint8", "uint16", "float32", ...), whether they are
    shown through a display window (`windowed`: all but 8-bit ones), and the collection's
    window (low and high percentiles), which `window=LOW,HIGH` on the image routes replaces."""
    col = state.collection
    row = row_or_404(col, image_id)
    try:
        kind = col.sample_type(image_id)
    except originals.FileGone as exc:
        raise HTTPError(404, f"image {image_id}: its file is gone ({exc}): {row['path']}") from None
    except originals.FileChanged as exc:
        raise HTTPError(409, f"image {image_id}: {exc}: {row['path']}") from None
    except ImageSkipped as exc:
        raise HTTPError(422, f"image {image_id}: {exc.reason}") from None
    return {"id": image_id, "type": kind, "windowed": kind not in ("uint8", "bool"),
            "window": list(col.reading.window)}
