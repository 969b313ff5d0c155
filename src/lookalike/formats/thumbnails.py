"""Small previews of images: the web viewer's thumbnails, and the inline pictures of a result
shown in Jupyter (`Neighbors._repr_html_`). Pure functions of the bytes, so that the Python
API can make them without the web package.
"""

from __future__ import annotations

import base64
import io
import os

from PIL import Image, ImageOps

from ..fileio import FileTooLarge, NotARegularFile, read_regular_file
from ..ingest import downloads, omezarr
from ..ingest.decode import (
    ALPHA_MODES,
    DEFAULT_READING,
    ImageSkipped,
    open_image,
    read_size,
    sample_type,
    to_rgb,
)
from ..ingest.object_stores import read_object
from ..ingest.originals import MAX_ORIGINAL_BYTES
from ..ingest.reading import ReadingOptions
from ..locators import is_store_url, is_url

#: Files larger than this are not read for a preview (the limit of every read-back of an image).
MAX_FILE_BYTES = MAX_ORIGINAL_BYTES


def _encode(data: bytes, size: int, quality: int, reading: ReadingOptions | None) -> bytes:
    reading = reading or DEFAULT_READING
    read_size(data)  # refuses decompression bombs with a reason
    try:
        # Pillow, or tifffile for the TIFFs Pillow cannot read; stacks as `reading` says
        im = open_image(data, reading=reading, need=size)
        if im.format == "JPEG" and im.mode in ("RGB", "L", "CMYK"):
            im.draft(im.mode, (size, size))  # decode at a reduced scale: much faster
        im = ImageOps.exif_transpose(im)
        has_alpha = im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)
        im = im.convert("RGBA") if has_alpha else to_rgb(im, reading.window)
        im.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        if has_alpha:
            im.save(out, "PNG", optimize=False, compress_level=6)
        else:
            im.save(out, "JPEG", quality=quality)
        return out.getvalue()
    except ImageSkipped:
        raise
    except Exception as exc:
        raise ImageSkipped(
            f"cannot make a picture of it ({type(exc).__name__}: {exc})") from None


def make_thumbnail(data: bytes, size: int, reading: ReadingOptions | None = None) -> bytes:
    """A PNG (images with transparency) or JPEG at most `size` pixels on its longest side,
    upright; never enlarged; scientific images read the `reading` way (16-bit samples
    through its window). Raises ImageSkipped for what cannot be decoded."""
    return _encode(data, size, 85, reading)


#: Formats every current browser shows in an <img> as they are; others get a rendition.
BROWSER_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP"}

#: Longest side of a rendition: full size up to this, so that a huge TIFF stays viewable.
MAX_RENDITION_SIDE = 8192


def needs_rendition(data: bytes) -> bool:
    """Whether a browser cannot show these image bytes as they should be seen (HEIC, AVIF,
    TIFF, an OME-Zarr folder, a 16-bit PNG, ...)."""
    if isinstance(data, omezarr.ZarrFolder):
        return True
    if (downloads.sniff(data) or "") not in BROWSER_FORMATS:
        return True
    # A 16-bit PNG: browsers show its high bytes (a micrograph comes out black), not the
    # collection's window.
    return sample_type(data) not in ("uint8", "bool")


def make_rendition(data: bytes, reading: ReadingOptions | None = None) -> bytes:
    """What a browser can show of an image it cannot read: PNG (with transparency) or JPEG,
    upright, at full size up to MAX_RENDITION_SIDE, read the `reading` way. Raises
    ImageSkipped."""
    return _encode(data, MAX_RENDITION_SIDE, 92, reading)


def thumbnail_media_type(data: bytes) -> str:
    """The MIME type of what `make_thumbnail` made."""
    return "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


def read_image(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of an image by its catalogue path: a local file (only a regular one: never
    blocks on a named pipe), or a URL from the download cache (never fetched), or an object
    store's object. Raises ImageSkipped with the reason when they cannot be had."""
    if is_store_url(path):
        return read_object(path, max_bytes)
    if is_url(path):
        data = downloads.Downloader().cached(path)
        if data is None:
            raise ImageSkipped("not in the download cache")
        return data
    if omezarr.is_zarr_folder(path):
        return omezarr.read_folder(os.fsencode(path))
    try:
        return read_regular_file(path, max_bytes)
    except NotARegularFile:
        raise ImageSkipped("not a regular file") from None
    except FileTooLarge:
        raise ImageSkipped(f"larger than {max_bytes:,} bytes") from None
    except OSError as exc:
        raise ImageSkipped(exc.strerror or "cannot be opened") from None


def data_url(path: str, size: int) -> str:
    """A thumbnail of the image at `path` as a `data:` URL, for self-contained HTML."""
    thumbnail = make_thumbnail(read_image(path), size)
    encoded = base64.b64encode(thumbnail).decode("ascii")
    return f"data:{thumbnail_media_type(thumbnail)};base64,{encoded}"
