"""Per-plate normalisation of vectors: each plate's vectors centred and scaled against the
plate's control wells (or all its wells), so that look-alikes are not just "same plate".

The usual batch correction of high-content screening (a z-score per plate against its
negative controls): a plate's acquisition (illumination, focus, staining) moves all its
vectors together, and subtracting what its controls share takes that move out. The stored
vectors are never rewritten: the search engine derives the normalised matrix when it loads a
model's matrix and keeps it in memory for the catalogue's generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..catalogue.store import extras_dict
from ..errors import LookalikeError

#: A dimension's spread is floored at this share of the median spread over all dimensions of
#: the group: dimensions on which its images happen to agree would otherwise be blown up into
#: noise (benchmarks/quality.py --plates measures the choice).
SPREAD_FLOOR = 1.0


@dataclass(frozen=True)
class Normalisation:
    """How to normalise: `by` names the columns whose values make a group (("plate",)), and
    the references each group is centred and scaled against: the images of `control_wells`
    (matched with the `well` column), or those whose `control_column` holds `control_value`,
    or (neither given) every image of the group."""

    by: tuple[str, ...]
    control_wells: tuple[str, ...] = ()
    control_column: str | None = None
    control_value: str | None = None

    @classmethod
    def of(cls, by: str | Sequence[str] | None, controls: str | Sequence[str] | None = None
           ) -> Normalisation | None:
        """From what a user gives: `by` "plate" (or "plate,channel", or a list), `controls`
        wells "A01,B01" (or a list) or "COLUMN=VALUE"; None when `by` is None."""
        if by is None:
            if controls:
                raise LookalikeError("--controls says what to normalise against: give "
                                     "--normalise plate with it")
            return None
        columns = tuple(c.strip() for c in (by.split(",") if isinstance(by, str) else by)
                        if c.strip())
        if not columns:
            raise LookalikeError("--normalise needs a column to group by, e.g. plate")
        if isinstance(controls, str) and "=" in controls:
            column, value = (part.strip() for part in controls.split("=", 1))
            if not column or not value:
                raise LookalikeError(f"--controls {controls!r}: give wells (A01,B01) or "
                                     "COLUMN=VALUE, e.g. condition=control")
            return cls(columns, control_column=column, control_value=value)
        wells = controls.split(",") if isinstance(controls, str) else list(controls or ())
        from ..ingest.wells import well_columns  # "a1" and "A01" are one well

        return cls(columns, tuple(str(well_columns(w.strip())["well"]) for w in wells
                                  if w.strip()))

    def describe(self) -> str:
        against = (f"control wells {','.join(self.control_wells)}" if self.control_wells
                   else f"{self.control_column} = {self.control_value}" if self.control_column
                   else "all its images")
        return f"normalised per {' and '.join(self.by)} against {against}"


def normalise(matrix: np.ndarray, extras: Sequence[str | dict | None],
              how: Normalisation, spread_floor: float | None = SPREAD_FLOOR) -> np.ndarray:
    """The rows of `matrix` (one per image; `extras` its columns, JSON text or dicts)
    centred on the mean of their group's references and divided by the spread of the whole
    group per dimension, floored at `spread_floor` times its median (None: centred only).
    The spread is the group's, not the references': a few control wells cannot estimate a
    thousand spreads (scaling by theirs lost 9 points of P@10 on the synthetic plates).
    LookalikeError, in one line, when a column is missing or a group has no reference."""
    columns = [extras_dict(e) for e in extras]
    groups, names = _groups(columns, how.by)
    reference = _references(columns, how)
    out = np.empty(matrix.shape, np.float32)
    for g, name in enumerate(names):
        rows = np.flatnonzero(groups == g)
        refs = rows[reference[rows]]
        if len(refs) == 0:
            raise LookalikeError(f"{_group_label(how.by, name)} has no {_what(how)}; "
                                 f"{_hint(how, columns, rows)}")
        values = np.asarray(matrix[rows], np.float64)
        base = np.asarray(matrix[refs], np.float64)
        centred = values - base.mean(axis=0)
        if spread_floor is None:
            out[rows] = centred
            continue
        spread = values.std(axis=0)
        out[rows] = centred / np.maximum(spread, spread_floor * max(float(np.median(spread)),
                                                                    1e-12))
    return out


def _groups(columns: list[dict[str, Any]], by: tuple[str, ...]) -> tuple[np.ndarray, list]:
    """Each image's group number, and each group's values of the `by` columns (images
    without them form a group of their own)."""
    present = {key for c in columns for key in c}
    missing = [b for b in by if b not in present]
    if missing:
        have = ", ".join(sorted(present)) or "none"
        raise LookalikeError(f"--normalise {','.join(by)}: no image has a {missing[0]!r} column "
                             f"(the collection's columns: {have}); index with --pattern (e.g. "
                             "'{plate}_{well}_s{field}_w{channel}.tif') or OME-TIFFs that name "
                             "their plate")
    keys = [tuple(c.get(b) for b in by) for c in columns]
    names = list(dict.fromkeys(keys))
    number = {key: n for n, key in enumerate(names)}
    return np.fromiter((number[k] for k in keys), np.int64, len(keys)), names


def _references(columns: list[dict[str, Any]], how: Normalisation) -> np.ndarray:
    if how.control_wells:
        wells = {str(c.get("well")) for c in columns if "well" in c}
        if not wells:
            raise LookalikeError("--controls names wells, but no image has a 'well' column; "
                                 "give --controls COLUMN=VALUE, or index with a --pattern "
                                 "that has {well}")
        unknown = [w for w in how.control_wells if w not in wells]
        if len(unknown) == len(how.control_wells):
            raise LookalikeError(f"--controls {','.join(how.control_wells)}: no image is in "
                                 f"these wells (the collection's wells: {_some(wells)})")
        wanted = set(how.control_wells)
        return np.array([str(c.get("well")) in wanted for c in columns], bool)
    if how.control_column is not None:
        values = {str(c[how.control_column]) for c in columns if how.control_column in c}
        if not values:
            raise LookalikeError(f"--controls {how.control_column}={how.control_value}: no "
                                 f"image has a {how.control_column!r} column")
        if how.control_value not in values:
            raise LookalikeError(f"--controls {how.control_column}={how.control_value}: no "
                                 f"image has that value (its values: {_some(values)})")
        return np.array([str(c.get(how.control_column)) == how.control_value
                         for c in columns], bool)
    return np.ones(len(columns), bool)


def _some(values: set[str], n: int = 8) -> str:
    shown = sorted(values)
    return ", ".join(shown[:n]) + (f" and {len(shown) - n} more" if len(shown) > n else "")


def _group_label(by: tuple[str, ...], key: tuple) -> str:
    return " ".join(f"{b} {v}" if v is not None else f"(no {b})" for b, v in zip(by, key))


def _what(how: Normalisation) -> str:
    if how.control_wells:
        return f"image in the control wells {','.join(how.control_wells)}"
    return f"image with {how.control_column} = {how.control_value}"


def _hint(how: Normalisation, columns: list[dict[str, Any]], rows: np.ndarray) -> str:
    if how.control_wells:
        wells = {str(columns[r].get("well")) for r in rows if "well" in columns[r]}
        return f"its wells: {_some(wells)}; give control wells every plate has"
    return "give controls every group has"


__all__ = ["SPREAD_FLOOR", "Normalisation", "normalise"]
