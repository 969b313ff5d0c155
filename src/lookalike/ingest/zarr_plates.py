"""OME-Zarr high-content screening plates (OME-NGFF `plate` and `well` metadata, 0.1-0.5): a
plate folder is listed as its fields, each an OME-Zarr image inside it (`P1.ome.zarr/A/1/0`),
with the plate, well, well_row, well_column, field, channels, acquisition and acquired columns
that plate_columns.py gives an OME-TIFF. Only metadata files are read here, never a chunk.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .wells import well_columns

#: Metadata files larger than this are not plate metadata (a 1536-well plate's is ~200 kB).
_MAX_METADATA_BYTES = 16 << 20


@dataclass(frozen=True)
class PlateField:
    """One field of a plate: the folder of its OME-Zarr image and its columns. `problem` is
    the reason a well listed by the plate gives no field (its folder or metadata missing);
    `folder` is then the well's folder."""

    folder: str
    name: str
    columns: dict[str, Any]
    problem: str | None = None


def attributes(folder: str | bytes) -> dict[str, Any]:
    """A zarr group's attributes (v2 `.zattrs`, or v3 `zarr.json`'s `attributes`), with
    OME-NGFF 0.5's `ome` key unwrapped; {} when it has none or they cannot be read."""
    folder = os.fsdecode(folder)
    for name, inner in ((".zattrs", None), ("zarr.json", "attributes")):
        path = os.path.join(folder, name)
        try:
            if os.path.getsize(path) > _MAX_METADATA_BYTES:
                return {}
            with open(path, "rb") as fh:
                found = json.load(fh)
        except (OSError, ValueError):
            continue
        if inner is not None:
            found = found.get(inner) if isinstance(found, dict) else None
        if not isinstance(found, dict):
            return {}
        ome = found.get("ome")
        return {**found, **ome} if isinstance(ome, dict) else found
    return {}


def is_plate(folder: str | bytes) -> bool:
    return isinstance(attributes(folder).get("plate"), dict)


def plate_fields(folder: str, stem: str) -> Iterator[PlateField]:
    """The fields of the plate in `folder`, well by well in the plate's order, each well's
    fields in its own order (`field` from 1). `stem` (the folder's image name) stands in for
    a plate without a name, and begins each field's image name (`P1 A01 field 2`)."""
    plate = attributes(folder).get("plate")
    if not isinstance(plate, dict):
        return
    name = str(plate.get("name") or stem)
    rows = _names(plate.get("rows"))
    columns = _names(plate.get("columns"))
    acquisitions = {a.get("id"): a for a in plate.get("acquisitions") or []
                    if isinstance(a, dict)}
    for well in plate.get("wells") or []:
        path = well.get("path") if isinstance(well, dict) else None
        if not isinstance(path, str) or not path:
            continue
        where = {"plate": name, **_well_of(well, path, rows, columns)}
        yield from _well_fields(os.path.join(folder, *path.split("/")), where, acquisitions)


def _names(entries: Any) -> list[str]:
    return [str(e.get("name", "")) if isinstance(e, dict) else str(e) for e in entries or []]


def _well_of(well: dict, path: str, rows: list[str], columns: list[str]) -> dict[str, Any]:
    """well (`B07`), well_row and well_column from the plate's row and column names (by the
    well's rowIndex and columnIndex; OME-NGFF 0.1-0.3 wells have only their `row/column`
    path)."""
    row_index, column_index = well.get("rowIndex"), well.get("columnIndex")
    if isinstance(row_index, int) and isinstance(column_index, int) \
            and row_index < len(rows) and column_index < len(columns):
        row, column = rows[row_index], columns[column_index]
    else:
        row, _, column = path.partition("/")
    return well_columns(f"{row}{column}")


def _well_fields(well_folder: str, where: dict[str, Any], acquisitions: dict
                 ) -> Iterator[PlateField]:
    images = attributes(well_folder).get("well", {})
    listed = images.get("images") if isinstance(images, dict) else None
    if not listed:
        yield PlateField(well_folder, "", where, f"a broken OME-Zarr plate: well {where['well']}"
                                                 " has no well metadata listing its fields")
        return
    for number, image in enumerate(listed, start=1):
        path = image.get("path") if isinstance(image, dict) else None
        if not isinstance(path, str) or not path:
            continue
        folder = os.path.join(well_folder, *path.split("/"))
        columns = {**where, "field": number, **_channels(folder),
                   **_acquisition(acquisitions.get(image.get("acquisition")))}
        yield PlateField(folder, f"{where['plate']} {where['well']} field {number}", columns)


def _channels(folder: str) -> dict[str, Any]:
    """The channel names of a field (its `omero` rendering metadata's labels), as OME-XML's
    channel names give an OME-TIFF's `channels` column."""
    omero = attributes(folder).get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    labels = [str(c.get("label") or "") for c in channels or [] if isinstance(c, dict)]
    return {"channels": ",".join(labels)} if any(labels) else {}


def _acquisition(found: dict | None) -> dict[str, Any]:
    """acquisition (its name, else its id) and acquired (its start time, milliseconds since
    1970 in OME-NGFF, as an ISO date in UTC)."""
    if not found:
        return {}
    out: dict[str, Any] = {"acquisition": str(found.get("name") or found.get("id"))}
    start = found.get("starttime")
    if isinstance(start, (int, float)) and not isinstance(start, bool) and start >= 0:
        when = datetime.datetime.fromtimestamp(start / 1000, datetime.timezone.utc)
        out["acquired"] = when.strftime("%Y-%m-%dT%H:%M:%S")
    return out


__all__ = ["PlateField", "attributes", "is_plate", "plate_fields"]
