"""Decoding image files into normalised RGB pixels, ready for a network.

Every image, whatever its format, comes out as 8-bit RGB, upright (EXIF orientation applied),
with transparency composited on white and 16-bit or float data mapped to 0..255 by a percentile
window (`ReadingOptions.window`). Pillow reads every format; the scientific TIFFs it cannot read
or misreads (float64, planar float, 16-bit colour, more than 4 samples) go through tifffile, and
multi-dimensional or very large ones are read as stacks (stacks.py) in the way the collection's
`ReadingOptions` say, as are OME-Zarr folders (omezarr.py: their "bytes" are a `ZarrFolder`).
Anything that cannot be decoded raises `ImageSkipped` with a reason a person can read.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError

from . import omezarr, stacks
from .channels import channel_pictures, compose, window_to_8bit
from .reading import ReadingOptions
from .skipped import ImageSkipped

try:  # HEIC/HEIF and AVIF (when Pillow lacks its own AVIF plug-in)
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pass

#: Images with more pixels than this are refused as possible decompression bombs
#: (about 16k x 16k; Pillow's own default is 89 million).
DEFAULT_MAX_PIXELS = 268_435_456

# We check the pixel count ourselves and give a precise reason; Pillow's own guard stays on
# as a backstop at twice the limit.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


#: How images are read when a caller gives no options (and a collection stored none).
DEFAULT_READING = ReadingOptions()


@dataclass
class DecodedImage:
    """Pixels of one image: `pixels` is uint8 (size, size, 3) RGB when a size was asked for,
    else the full upright RGB image; `width`/`height` are the image's own upright size;
    `channels` (per-channel reading only) each chosen channel as grey (C, size, size, 3)."""

    pixels: np.ndarray
    width: int
    height: int
    channels: np.ndarray | None = None

    @property
    def for_model(self) -> np.ndarray:
        """What the model embeds: the channels apart when read per channel, else the picture."""
        return self.pixels if self.channels is None else self.channels


_HIGH_DEPTH_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;16S"}
ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageSkipped("empty file (0 bytes)")
    # Pillow warns above MAX_IMAGE_PIXELS and refuses twice that: a caller's higher limit
    # raises its guard too (our own check, _check_pixels, still applies to every image).
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
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
    """The upright (width, height) of an encoded image, from its header alone. A TIFF over
    the pixel limit has its size too: it is read reduced (see stacks.py). An OME-Zarr's
    comes from its metadata."""
    if isinstance(data, omezarr.ZarrFolder):
        return omezarr.zarr_size(data)
    try:
        return _plain_size(data, max_pixels)
    except ImageSkipped:
        size = stacks.tiff_size(data) if _is_tiff(data) else None
        if size is None or size[0] * size[1] > stacks.MAX_OVER_LIMIT * max_pixels:
            raise
        return size


#: Pillow's modes of more than 8 bits a sample, as NumPy names their samples.
_MODE_SAMPLES = {"I": "int32", "F": "float32", "1": "bool", "I;16": "uint16",
                 "I;16L": "uint16", "I;16B": "uint16", "I;16N": "uint16", "I;16S": "int16"}


def sample_type(data: bytes) -> str:
    """The type of an image's samples as NumPy names it ('uint8', 'uint16', 'float32', ...),
    from its header or metadata: those other than 8-bit are shown through a percentile
    window (`ReadingOptions.window`)."""
    if isinstance(data, omezarr.ZarrFolder):
        return np.dtype(omezarr.stack(data).levels[0].dtype).name
    found = stacks.tiff_sample_type(data) if _is_tiff(data) else None
    if found is not None:
        return found.name
    return _MODE_SAMPLES.get(_open(data, DEFAULT_MAX_PIXELS).mode, "uint8")


def _plain_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    try:
        im = _open(data, max_pixels)
    except ImageSkipped:
        if not _is_tiff(data):
            raise
        return _read_tiff(data, max_pixels, pixels=False)[1:]
    _check_pixels(im.size, max_pixels)
    return _upright_size(im)


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
               reading: ReadingOptions | None = None, need: int | None = None) -> Image.Image:
    """The encoded image as a Pillow image (not loaded yet). A TIFF that Pillow cannot read or
    would misread comes decoded through tifffile instead: its first image, upright RGB. A
    stack (or any image whose planes or channels `reading` chooses) comes as the RGB picture
    of what `reading` chooses, from a level with at least `need` pixels each way."""
    reading = reading or DEFAULT_READING
    planes = _chosen_planes(data, reading, need, max_pixels)
    if planes is not None:
        return Image.fromarray(compose(planes, reading), "RGB")
    return _open_plain(data, max_pixels)


def _open_plain(data: bytes, max_pixels: int) -> Image.Image:
    try:
        im = _open(data, max_pixels)
    except ImageSkipped:
        if not _is_tiff(data):
            raise
        return _read_tiff(data, max_pixels)[0]  # or tifffile's reason why not
    if _pillow_misreads(im):
        try:
            return _read_tiff(data, max_pixels)[0]
        except ImageSkipped:
            pass  # Pillow's reading, cut to 8 bits, is better than none
    return im


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageSkipped(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageSkipped(
            f"too many pixels ({width}x{height} = {width * height:,}; the limit is {max_pixels:,}),"
            " refused as a possible decompression bomb"
        )


def to_rgb(im: Image.Image, window: tuple[float, float] = DEFAULT_READING.window) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: high bit depths by their percentile `window` (16-bit
    microscopy rarely fills 0..65535), alpha on white."""
    mode = im.mode
    if mode in _HIGH_DEPTH_MODES:
        return Image.fromarray(window_to_8bit(np.asarray(im), window), "L").convert("RGB")
    if mode == "P" and "transparency" in im.info or mode in ALPHA_MODES:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return im
    return im.convert("RGB")


