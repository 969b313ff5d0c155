"""Synthetic Cell-Painting-like plates: 16-bit multi-channel microscopy with known structure.

Each plate holds wells of known conditions (cell-like blobs whose size, shape and texture
differ per condition; the first condition is the control) and several fields per well; each
plate has an acquisition of its own (gain, offset, background, uneven illumination, focus,
noise), the "plate effect" that per-plate normalisation is meant to remove. Everything is
drawn from one seed, so a test or a benchmark can write the same plates again.

Written as one OME-TIFF per field (channels as pages, OME-XML with the plate, its wells, the
field's WellSample and the plate acquisition), as one plain 16-bit TIFF per channel named
`{plate}_{well}_s{field}_w{channel}.tif`, the way many screening microscopes name them, or as
one OME-Zarr plate per plate (`P1.ome.zarr`, OME-NGFF 0.4 `plate` and `well` metadata, a field
as `A/1/0`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np


@dataclass(frozen=True)
class Condition:
    """How the cells of one condition look: mean radius (pixels), elongation (long axis over
    short), nucleus size relative to the cell, mitochondria-like puncta per cell area, and how
    speckled the nucleus is (0: smooth)."""

    name: str
    radius: float
    elongation: float
    nucleus: float
    puncta: float
    speckle: float


#: The first is the control (untreated wells); the others differ from it in one or two ways.
CONDITIONS = (
    Condition("control", 11.0, 1.3, 0.45, 0.015, 0.0),
    Condition("enlarged", 14.0, 1.2, 0.40, 0.015, 0.0),
    Condition("elongated", 11.0, 2.2, 0.42, 0.015, 0.0),
    Condition("punctate", 11.0, 1.3, 0.45, 0.08, 0.45),
    Condition("shrunken", 8.5, 1.3, 0.55, 0.015, 0.0),
)

#: Cell Painting's five stains, in the order channels are written (the first n are used).
CHANNELS = ("DNA", "Actin", "Mito", "Membrane", "RNA")


@dataclass(frozen=True)
class PlateImage:
    """One file written: its path and what it shows. `channel` is None for a file holding
    every channel (an OME-TIFF field), else the channel's number (1-based, as in `w1`)."""

    path: Path
    plate: str
    well: str
    field: int
    channel: int | None
    condition: str

    @property
    def control(self) -> bool:
        return self.condition == CONDITIONS[0].name


@dataclass(frozen=True)
class PlateSet:
    """The plates written into `folder`: every file, and the control wells (the same on
    every plate)."""

    folder: Path
    images: tuple[PlateImage, ...]
    control_wells: tuple[str, ...]
    channels: tuple[str, ...]

    @property
    def pattern(self) -> str:
        """The file-name pattern of the per-channel layout, as `index --pattern` takes it."""
        return "{plate}_{well}_s{field}_w{channel}.tif"


def well_name(row: int, column: int) -> str:
    """A well's usual name from its 0-based row and column: (0, 0) -> A01."""
    return f"{chr(ord('A') + row)}{column + 1:02d}"


