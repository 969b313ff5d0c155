"""Decoding image files into normalised RGB pixels, ready for a network.

Every image, whatever its format, comes out as 8-bit RGB, upright (EXIF orientation applied),
with transparency composited on white and 16-bit or float data mapped to 0..255 by the image's
own range. Anything that cannot be decoded raises `ImageSkipped` with a reason a person can read.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF and AVIF (when Pillow lacks its own AVIF plug-in)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pillow_heif = None

#: Images with more pixels than this are refused as possible decompression bombs
#: (about 16k x 16k; Pillow's own default is 89 million).
DEFAULT_MAX_PIXELS = 268_435_456

# We check the pixel count ourselves and give a precise reason; Pillow's own guard stays on
# as a backstop at twice the limit.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


class ImageSkipped(Exception):
    """An input that is not a usable image. `str(exc)` is the reason, for people."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class DecodedImage:
    """Pixels of one image: `pixels` is uint8 (size, size, 3) RGB when a size was asked for,
    else the full upright RGB image; `width`/`height` are the image's own upright size."""

    pixels: np.ndarray
    width: int
    height: int


_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageSkipped("empty file (0 bytes)")
    # Pillow warns above MAX_IMAGE_PIXELS and refuses twice that: a caller's higher limit
    # raises its guard too (our own check, _check_pixels, still applies to every image).
    if max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageSkipped("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,}; " if found else ""
        raise ImageSkipped(f"too many pixels ({count}the limit is {max_pixels:,}), refused as a "
                           "possible decompression bomb") from None
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ImageSkipped(_damage(exc, "corrupt image header")) from None


def _damage(exc: BaseException, otherwise: str) -> str:
    """One plain reason for a damaged file. Pillow's messages name its internals ("OSError:
    Truncated File Read", "broken data stream when reading image file"): only whether the file
    ends too soon is worth telling."""
    return "truncated file" if "truncat" in str(exc).lower() else otherwise


def _upright_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation in (5, 6, 7, 8):
        return height, width
    return width, height


def read_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """The upright (width, height) of an encoded image, from its header alone."""
    im = _open(data, max_pixels)
    _check_pixels(im, max_pixels)
    return _upright_size(im)


def _check_pixels(im: Image.Image, max_pixels: int) -> None:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageSkipped(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageSkipped(
            f"too many pixels ({width}x{height} = {width * height:,}; the limit is {max_pixels:,}),"
            " refused as a possible decompression bomb"
        )


def _stretch_to_8bit(values: np.ndarray) -> np.ndarray:
    """Map an array to 0..255 by its own finite range (16-bit microscopy rarely fills 0..65535)."""
    values = values.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, np.uint8)
    lo, hi = values[finite].min(), values[finite].max()
    out = np.zeros(values.shape, np.float64)
    if hi > lo:
        out = (np.where(finite, values, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: high bit depths by their own range, alpha on white."""
    mode = im.mode
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(_stretch_to_8bit(np.asarray(im)), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info or mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return im
    return im.convert("RGB")


def decode(data: bytes, size: int | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
           resample: int = Image.Resampling.LANCZOS) -> DecodedImage:
    """Decode encoded image bytes; with `size`, squash-resize to size x size (as Orange does).

    Multi-frame files (GIF, multi-page TIFF) give their first frame. Large JPEGs are decoded
    at a reduced scale (`Image.draft`) that still leaves at least `size` pixels each way.
    """
    im = _open(data, max_pixels)
    _check_pixels(im, max_pixels)
    width, height = _upright_size(im)
    try:
        if size is not None and im.format == "JPEG" and im.mode in ("RGB", "L", "CMYK"):
            # draft's target is per side before rotation; an upright swap does not matter for a square.
            im.draft(im.mode, (size, size))
        exif_orientation = _safe_orientation(im)
        im.load()
        if exif_orientation != 1:
            im = ImageOps.exif_transpose(im)
        im = to_rgb(im)
        if size is not None:
            im = im.resize((size, size), resample, reducing_gap=3.0)
        pixels = np.asarray(im, dtype=np.uint8)
    except ImageSkipped:
        raise
    except MemoryError:
        raise ImageSkipped("not enough memory to decode this image") from None
    except Exception as exc:
        raise ImageSkipped(_damage(exc, "corrupt image data")) from None
    if pixels.ndim != 3 or pixels.shape[2] != 3:  # pragma: no cover - to_rgb guarantees RGB
        raise ImageSkipped(f"unexpected pixel layout {pixels.shape}")
    return DecodedImage(pixels=pixels, width=width, height=height)


def _safe_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1