def decode(data: bytes, size: int | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS,
           resample: int = Image.Resampling.LANCZOS,
           reading: ReadingOptions | None = None) -> DecodedImage:
    """Decode encoded image bytes; with `size`, squash-resize to size x size (as Orange does).

    Multi-frame files (GIF, multi-page TIFF) give their first frame; a TIFF stack, the planes
    and channels `reading` chooses. Large JPEGs are decoded at a reduced scale (`Image.draft`)
    that still leaves at least `size` pixels each way.
    """
    reading = reading or DEFAULT_READING
    planes = _chosen_planes(data, reading, size, max_pixels)
    if planes is not None:
        return from_planes(planes, size, reading, resample)
    im = _open_plain(data, max_pixels)
    _check_pixels(im.size, max_pixels)
    width, height = _upright_size(im)
    try:
        if size is not None and im.format == "JPEG" and im.mode in ("RGB", "L", "CMYK"):
            # draft's target is per side before rotation; an upright swap does not matter for a
            # square.
            im.draft(im.mode, (size, size))
        exif_orientation = _safe_orientation(im)
        try:
            im.load()
        except Exception as exc:
            if im.format != "TIFF":
                raise
            try:
                tiff = _read_tiff(data, max_pixels)
            except ImageSkipped:
                raise exc from None  # Pillow's reason
            if tiff[1:] != (width, height):  # another page than Pillow's: not this image
                raise exc from None
            im, exif_orientation = tiff[0], 1
        if exif_orientation != 1:
            im = ImageOps.exif_transpose(im)
        im = to_rgb(im, reading.window)
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


def _chosen_planes(data: bytes, reading: ReadingOptions, need: int | None,
                   max_pixels: int) -> stacks.Planes | None:
    """The planes of a TIFF stack or an OME-Zarr, or of any image whose planes or channels
    `reading` chooses; None for an image read the plain way."""
    if isinstance(data, omezarr.ZarrFolder):
        return omezarr.zarr_planes(data, reading, need, max_pixels)
    planes = stacks.tiff_planes(data, reading, need, max_pixels) if _is_tiff(data) else None
    if planes is None and reading.selects:
        im = ImageOps.exif_transpose(_open_plain(data, max_pixels))
        _check_pixels(im.size, max_pixels)
        if im.mode not in _HIGH_DEPTH_MODES and im.mode not in ("L", "RGB"):
            im = to_rgb(im)
        samples = np.asarray(im)
        stack = stacks.Stack([samples], "YX" if samples.ndim == 2 else "YXS")
        planes = stacks.read_planes(stack, reading, None, max_pixels)
    return planes


def from_planes(planes: stacks.Planes, size: int | None, reading: ReadingOptions,
                resample: int = Image.Resampling.LANCZOS) -> DecodedImage:
    """The decoded image of chosen planes: their picture (and each channel, per channel)."""
    im = Image.fromarray(compose(planes, reading), "RGB")
    channels = None
    if size is not None:
        im = im.resize((size, size), resample, reducing_gap=3.0)
        if reading.per_channel:
            channels = channel_pictures(planes, reading, size, resample)
    return DecodedImage(np.asarray(im, dtype=np.uint8), planes.width, planes.height, channels)


def _safe_orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


# -- TIFFs that Pillow cannot read, through tifffile ------------------------------------------

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF

# tifffile logs what it finds odd in a damaged file; the skip reason says what matters, and
# with no logging set up its warnings would land in the middle of a progress bar.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

#: Pillow's transposition for each TIFF/EXIF orientation (as ImageOps.exif_transpose).
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _is_tiff(data: bytes) -> bool:
    return data[:4] in _TIFF_MAGIC