def write_plates(folder: str | os.PathLike, *, plates: int = 3, conditions: int = 4,
                 wells_per_condition: int = 2, fields: int = 3, channels: int = 3,
                 size: int = 128, per_channel_files: bool = False, ome_zarr: bool = False,
                 seed: int = 0) -> PlateSet:
    """Write `plates` synthetic plates into `folder` (created). Condition c (of the first
    `conditions` of CONDITIONS) fills row c of every plate, `wells_per_condition` wells from
    column 01, so the controls are A01, A02, ...; each well has `fields` fields of
    size x size pixels with `channels` channels (of CHANNELS) in 16 bits. `ome_zarr` writes
    each plate as an OME-Zarr plate (the same pixels as the OME-TIFFs of the same seed)."""
    if not 1 <= conditions <= len(CONDITIONS) or not 1 <= channels <= len(CHANNELS):
        raise ValueError(f"conditions must be 1..{len(CONDITIONS)}, channels 1..{len(CHANNELS)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written: list[PlateImage] = []
    for p in range(plates):
        plate = f"P{p + 1}"
        effect = _PlateEffect.draw(rng, channels)
        layout = [(c, well_name(c, r)) for c in range(conditions)
                  for r in range(wells_per_condition)]
        for c, well in layout:
            for field in range(1, fields + 1):
                pixels = effect.apply(_cells(CONDITIONS[c], channels, size, rng), rng)
                if ome_zarr:
                    written.append(_write_zarr_field(out, plate, well, field,
                                                     CONDITIONS[c].name, pixels))
                    continue
                written += _write_field(out, plate, well, field, CONDITIONS[c].name, pixels,
                                        per_channel_files, (p, layout, fields, effect.acquired))
        if ome_zarr:
            _write_zarr_plate(out / f"{plate}.ome.zarr", plate, layout, fields, effect.acquired)
    controls = tuple(well_name(0, r) for r in range(wells_per_condition))
    return PlateSet(out, tuple(written), controls, CHANNELS[:channels])


# -- cells ----------------------------------------------------------------------------------------

def _cells(condition: Condition, channels: int, size: int, rng: np.random.Generator
           ) -> np.ndarray:
    """(channels, size, size) float intensities in about 0..1 of one field of cells."""
    image = np.zeros((channels, size, size))
    count = max(2, int(0.35 * size * size / (np.pi * condition.radius ** 2)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(count):
        radius = condition.radius * rng.uniform(0.85, 1.15)
        long_axis = radius * np.sqrt(condition.elongation)
        short_axis = radius / np.sqrt(condition.elongation)
        cy, cx = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / long_axis
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / short_axis
        r = np.sqrt(u * u + v * v)  # 1 on the cell's edge
        body = _soft(1.0 - r, 0.08)
        nucleus = _soft(1.0 - r / condition.nucleus, 0.1)
        if condition.speckle:
            nucleus = nucleus * (1 - condition.speckle
                                 + condition.speckle * rng.random((size, size)) ** 2 * 2)
        image[0] = np.maximum(image[0], nucleus)
        if channels > 1:
            image[1] = np.maximum(image[1], 0.5 * body * (1 - 0.6 * nucleus))
        if channels > 2:
            image[2] += _puncta(body, condition.puncta * np.pi * long_axis * short_axis, rng,
                                (cy, cx), long_axis)
        if channels > 3:
            image[3] = np.maximum(image[3], _soft(0.15 - np.abs(1.0 - r), 0.05))
        if channels > 4:
            image[4] = np.maximum(image[4], 0.4 * nucleus + 0.3 * body)
    return image


def _soft(x: np.ndarray, width: float) -> np.ndarray:
    """A smooth step from 0 (x << 0) to 1 (x >> 0)."""
    return 1.0 / (1.0 + np.exp(-np.clip(x / width, -30, 30)))


def _puncta(body: np.ndarray, count: float, rng: np.random.Generator,
            centre: tuple[float, float], reach: float) -> np.ndarray:
    """Small bright spots scattered over a cell's body (mitochondria-like)."""
    size = body.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    out = 0.2 * body
    for _ in range(int(rng.poisson(max(count, 0.5)))):
        y = centre[0] + rng.normal(0, reach / 2)
        x = centre[1] + rng.normal(0, reach / 2)
        out = out + body * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 3.0)
    return out


# -- the plate effect -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _PlateEffect:
    """One plate's acquisition: what makes images of the same cells look different from plate
    to plate even after each is stretched by its own range."""

    gain: float
    offset: float
    background: float
    tilt: tuple[float, float]   # illumination falls off linearly along this direction
    blur: float                 # out-of-focus, in pixels
    noise: float
    channel_gain: tuple[float, ...]
    acquired: str

    @classmethod
    def draw(cls, rng: np.random.Generator, channels: int) -> _PlateEffect:
        angle = rng.uniform(0, 2 * np.pi)
        strength = rng.uniform(0.3, 1.2)
        day = int(rng.integers(1, 28))
        return cls(gain=float(rng.uniform(4000, 20000)), offset=float(rng.uniform(100, 3000)),
                   background=float(rng.uniform(0.02, 0.8)),
                   tilt=(strength * np.cos(angle), strength * np.sin(angle)),
                   blur=float(rng.uniform(0.0, 2.5)), noise=float(rng.uniform(0.01, 0.12)),
                   channel_gain=tuple(float(g) for g in rng.uniform(0.5, 1.5, channels)),
                   acquired=f"2026-03-{day:02d}T09:00:00")

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = image.shape[-1]
        ramp = np.linspace(-0.5, 0.5, size)
        light = 1.0 + self.tilt[0] * ramp[None, :] + self.tilt[1] * ramp[:, None]
        out = np.empty(image.shape, np.uint16)
        for c, plane in enumerate(image):
            signal = _blurred(plane, self.blur) + self.background
            signal = signal * light + rng.normal(0, self.noise, plane.shape)
            value = self.offset + self.gain * self.channel_gain[c] * signal
            out[c] = np.clip(np.rint(value), 0, 65535).astype(np.uint16)
        return out


def _blurred(plane: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian blur (edges repeated)."""
    if sigma < 0.3:
        return plane
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma * sigma))
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(plane, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                        mode="edge")
        n = plane.shape[axis]
        plane = sum(w * padded.take(range(i, i + n), axis=axis) for i, w in enumerate(kernel))
    return plane


# -- files ----------------------------------------------------------------------------------------

def _write_field(out: Path, plate: str, well: str, field: int, condition: str,
                 pixels: np.ndarray, per_channel: bool, where: tuple) -> list[PlateImage]:
    import tifffile

    if per_channel:
        images = []
        for c, plane in enumerate(pixels, start=1):
            path = out / f"{plate}_{well}_s{field}_w{c}.tif"
            tifffile.imwrite(path, plane, photometric="minisblack", metadata=None)
            images.append(PlateImage(path, plate, well, field, c, condition))
        return images
    path = out / f"{plate}_{well}_s{field}.ome.tif"
    tifffile.imwrite(path, pixels, photometric="minisblack", metadata=None,
                     description=_ome_xml(plate, well, field, pixels.shape, where))
    return [PlateImage(path, plate, well, field, None, condition)]


def _write_zarr_field(out: Path, plate: str, well: str, field: int, condition: str,
                      pixels: np.ndarray) -> PlateImage:
    """One field as an OME-Zarr image (axes c, y, x; one level; channel names as `omero`
    labels) at PLATE.ome.zarr/ROW/COLUMN/FIELD-1, with the well's metadata."""
    import zarr

    well_path = f"{well[0]}/{int(well[1:])}"
    path = out / f"{plate}.ome.zarr" / well_path / str(field - 1)
    image = zarr.open_group(str(path), mode="w", zarr_format=2)
    image.create_array("0", data=pixels, chunks=(1, *pixels.shape[1:]))
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
            {"name": "x", "type": "space"}]
    image.attrs["multiscales"] = [{
        "version": "0.4", "axes": axes, "datasets": [{
            "path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]}]
    image.attrs["omero"] = {"channels": [{"label": CHANNELS[c], "active": True}
                                         for c in range(len(pixels))]}
    well_group = zarr.open_group(str(path.parent), mode="a", zarr_format=2)
    well_group.attrs["well"] = {"images": [{"path": str(n), "acquisition": 0}
                                           for n in range(field)], "version": "0.4"}
    return PlateImage(path, plate, well, field, None, condition)


def _write_zarr_plate(folder: Path, plate: str, layout: list[tuple[int, str]], fields: int,
                      acquired: str) -> None:
    """The plate's own metadata (OME-NGFF 0.4 `plate`), written once its wells are."""
    import datetime

    import zarr

    rows = sorted({well[0] for _, well in layout})
    columns = sorted({int(well[1:]) for _, well in layout})
    start = datetime.datetime.fromisoformat(acquired).replace(tzinfo=datetime.timezone.utc)
    group = zarr.open_group(str(folder), mode="a", zarr_format=2)
    for row in rows:
        zarr.open_group(str(folder / row), mode="a", zarr_format=2)
    group.attrs["plate"] = {
        "version": "0.4", "name": plate, "field_count": fields,
        "rows": [{"name": r} for r in rows], "columns": [{"name": str(c)} for c in columns],
        "wells": [{"path": f"{well[0]}/{int(well[1:])}", "rowIndex": rows.index(well[0]),
                   "columnIndex": columns.index(int(well[1:]))} for _, well in layout],
        "acquisitions": [{"id": 0, "name": f"{plate} run 1",
                          "starttime": int(start.timestamp() * 1000)}]}


def _ome_xml(plate: str, well: str, field: int, shape: tuple[int, ...], where: tuple) -> str:
    """OME-XML for one field's file: the plate with this field's well and WellSample, the
    plate acquisition, and the image (channels as planes, in the file's pages)."""
    p, layout, fields, acquired = where
    channels, height, width = shape
    row, column = ord(well[0]) - ord("A"), int(well[1:]) - 1
    sample = f"WellSample:{p}:{well}:{field}"
    channel_xml = "".join(f'<Channel ID="Channel:0:{c}" Name={quoteattr(CHANNELS[c])} '
                          'SamplesPerPixel="1"/>' for c in range(channels))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 '
        'http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd">'
        f'<Plate ID="Plate:{p}" Name={quoteattr(plate)} Rows="{max(r for r, _ in layout) + 1}" '
        f'Columns="{max(int(w[1:]) for _, w in layout)}">'
        f'<Well ID="Well:{p}:{well}" Row="{row}" Column="{column}">'
        f'<WellSample ID="{sample}" Index="{field - 1}"><ImageRef ID="Image:0"/></WellSample>'
        '</Well>'
        f'<PlateAcquisition ID="PlateAcquisition:{p}" Name={quoteattr(plate + " run 1")} '
        f'StartTime="{acquired}"><WellSampleRef ID="{sample}"/></PlateAcquisition>'
        '</Plate>'
        f'<Image ID="Image:0" Name={quoteattr(f"{plate} {well} field {field}")}>'
        f'<AcquisitionDate>{acquired}</AcquisitionDate>'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="{width}" '
        f'SizeY="{height}" SizeC="{channels}" SizeZ="1" SizeT="1">'
        f'{channel_xml}<TiffData IFD="0" PlaneCount="{channels}"/></Pixels></Image></OME>')


__all__ = ["CHANNELS", "CONDITIONS", "Condition", "PlateImage", "PlateSet", "well_name",
           "write_plates"]
