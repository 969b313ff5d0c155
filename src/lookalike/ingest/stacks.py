"""Multi-dimensional images (OME-TIFF and other TIFF series, OME-Zarr) read as the planes a
collection's `ReadingOptions` choose: one time point, one z plane or a projection, the chosen
channels. The pyramid level read is the smallest that is still large enough; an image over
the pixel limit is read at a reduced level, or downsampled in bands of rows, so memory stays
bounded by the limit rather than by the image.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .reading import DEFAULT_WINDOW, ReadingOptions
from .skipped import ImageSkipped

#: Images with more than this many times the pixel limit are refused even in bands: reading
#: them would take hours (a 100,000 x 100,000 whole slide is 37 times the default limit).
MAX_OVER_LIMIT = 256

#: Percentiles are taken on at most this many samples of a plane (evenly strided): exact enough
#: for a display window, and 1,000 times faster on a whole slide than all of its pixels.
WINDOW_SAMPLES = 1 << 20


@dataclass
class Planes:
    """The chosen channels of one image as (C, Y, X) samples (of the source type, or float
    after a mean or downsampling), with the full-resolution width and height and the source
    sample type (for the window: 8-bit samples are shown as they are). `joint`: the channels
    are the samples of colour pixels (RGB), windowed together to keep their balance; channels
    of a C axis (fluorescence) are windowed each on its own."""

    values: np.ndarray
    width: int
    height: int
    dtype: np.dtype
    joint: bool = False


@dataclass
class Stack:
    """An image with named axes: `levels` are lazily indexed arrays, largest first, with the
    axis letters `axes` (T, C, Z, Y, X, S; any other axis is read at 0)."""

    levels: Sequence
    axes: str

    @property
    def size(self) -> tuple[int, int]:
        shape = self.levels[0].shape
        return int(shape[self.axes.index("X")]), int(shape[self.axes.index("Y")])

    def extent(self, axis: str) -> int:
        return int(self.levels[0].shape[self.axes.index(axis)]) if axis in self.axes else 1

    @property
    def channel_count(self) -> int:
        return self.extent("C") * self.extent("S")

    @property
    def is_plain(self) -> bool:
        """One 2-D image (grey or colour samples): nothing for options to choose."""
        return all(self.extent(a) == 1 for a in self.axes if a not in "YXS")


def read_planes(stack: Stack, reading: ReadingOptions, need: int | None,
                max_pixels: int) -> Planes:
    """The planes `reading` chooses, at the smallest level with at least `need` pixels each
    way (all of them when None) that is within `max_pixels`; ImageSkipped when the image has
    no such time point, plane or channel."""
    width, height = stack.size
    if width * height > MAX_OVER_LIMIT * max_pixels:
        raise ImageSkipped(f"too many pixels ({width}x{height} = {width * height:,}; even read "
                           f"reduced, the limit is {MAX_OVER_LIMIT * max_pixels:,})")
    level, step = _choose_level(stack, need, max_pixels)
    channels = _channels(stack, reading)
    t = _index(stack, "T", reading.t, "time point", "--t")
    zs = _z_planes(stack, reading.z)
    planes = [_project(stack.levels[level], stack.axes, t, zs, c, reading.z, step)
              for c in channels]
    return Planes(np.stack(planes), width, height, np.dtype(stack.levels[0].dtype),
                  joint="C" not in stack.axes and stack.extent("S") > 1)


def _choose_level(stack: Stack, need: int | None, max_pixels: int) -> tuple[int, int]:
    """(level, step): the pyramid level to read and the downsampling step within it."""
    sides = [(int(a.shape[stack.axes.index("Y")]), int(a.shape[stack.axes.index("X")]))
             for a in stack.levels]
    within = [i for i, (h, w) in enumerate(sides) if h * w <= max_pixels]
    if need is not None:
        enough = [i for i in within if min(sides[i]) >= need]
        if enough:
            return min(enough, key=lambda i: sides[i][0] * sides[i][1]), 1
    if within:
        return within[0], 1
    h, w = sides[-1]
    return len(sides) - 1, math.ceil(math.sqrt(h * w / max_pixels))


def _index(stack: Stack, axis: str, value: int, what: str, option: str) -> int:
    count = stack.extent(axis)
    if value >= count:
        raise ImageSkipped(f"no {what} {value} ({option}); the image has {_have(count, what)}")
    return value


def _have(count: int, what: str) -> str:
    return f"1 {what} (0)" if count == 1 else f"{count} {what}s (0-{count - 1})"


def _z_planes(stack: Stack, z: int | str) -> list[int]:
    if isinstance(z, str):
        return list(range(stack.extent("Z")))
    return [_index(stack, "Z", z, "z plane", "--z")]


def _channels(stack: Stack, reading: ReadingOptions) -> list[int]:
    """The channel numbers to read (C and S together count as one channel axis)."""
    count = stack.channel_count
    if reading.channels is None:
        return list(range(min(3, count)))  # grey, or red, green and blue
    missing = [c for c in reading.channels if c >= count]
    if missing:
        raise ImageSkipped(f"no channel {missing[0]} (--channels); the image has "
                           f"{_have(count, 'channel')}")
    return list(reading.channels)


def _project(array, axes: str, t: int, zs: list[int], channel: int, how: int | str,
             step: int) -> np.ndarray:
    """One channel's plane: z plane zs[0], or the max or mean over zs."""
    s_count = int(array.shape[axes.index("S")]) if "S" in axes else 1
    fixed = {"T": t, "C": channel // s_count, "S": channel % s_count}
    result: np.ndarray | None = None
    for z in zs:
        plane = _read_plane(array, axes, {**fixed, "Z": z}, step)
        if result is None:
            result = plane.astype(np.float64) if how == "mean" else plane
        elif how == "mean":
            result += plane
        else:
            np.maximum(result, plane, out=result)
    assert result is not None
    return result / len(zs) if how == "mean" else result


def _read_plane(array, axes: str, at: dict[str, int], step: int) -> np.ndarray:
    """The (Y, X) plane at `at`, read whole, or in bands of rows averaged `step` x `step`."""
    def selection(rows: slice, columns: slice) -> tuple:
        return tuple(rows if a == "Y" else columns if a == "X" else at.get(a, 0) for a in axes)

    y, x = axes.index("Y"), axes.index("X")
    height, width = int(array.shape[y]), int(array.shape[x])
    transpose = x < y
    if step == 1:
        plane = np.asarray(array[selection(slice(None), slice(None))])
        return plane.T if transpose else plane
    rows, columns = height // step * step, width // step * step
    chunk_rows = int(getattr(array, "chunks", (step,) * len(axes))[y])
    band = step * max(1, math.ceil(chunk_rows / step))  # whole chunks per read, when possible
    out = np.empty((rows // step, columns // step), np.float64)
    for top in range(0, rows, band):
        block = np.asarray(array[selection(slice(top, min(top + band, rows)),
                                           slice(0, columns))], dtype=np.float64)
        block = block.T if transpose else block
        out[top // step: top // step + block.shape[0] // step] = block.reshape(
            block.shape[0] // step, step, columns // step, step).mean(axis=(1, 3))
    return out


# -- TIFF ------------------------------------------------------------------------------------

def tiff_stack(tif) -> Stack:
    """The first series of an open `tifffile.TiffFile`, with its pyramid levels (OME-TIFF
    SubIFDs or series levels), as lazily read arrays."""
    import zarr

    series = tif.series[0]
    # tifffile's store is read-only in fact; zarr asks for r+ on stores without a read-only
    # copy of themselves.
    levels = [zarr.open_array(store=series.aszarr(level=i), mode="r+")
              for i in range(len(series.levels))]
    axes = series.axes.replace("I", "Q")
    return Stack(levels, axes)


def tiff_planes(data: bytes, reading: ReadingOptions, need: int | None,
                max_pixels: int) -> Planes | None:
    """The planes of a TIFF that must be read as a stack (several planes, channels or points
    in time; options that choose; over the pixel limit), else None: a plain TIFF is read as
    any image."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not tif.series:
                return None
            stack = tiff_stack(tif)
            width, height = stack.size
            eight_bit = np.dtype(stack.levels[0].dtype) in (np.uint8, np.bool_)
            if (not reading.selects and stack.is_plain and width * height <= max_pixels
                    and (eight_bit or reading.window == DEFAULT_WINDOW)):
                return None
            return read_planes(stack, reading, need, max_pixels)
    except ImageSkipped:
        raise
    except MemoryError:
        raise ImageSkipped("not enough memory to decode this image") from None
    except Exception:
        return None  # the plain reader says what is wrong with it


def tiff_size(data: bytes) -> tuple[int, int] | None:
    """The full-resolution (width, height) of a TIFF's first series, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            axes = series.axes
            return int(series.shape[axes.index("X")]), int(series.shape[axes.index("Y")])
    except Exception:
        return None


def tiff_sample_type(data: bytes) -> np.dtype | None:
    """The sample type of a TIFF's first series, or None."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            return np.dtype(tif.series[0].dtype)
    except Exception:
        return None


__all__ = ["MAX_OVER_LIMIT", "Planes", "Stack", "read_planes", "tiff_planes",
           "tiff_sample_type", "tiff_size", "tiff_stack"]