def _pillow_misreads(im: Image.Image) -> bool:
    """A TIFF that Pillow opens but would read wrongly: colour with more than 8 bits per
    sample, which Pillow cuts to the high byte (a 16-bit RGB micrograph comes out dark)."""
    if im.format != "TIFF" or not isinstance(im, TiffImagePlugin.TiffImageFile):
        return False
    try:
        bits = im.tag_v2.get(258, (1,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return max(bits) > 8 and int(im.tag_v2.get(277, 1)) >= 3
    except Exception:
        return False


def _read_tiff(data: bytes, max_pixels: int, pixels: bool = True):
    """(RGB image or None, upright width, height) of a TIFF's first image (series 0, first
    page), through tifffile. The page's size is checked before any pixel is read."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series
            page = series[0].pages[0] if series and series[0].pages else tif.pages[0]
            key = page.keyframe if page.keyframe is not None else page
            width, height = int(key.imagewidth), int(key.imagelength)
            orientation = int(key.tags.valueof(274, 1) or 1)
            _check_pixels((width, height), max_pixels)
            upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
            if not pixels:
                return None, *upright
            if key.dtype is None or key.dtype.kind not in "biuf":
                raise ImageSkipped("a TIFF whose sample format cannot be shown as an image")
            size = page.size * key.dtype.itemsize
            if size > 4 * max_pixels:  # as much as RGBA 8-bit at the pixel limit
                raise ImageSkipped(
                    f"too much pixel data ({width}x{height} with {key.samplesperpixel} "
                    f"{key.dtype} samples each = {size:,} bytes; the limit is "
                    f"{4 * max_pixels:,}), refused as a possible decompression bomb")
            values = page.asarray(maxworkers=1)
            rgb = _tiff_to_rgb(values.reshape(page.shape), key)
    except ImageSkipped:
        raise
    except MemoryError:
        raise ImageSkipped("not enough memory to decode this image") from None
    except Exception as exc:
        if "imagecodecs" in str(exc):
            raise ImageSkipped("a TIFF compressed in a way that cannot be decoded here") from None
        raise ImageSkipped("a TIFF that cannot be read (damaged, or of a kind not supported)") \
            from None
    im = Image.fromarray(rgb, "RGB")
    if orientation in _TRANSPOSE:
        im = im.transpose(_TRANSPOSE[orientation])
    return im, *upright


def _tiff_to_rgb(values: np.ndarray, page) -> np.ndarray:
    """A page's samples (in its own axis order) as (height, width, 3) uint8: grey, RGB, RGBA
    (alpha on white), CMYK or a palette; more than 4 samples give the first 3."""
    import tifffile

    axes = page.axes
    for axis in reversed(range(len(axes))):  # a volume's first plane, say
        if axes[axis] not in "YXS":
            values = values.take(0, axis=axis)
    axes = "".join(a for a in axes if a in "YXS")
    if "S" not in axes:
        values, axes = values[..., None], axes + "S"
    values = np.moveaxis(values, [axes.index("Y"), axes.index("X"), axes.index("S")], [0, 1, 2])
    photometric = page.photometric
    samples = values.shape[2]
    if photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None and samples == 1:
        colormap = np.asarray(page.colormap)
        index = np.clip(values[..., 0].astype(np.int64), 0, colormap.shape[1] - 1)
        return (colormap[:, index].transpose(1, 2, 0) // 257).astype(np.uint8)
    extra = tuple(int(e) for e in (page.extrasamples or ()))
    alpha_kind = extra[-1] if extra and samples in (2, 4) else 0  # 1 associated, 2 not
    colour = 1 if samples <= 2 else 3
    if photometric == tifffile.PHOTOMETRIC.SEPARATED and samples >= 4:
        cmyk = Image.fromarray(_to_8bit(values[..., :4]), "CMYK")
        return np.asarray(cmyk.convert("RGB"))
    rgb = _to_8bit(values[..., :colour]).astype(np.float64)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE and colour == 1:
        rgb = 255.0 - rgb
    if alpha_kind in (1, 2):
        alpha = values[..., colour].astype(np.float64)
        if values.dtype.kind in "iu":
            alpha = alpha / np.iinfo(values.dtype).max
        alpha = np.clip(np.nan_to_num(alpha), 0.0, 1.0)[..., None]
        rgb = (rgb if alpha_kind == 1 else rgb * alpha) + 255.0 * (1.0 - alpha)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.repeat(rgb, 3, axis=2) if colour == 1 else np.ascontiguousarray(rgb)


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """8-bit samples as they are, anything else (16-bit, float, signed) by the default window."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * 255
    return window_to_8bit(values, DEFAULT_READING.window)
