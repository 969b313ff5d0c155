"""Plate, well, field, channel and acquisition columns of screening images, from the OME-XML of
an OME-TIFF or from a file-name pattern the user gives (`{plate}_{well}_s{field}_w{channel}.tif`).

They are kept as the image's extra columns (as a table's other columns are), so they show in
`similar`, `export` and the viewer, and per-plate normalisation groups by them. A pattern is
matched against file names without opening any file; OME-XML is read from bytes already read
for decoding.
"""

from __future__ import annotations

import io
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..catalogue.store import KnownFile, extras_dict
from .folders import ImageFile, RemoteImage, SourceError, Unreadable
from .wells import well_columns

#: The columns OME-XML gives (those of a file's first image that it names).
OME_COLUMNS = ("plate", "well", "well_row", "well_column", "field", "channels", "acquisition",
               "acquired")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PatternError(SourceError):
    """A --pattern that cannot be used: malformed, or matching no file."""


class FileNamePattern:
    """A pattern like `{plate}_{well}_s{field}_w{channel}.tif`: each `{name}` takes the
    characters up to what follows it (never a `/`), `*` any characters, the rest literally
    (case-insensitive). Without a `/` it is matched against the file name, with one against
    the end of the path. `{well}` (A01, B7, AA12) also gives well_row and well_column;
    values made of digits become numbers."""

    def __init__(self, pattern: str):
        self.text = pattern
        names = _PLACEHOLDER.findall(pattern)
        if not names:
            raise PatternError(f"--pattern {pattern!r} names no column; write the parts of the "
                               "file name as {plate}, {well}, {field}, {channel}, ...")
        if len(set(names)) != len(names):
            raise PatternError(f"--pattern {pattern!r} names a column twice")
        parts, last = [], 0
        for m in _PLACEHOLDER.finditer(pattern):
            parts.append(_literal(pattern[last:m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]+?)")
            last = m.end()
        parts.append(_literal(pattern[last:]))
        body = "".join(parts)
        # With a folder in it, the pattern matches the path's last parts; else the name.
        self._whole_path = "/" in pattern
        self._regex = re.compile(("(?:^|/)" + body if self._whole_path else body) + r"\Z",
                                 re.IGNORECASE)
        self.names = names

    def columns(self, path: str) -> dict[str, Any] | None:
        """The columns a path's name gives, or None if it does not match."""
        text = path.replace(os.sep, "/")
        found = (self._regex.search(text) if self._whole_path
                 else self._regex.match(text.rsplit("/", 1)[-1]))
        if found is None:
            return None
        values = {name: _value(found.group(name)) for name in self.names}
        if "well" in values:
            values.update(well_columns(str(values["well"])))
        return values


def _literal(text: str) -> str:
    return ".*?".join(re.escape(piece) for piece in text.split("*"))


def _value(text: str) -> str | int:
    return int(text) if text.isdigit() and len(text) < 10 else text


def with_file_name_columns(found: Sequence[ImageFile | RemoteImage | Unreadable],
                           pattern: str | None, known: dict[bytes, KnownFile]
                           ) -> tuple[list[ImageFile | RemoteImage | Unreadable], int]:
    """`found` with the pattern's columns added to each image's extras (the pattern wins over
    a table's column of the same name), and the OME columns of unchanged files kept (they were
    read from the pixels' file, which is not opened again); with how many the pattern matched.
    PatternError when a pattern matches none of the images."""
    compiled = FileNamePattern(pattern) if pattern else None
    out: list[ImageFile | RemoteImage | Unreadable] = []
    matched = 0
    for item in found:
        if isinstance(item, Unreadable):
            out.append(item)
            continue
        given = compiled.columns(item.path) if compiled else None
        matched += given is not None
        before = known.get(item.locator)
        kept = _ome_columns_kept(item, before)
        if given is None and not kept:
            out.append(item)
            continue
        extras = {**kept, **extras_dict(item.extras), **(given or {})}
        same = before is not None and before.extras and extras_dict(before.extras) == extras
        # The stored text when nothing changed: the catalogue is then not written at all.
        text = before.extras if same and before is not None else json.dumps(extras,
                                                                           ensure_ascii=False)
        out.append(replace(item, extras=text))
    if compiled is not None and matched == 0:
        images = [i for i in found if not isinstance(i, Unreadable)]
        example = f" (for example {os.path.basename(images[0].path)!r})" if images else ""
        raise PatternError(f"--pattern {pattern!r} matches none of the {len(images):,} images "
                           f"found{example}; give a pattern that their file names follow")
    return out, matched


def _ome_columns_kept(item: ImageFile | RemoteImage, known: KnownFile | None) -> dict[str, Any]:
    """The OME columns stored for a file that is unchanged (same size and time)."""
    if (known is None or not known.extras or not isinstance(item, ImageFile)
            or (known.size, known.mtime_ns) != (item.size, item.mtime_ns)):
        return {}
    return {k: v for k, v in extras_dict(known.extras).items() if k in OME_COLUMNS}


def with_ome_columns(extras: str | None, data: bytes) -> str | None:
    """`extras` (JSON text or None) with the OME columns of an OME-TIFF's bytes added under
    them (a pattern's or a table's values win); unchanged for any other file."""
    found = ome_columns(data)
    if not found:
        return extras
    return json.dumps({**found, **extras_dict(extras)}, ensure_ascii=False)


def ome_columns(data: bytes) -> dict[str, Any]:
    """Plate, well (and its row and column), field (1 for the well's first WellSample; by its
    Index when the file lists only its own),
    channel names, plate acquisition and acquisition date of the first image of an OME-TIFF;
    {} for a file that is not one or names none of them."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return {}
    try:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            xml = tif.ome_metadata if tif.is_ome else None
        return _from_ome_xml(xml) if xml else {}
    except Exception:  # a damaged header: decoding will say why, if it matters
        return {}


def _from_ome_xml(xml: str) -> dict[str, Any]:
    root = ET.fromstring(xml)
    ns = {"ome": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {"ome": ""}

    def all_of(parent: ET.Element, tag: str) -> list[ET.Element]:
        return parent.findall(f"ome:{tag}" if ns["ome"] else tag, ns)

    images = all_of(root, "Image")
    if not images:
        return {}
    image = images[0]
    out: dict[str, Any] = _plate_of(root, image.get("ID"), all_of)
    channels = [c.get("Name") or c.get("ID") or "" for p in all_of(image, "Pixels")
                for c in all_of(p, "Channel")]
    if any(channels):
        out["channels"] = ",".join(channels)
    for date in all_of(image, "AcquisitionDate"):
        out["acquired"] = (date.text or "").strip()
    return out


def _plate_of(root: ET.Element, image_id: str | None, all_of) -> dict[str, Any]:
    """The plate columns of the WellSample that refers to `image_id`."""
    for plate in all_of(root, "Plate"):
        for well in all_of(plate, "Well"):
            samples = all_of(well, "WellSample")
            for position, sample in enumerate(samples, start=1):
                if not any(ref.get("ID") == image_id for ref in all_of(sample, "ImageRef")):
                    continue
                out: dict[str, Any] = {"plate": plate.get("Name") or plate.get("ID")}
                out.update(_well_of(well))
                # A file that lists only its own WellSample numbers it by Index (0-based).
                index = sample.get("Index", "")
                out["field"] = int(index) + 1 if len(samples) == 1 and index.isdigit() \
                    else position
                for run in all_of(plate, "PlateAcquisition"):
                    if any(r.get("ID") == sample.get("ID") for r in all_of(run, "WellSampleRef")):
                        out["acquisition"] = run.get("Name") or run.get("ID")
                return out
    return {}


def _well_of(well: ET.Element) -> dict[str, Any]:
    try:
        row, column = int(well.get("Row", "")), int(well.get("Column", ""))
    except ValueError:
        return {"well": well.get("ID")}
    letters = chr(ord("A") + row) if row < 26 else "A" + chr(ord("A") + row - 26)  # 1536: AF
    return {"well": f"{letters}{column + 1:02d}", "well_row": letters, "well_column": column + 1}


__all__ = ["OME_COLUMNS", "FileNamePattern", "PatternError", "ome_columns", "well_columns",
           "with_file_name_columns", "with_ome_columns"]
