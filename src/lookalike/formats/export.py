"""Writing look-alikes and whole collections to files that other tools read.

CSV, JSON and Parquet for programs, NumPy `.npz` for vectors, and Orange's tab-separated `.tab`
format, so that a result opens in Orange (Image Viewer, Neighbors, ...) as if Orange had made it.
`Neighbors.to_*` and `Collection.export` are the public entry points; this module does the work.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from ..catalogue.store import extras_dict
from ..errors import LookalikeError
from ..fileio import atomic_file
from .orange import orange_flags, orange_image_value, orange_origin, unique_name
from .records import (
    CATALOGUE_FIELDS,
    FEEDBACK_FIELDS,
    FLOAT_FIELDS,
    GROUP_FIELDS,
    INT_FIELDS,
    MAP_FIELDS,
    RECORD_FIELDS,
)


class Neighbors(Protocol):
    """What the writers read of `lookalike.Neighbors` (typed here so that export, which api
    calls, does not import api back). Read-only: a dataclass field or a property fits."""
    @property
    def rows(self) -> list[dict]: ...
    @property
    def distances(self) -> np.ndarray: ...
    @property
    def nearest_references(self) -> list: ...
    @property
    def references(self) -> list: ...
    @property
    def scores(self) -> np.ndarray | None: ...
    @property
    def unlike_distances(self) -> np.ndarray | None: ...
    @property
    def nearest_unlike(self) -> list: ...
    @property
    def model(self) -> str: ...
    @property
    def metric(self) -> str: ...


class Collection(Protocol):
    """What `export_collection` reads of `lookalike.Collection`."""
    store: Any

    def vectors_model(self, model: str | None = None) -> str: ...

    def vectors(self, model: str | None = None) -> tuple[np.ndarray, np.ndarray]: ...


#: What `Collection.export` writes, and what a `Neighbors` result can be written as.
FORMATS = ("csv", "json", "parquet", "tab", "npz")
NEIGHBOR_FORMATS = ("csv", "json", "parquet", "tab")

#: File extensions that name a format when none is given.
EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet",
              ".tab": "tab", ".npz": "npz"}

#: Vector columns in CSV and .tab are FEATURE_PREFIX + index: f0, f1, ...
FEATURE_PREFIX = "f"

#: Orange's names for our catalogue fields (those of its Import Images widget).
_ORANGE_NAMES = {"name": "image name", "path": "image"}

#: About this many vector values are formatted per chunk (a 1280-d chunk is ~3,300 rows).
_CHUNK_VALUES = 1 << 22


@dataclass
class ExportReport:
    """What `Collection.export` wrote."""

    path: str
    format: str
    rows: int
    model: str | None          # None when written without vectors
    dim: int                   # vector length; 0 without vectors
    without_vector: int        # usable images left out because they have no `model` vector
    seconds: float


def resolve_format(path: str | os.PathLike | None, format: str | None,
                   allowed: Sequence[str] = FORMATS) -> str:
    """`format` checked against `allowed`, or guessed from the extension of `path`."""
    if format is None:
        ext = os.path.splitext(os.fspath(path or ""))[1].lower()
        format = EXTENSIONS.get(ext)
        if format is None or format not in allowed:
            raise LookalikeError(f"cannot tell the format of {os.fspath(path or '')!r} from its "
                                 f"extension; give a format, one of: {', '.join(allowed)}")
        return format
    name = str(format).lower()
    if name not in allowed:
        raise LookalikeError(f"unknown format {format!r}; use one of: {', '.join(allowed)}")
    return name


# -- columns ----------------------------------------------------------------------------------

@dataclass
class ExportColumn:
    key: str        # where the value is in a record
    name: str       # the column's name in the file
    kind: str       # "int", "float", "str" or "bool"


def extras_of(row: dict) -> dict[str, Any]:
    """Extra metadata of a catalogue row (columns a table source carried), as a dict.

    A row may hold them under "extras", as a dict or as a JSON object in text."""
    return extras_dict(row.get("extras"))


class _Extras:
    """The extra columns seen across rows: their order of appearance and a type for each."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def see(self, extras: dict[str, Any]) -> None:
        for key, value in extras.items():
            if value is None:
                self.kinds.setdefault(key, "none")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                  np.floating)):
                kind = "str"
            elif isinstance(value, (int, np.integer)):
                kind = "int"
            else:
                kind = "float"
            old = self.kinds.get(key, "none")
            if old == "none" or old == kind:
                self.kinds[key] = kind
            elif {old, kind} == {"int", "float"}:
                self.kinds[key] = "float"
            else:
                self.kinds[key] = "str"

    def columns(self, taken: set[str]) -> list[ExportColumn]:
        out = []
        for key, kind in self.kinds.items():
            name = unique_name(key, taken)
            taken.add(name)
            out.append(ExportColumn("extra:" + key, name, "str" if kind == "none" else kind))
        return out


def _value(record: dict, column: ExportColumn) -> Any:
    if column.key.startswith("extra:"):
        return record.get("extras", {}).get(column.key[len("extra:"):])
    return record.get(column.key)


def _arrow_array(values: list, kind: str):
    import pyarrow as pa

    if kind == "int":
        return pa.array([None if v is None else int(v) for v in values], pa.int64())
    if kind == "float":
        return pa.array([None if v is None or v != v else float(v) for v in values],
                        pa.float64())
    if kind == "bool":
        return pa.array([None if v is None else bool(v) for v in values], pa.bool_())
    return pa.array([None if v is None else v if isinstance(v, str) else _text(v)
                     for v in values], pa.string())


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def arrow_table(records: list[dict], columns: list[ExportColumn], matrix: np.ndarray | None = None,
                 vector: str | None = None):
    """An Arrow table of the records' columns, plus the matrix as one float32 column per
    dimension (`vector=None`) or as one fixed-size list column named `vector`."""
    import pyarrow as pa

    arrays = [_arrow_array([_value(r, c) for r in records], c.kind) for c in columns]
    names = [c.name for c in columns]
    if matrix is not None:
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        if vector is None:
            arrays += [pa.array(matrix[:, j]) for j in range(matrix.shape[1])]
            names += feature_names(matrix.shape[1])
        else:
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()),
                                                            matrix.shape[1]))
            names.append(vector)
    return pa.Table.from_arrays(arrays, names=names)


def feature_names(dim: int) -> list[str]:
    return [f"{FEATURE_PREFIX}{j}" for j in range(dim)]


def delimited_rows(table, delimiter: str) -> bytes:
    """Data rows (no header) as UTF-8 text: every string quoted with '"' (doubled inside),
    numbers bare in their shortest exact form (float32 stays float32), nulls empty."""
    import pyarrow.csv as pacsv

    if table.num_rows == 0:
        return b""
    out = io.BytesIO()
    pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, delimiter=delimiter))
    return out.getvalue()


def header_line(cells: Sequence[str], delimiter: str, quote_all: bool = False) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
               lineterminator="\n").writerow(cells)
    return buf.getvalue().encode("utf-8")


# -- Orange's .tab ------------------------------------------------------------------------------

@dataclass
class _TabColumn:
    column: ExportColumn
    type: str       # Orange's type row: "continuous", "discrete", "string"
    flags: str      # Orange's flag row cell


def orange_tab_columns(columns: list[ExportColumn], origin: str | None,
                 has_category: bool) -> list[_TabColumn]:
    out = []
    for c in columns:
        if c.key == "category":
            if has_category:
                out.append(_TabColumn(c, "discrete", "class"))
            continue
        if c.key == "path":
            attrs = {"type": "image"}
            if origin:
                attrs["origin"] = origin
            out.append(_TabColumn(c, "string", orange_flags(["meta"], attrs)))
            continue
        if c.key in _DISCRETE or c.kind == "bool":
            out.append(_TabColumn(c, "discrete", "meta"))
            continue
        out.append(_TabColumn(c, "continuous" if c.kind in ("int", "float") else "string", "meta"))
    return out


#: Columns that Orange should read as discrete (a cluster number names a group, it is not a
#: quantity), as its own clustering widgets output them.
_DISCRETE = {"cluster"}


def tab_header(tab_columns: list[_TabColumn], dim: int) -> bytes:
    # Every header cell is quoted: Orange guesses the quote character with csv.Sniffer on the
    # first lines, and many '"'-quoted cells keep it from guessing "'" from a file name.
    names = [t.column.name for t in tab_columns] + feature_names(dim)
    types = [t.type for t in tab_columns] + ["continuous"] * dim
    flags = [t.flags for t in tab_columns] + [""] * dim
    return b"".join(header_line(row, "\t", quote_all=True) for row in (names, types, flags))


def tab_records(records: list[dict], origin: str | None) -> list[dict]:
    return [{**r, "path": orange_image_value(r["path"], origin)} for r in records]


# -- Neighbors -----------------------------------------------------------------------------------

def neighbor_columns(records: list[dict]) -> list[ExportColumn]:
    fields = RECORD_FIELDS + tuple(f for f in FEEDBACK_FIELDS if records and f in records[0])
    columns = [ExportColumn(f, f, "int" if f in INT_FIELDS
                            else "float" if f in FLOAT_FIELDS else "str") for f in fields]
    extras = _Extras()
    for r in records:
        extras.see(r.get("extras", {}))
    return columns + extras.columns(set(fields))


def _neighbor_records(res: Neighbors) -> list[dict]:
    # to_records() gives the public dicts (extras flattened); the writers want them apart.
    out = []
    for i, (row, d, ref) in enumerate(zip(res.rows, res.distances, res.nearest_references)):
        out.append({"rank": i + 1, "path": row["path"], "distance": float(d),
                    "nearest_reference": ref, "name": row["name"],
                    "category": row["category"], "width": row["width"], "height": row["height"],
                    "size": row["size"], "id": row["id"], "root": row.get("root"),
                    "extras": extras_of(row)})
    if res.scores is not None:
        unlike = (res.unlike_distances if res.unlike_distances is not None
                  else [None] * len(out))
        for r, score, d, ref in zip(out, res.scores, unlike, res.nearest_unlike):
            r.update(score=float(score), unlike_distance=None if d is None else float(d),
                     nearest_unlike=ref)
    return out


def neighbor_records(res: Neighbors) -> list[dict[str, Any]]:
    """One flat dict per neighbour: RECORD_FIELDS, then the extra columns by their names."""
    records = _neighbor_records(res)
    columns = neighbor_columns(records)
    if any(c.key.startswith("extra:") for c in columns):
        return [{c.name: _json_value(_value(r, c)) for c in columns} for r in records]
    named = [(c.name, c.key) for c in columns]  # no extras: a third less time (web answers)
    return [{name: _json_value(r.get(key)) for name, key in named} for r in records]


def write_neighbors(res: Neighbors, format: str,
                    path: str | os.PathLike | None = None) -> str | None:
    """`res` as `format` text (path None) or into the file `path` (then None is returned)."""
    format = resolve_format(path, format, NEIGHBOR_FORMATS)
    if format == "parquet":
        if path is None:
            raise LookalikeError("Parquet is a binary format: give a file path to write it to")
        table = _neighbors_arrow(res)
        with atomic_write(path) as f:
            import pyarrow.parquet as pq

            pq.write_table(table, f)
        return None
    if format == "json":
        text = json.dumps(neighbor_records(res), indent=2, ensure_ascii=False)
        if path is None:
            return text
        data = (text + "\n").encode("utf-8")
    else:
        data = _neighbors_bytes(res, format)
    return _text_or_file(data, path)


def _text_or_file(data: bytes, path: str | os.PathLike | None) -> str | None:
    """`data` (UTF-8) as text when `path` is None, else written whole to the file `path`."""
    if path is None:
        return data.decode("utf-8")
    with atomic_write(path) as f:
        f.write(data)
    return None


def _neighbors_bytes(res: Neighbors, format: str) -> bytes:
    records = _neighbor_records(res)
    columns = neighbor_columns(records)
    if format == "csv":
        table = arrow_table(records, columns)
        return header_line([c.name for c in columns], ",") + delimited_rows(table, ",")
    # tab: Orange's Neighbors output is its input plus a "distance" meta; ours is Import
    # Images' columns (category as class, image name, image) plus distance and rank.
    origin = orange_origin([r["path"] for r in records], [r["root"] for r in records])
    has_category = any(r["category"] for r in records)
    order = ["category", "name", "path", "distance", "nearest_reference", "rank", "width",
             "height", "size", "id"]
    by_key = {c.key: c for c in columns}
    ordered = [by_key[k] for k in order] + [c for c in columns if c.key not in order]
    tab_columns = orange_tab_columns(orange_named(ordered), origin, has_category)
    table = arrow_table(tab_records(records, origin), [t.column for t in tab_columns])
    return tab_header(tab_columns, 0) + delimited_rows(table, "\t")


# -- duplicate groups --------------------------------------------------------------------------

DUPLICATE_FORMATS = ("json", "csv", "tab")


def _group_records(groups: Sequence[Any]) -> list[dict]:
    """One record per image of every group (`analysis.duplicates.DuplicateGroup`): its
    neighbour record (rank in the group, distance and nearest_reference: to the
    representative) with GROUP_FIELDS, and `collection` for images of another one."""
    out = []
    for g in groups:
        representative = g.rows[0]["path"]
        across = any("collection" in row for row in g.rows)  # ids of two collections may meet
        for rank, (row, d) in enumerate(zip(g.rows, g.distances), 1):
            out.append({"group": g.number, "group_size": len(g), "representative": g.ids[0],
                        "keep": rank == 1 if across else row["id"] == g.keep,
                        "rank": rank, "path": row["path"], "distance": float(d),
                        "nearest_reference": representative, "name": row["name"],
                        "category": row["category"], "width": row["width"],
                        "height": row["height"], "size": row["size"], "id": row["id"],
                        "root": row.get("root"), "collection": row.get("collection"),
                        "extras": extras_of(row)})
    return out


def _group_columns(records: list[dict]) -> list[ExportColumn]:
    columns = [ExportColumn(f, f, "int" if f in INT_FIELDS else "str") for f in GROUP_FIELDS]
    if any(r["collection"] for r in records):
        columns.append(ExportColumn("collection", "collection", "str"))
    return columns + neighbor_columns(records)


def duplicate_records(groups: Sequence[Any]) -> list[dict[str, Any]]:
    """One flat dict per image of every group: GROUP_FIELDS, RECORD_FIELDS, then extras."""
    records = _group_records(groups)
    columns = _group_columns(records)
    return [{c.name: _json_value(_value(r, c)) for c in columns} for r in records]


def write_duplicates(groups: Sequence[Any], format: str,
                     path: str | os.PathLike | None = None) -> str | None:
    """The groups as `format` text (path None) or into the file `path` (then None): json is a
    list of {"group": N, "images": [records]}, csv and tab one row per image."""
    format = resolve_format(path, format, DUPLICATE_FORMATS)
    records = duplicate_records(groups)
    if format == "json":
        listed: dict[int, list[dict]] = {}
        for r in records:
            listed.setdefault(r["group"], []).append(r)
        text = json.dumps([{"group": n, "images": images} for n, images in listed.items()],
                          indent=2, ensure_ascii=False) + "\n"
        data = text.encode("utf-8")
    else:
        raw = _group_records(groups)
        columns = _group_columns(raw)
        delimiter = "," if format == "csv" else "\t"
        for r in raw:
            r["keep"] = "true" if r["keep"] else "false"
        table = arrow_table(raw, columns)
        data = header_line([c.name for c in columns], delimiter) + delimited_rows(table,
                                                                                    delimiter)
    return _text_or_file(data, path)


# -- maps ----------------------------------------------------------------------------------------

MAP_FORMATS = ("csv", "json", "parquet", "tab")


def write_map(layout: Any, format: str, path: str | os.PathLike | None = None) -> str | None:
    """A map (`analysis.maps.MapLayout`) as `format` text (path None) or into the file `path`
    (then None): id, path, category, x, y per image. In Orange's .tab, x and y are the
    features (Scatter Plot shows them at once), category the class, image and id metas."""
    format = resolve_format(path, format, MAP_FORMATS)
    records = layout.to_records()
    columns = [ExportColumn("id", "id", "int"), ExportColumn("path", "path", "str"),
               ExportColumn("category", "category", "str")]
    columns += [ExportColumn(f, f, "float") for f in MAP_FIELDS]
    if format == "parquet":
        if path is None:
            raise LookalikeError("Parquet is a binary format: give a file path to write it to")
        import pyarrow.parquet as pq

        meta = {"model": layout.model, "method": layout.method, "fitted_on": layout.fitted_on}
        table = arrow_table(records, columns).replace_schema_metadata(
            {"lookalike": json.dumps(meta)})
        with atomic_write(path) as f:
            pq.write_table(table, f)
        return None
    if format == "json":
        data = (json.dumps(records, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    elif format == "csv":
        data = header_line([c.name for c in columns], ",") + delimited_rows(
            arrow_table(records, columns), ",")
    else:
        data = _map_tab(records, columns)
    return _text_or_file(data, path)


def _map_tab(records: list[dict], columns: list[ExportColumn]) -> bytes:
    origin = orange_origin([r["path"] for r in records], [None] * len(records))
    has_category = any(r["category"] for r in records)
    by_key = {c.key: c for c in columns}
    tab_columns = orange_tab_columns(
        orange_named([by_key["category"], by_key["path"], by_key["id"]]), origin, has_category)
    features = [by_key[f] for f in MAP_FIELDS]
    names = [t.column.name for t in tab_columns] + [c.name for c in features]
    types = [t.type for t in tab_columns] + ["continuous"] * len(features)
    flags = [t.flags for t in tab_columns] + [""] * len(features)
    header = b"".join(header_line(row, "\t", quote_all=True) for row in (names, types, flags))
    table = arrow_table([{**r, "root": None} for r in tab_records(records, origin)],
                         [t.column for t in tab_columns] + features)
    return header + delimited_rows(table, "\t")


def orange_named(columns: list[ExportColumn]) -> list[ExportColumn]:
    taken: set[str] = set()
    out = []
    for c in columns:
        wanted = c.name if c.key.startswith("extra:") else _ORANGE_NAMES.get(c.key, c.name)
        name = unique_name(wanted, taken)
        taken.add(name)
        out.append(ExportColumn(c.key, name, c.kind))
    return out


def _neighbors_arrow(res: Neighbors):
    records = _neighbor_records(res)
    table = arrow_table(records, neighbor_columns(records))
    meta = {"model": res.model, "metric": res.metric, "references": list(res.references)}
    return table.replace_schema_metadata({"lookalike": json.dumps(meta)})


def neighbors_dataframe(res: Neighbors):
    """Every column of the result, nearest first, as a pandas DataFrame."""
    import pandas as pd

    records = _neighbor_records(res)
    columns = neighbor_columns(records)
    data: dict[str, Any] = {}
    for c in columns:
        values = [_value(r, c) for r in records]
        if c.kind == "int":
            data[c.name] = pd.array(values, dtype="Int64" if None in values else "int64")
        elif c.kind == "float":
            data[c.name] = pd.array([np.nan if v is None else float(v) for v in values],
                                    dtype="float64")
        else:
            data[c.name] = [None if v is None else v if isinstance(v, str) else _text(v)
                            for v in values]
    return pd.DataFrame(data, columns=[c.name for c in columns])


# -- whole collections -----------------------------------------------------------------------------

class Positions(Protocol):
    """What an export reads of a map (`analysis.maps.MapLayout`): image ids and positions."""
    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray


def export_collection(col: Collection, path: str | os.PathLike, format: str | None = None,
                      model: str | None = None, vectors: bool = True, *, progress: bool = False,
                      chunk_rows: int | None = None,
                      positions: Positions | None = None) -> ExportReport:
    """Write every usable image of `col` (catalogue columns, its map's x and y when
    `positions` are given, extras and, unless `vectors` is False, the vector of `model`) to
    `path`. See `Collection.export`."""
    start = time.perf_counter()
    format = resolve_format(path, format, FORMATS)
    if format == "npz" and not vectors:
        raise LookalikeError("an .npz export holds the vectors; drop --no-vectors or choose "
                             "another format")
    store = col.store
    usable = store.count_images(usable_only=True)
    matrix = None
    if vectors:
        model = col.vectors_model(model)
        ids, matrix = col.vectors(model)
        dim = int(matrix.shape[1]) if len(ids) else 0
    else:
        model, dim = None, 0
        ids = store.usable_ids()
    chunk = chunk_rows or max(256, _CHUNK_VALUES // max(dim, 1))

    survey = _survey(store, ids, chunk, need_paths=format == "tab")
    columns = [ExportColumn(f, f, "int" if f in INT_FIELDS else "str") for f in CATALOGUE_FIELDS]
    if positions is not None:
        columns += [ExportColumn(f, f, "float") for f in MAP_FIELDS]
    computed = _computed_columns(col, model, ids)
    columns += [ExportColumn(name, name, _COMPUTED_KINDS.get(name, "bool")) for name in computed]
    columns += survey.extras.columns({c.name for c in columns} | {"vector"}
                                     | set(feature_names(dim)))

    from ..progress import progress_bar

    bar = progress_bar(len(ids), progress, f"export {format}", leave=False)
    rows = 0
    try:
        with atomic_write(path) as f:
            writer = _WRITERS[format](f, columns, model, dim, survey)
            for records, block in _chunks(store, ids, matrix, chunk, computed):
                if positions is not None:
                    _add_positions(records, positions)
                writer.write(records, block)
                rows += len(records)
                bar.update(len(records))
            writer.close()
    finally:
        bar.close()
    return ExportReport(path=os.fspath(path), format=format, rows=rows, model=model, dim=dim,
                        without_vector=usable - len(ids) if vectors else 0,
                        seconds=time.perf_counter() - start)


def _add_positions(records: list[dict], positions: Positions) -> None:
    """Each record's x and y on the map; None for an image the map does not hold."""
    wanted = np.asarray([r["id"] for r in records], np.int64)
    at = np.minimum(np.searchsorted(positions.ids, wanted), max(len(positions.ids) - 1, 0))
    found = (len(positions.ids) > 0) & (positions.ids[at] == wanted)
    for r, i, ok in zip(records, at.tolist(), found.tolist()):
        r["x"] = float(positions.x[i]) if ok else None
        r["y"] = float(positions.y[i]) if ok else None


@dataclass
class _Survey:
    extras: _Extras
    origin: str | None
    has_category: bool


def _survey(store, ids: np.ndarray, chunk: int, need_paths: bool) -> _Survey:
    """One pass over the catalogue for what a header needs: extra columns, the .tab origin."""
    extras = _Extras()
    paths: list[str] = []
    roots: list[str | None] = []
    has_category = False
    if not need_paths and not store.has_extras():
        return _Survey(extras, None, True)
    for start in range(0, len(ids), chunk):
        for row in store.rows(ids[start:start + chunk]):
            extras.see(extras_of(row))
            has_category = has_category or bool(row["category"])
            if need_paths:
                paths.append(row["path"])
                roots.append(row.get("root"))
    origin = orange_origin(paths, roots) if need_paths else None
    return _Survey(extras, origin, has_category)


_COMPUTED_KINDS = {"cluster": "int", "typicality": "float", "outlier": "float"}


def _computed_columns(col: Collection, model: str | None, ids: np.ndarray
                      ) -> dict[str, np.ndarray]:
    """Cluster, typicality, outlier (when `analyze` stored them for the collection as it is)
    and the quality flags (when measured), in the order of `ids`."""
    from ..analysis.analyze import stored_columns

    if model is None:
        try:
            model = col.vectors_model()
        except LookalikeError:  # no vectors at all
            model = None
    return stored_columns(col.store, model, ids)


def _chunks(store, ids: np.ndarray, matrix: np.ndarray | None, chunk: int,
            computed: dict[str, np.ndarray] | None = None
            ) -> Iterator[tuple[list[dict], np.ndarray | None]]:
    for start in range(0, len(ids), chunk):
        wanted = ids[start:start + chunk]
        rows = store.rows(wanted)
        block = None if matrix is None else matrix[start:start + chunk]
        if len(rows) != len(wanted):  # rows removed while exporting: keep the two aligned
            present = np.isin(wanted, [r["id"] for r in rows])
            block = None if block is None else block[present]
        records = [{"id": r["id"], "path": r["path"], "name": r["name"], "category": r["category"],
                    "width": r["width"], "height": r["height"], "size": r["size"],
                    "root": r.get("root"), "extras": extras_of(r)} for r in rows]
        if computed:
            where = np.searchsorted(ids, np.asarray([r["id"] for r in rows], np.int64))
            for name, values in computed.items():
                for record, n in zip(records, where):
                    value = values[n].item()
                    record[name] = None if value != value else value  # NaN: not known
        yield records, block


class _Writer(Protocol):
    """One export format, written a block of rows at a time."""
    def write(self, records: list[dict], block: np.ndarray | None) -> None: ...

    def close(self) -> None: ...


class _CSVWriter:
    delimiter = ","

    def __init__(self, f, columns: list[ExportColumn], model, dim: int, survey: _Survey):
        self.f, self.columns, self.dim = f, columns, dim
        f.write(self._header())

    def _header(self) -> bytes:
        return header_line([c.name for c in self.columns] + feature_names(self.dim), ",")

    def _records(self, records: list[dict]) -> list[dict]:
        return records

    def write(self, records: list[dict], block: np.ndarray | None) -> None:
        self.f.write(delimited_rows(
            arrow_table(self._records(records), self.columns, block), self.delimiter))

    def close(self) -> None:
        pass


class _TabWriter(_CSVWriter):
    delimiter = "\t"

    def __init__(self, f, columns, model, dim, survey: _Survey):
        self.origin = survey.origin
        # Import Images' column order: category (class), image name, image, then the rest.
        order = ["category", "name", "path"]
        by_key = {c.key: c for c in columns}
        ordered = [by_key[k] for k in order] + [c for c in columns if c.key not in order]
        self.tab_columns = orange_tab_columns(orange_named(ordered), survey.origin,
                                              survey.has_category)
        super().__init__(f, [t.column for t in self.tab_columns], model, dim, survey)

    def _header(self) -> bytes:
        return tab_header(self.tab_columns, self.dim)

    def _records(self, records):
        return tab_records(records, self.origin)


class _JSONWriter:
    def __init__(self, f, columns, model, dim, survey):
        self.f, self.columns, self.first = f, columns, True
        f.write(b"[")

    def write(self, records: list[dict], block: np.ndarray | None) -> None:
        vectors = _json_vectors(block) if block is not None else None
        lines = []
        for i, r in enumerate(records):
            obj = {c.name: _json_value(_value(r, c)) for c in self.columns}
            text = json.dumps(obj, ensure_ascii=False)
            if vectors is not None:
                text = f'{text[:-1]}, "vector": [{vectors[i]}]}}'
            lines.append(text)
        if lines:
            self.f.write((("\n" if self.first else ",\n") + ",\n".join(lines)).encode("utf-8"))
            self.first = False

    def close(self) -> None:
        self.f.write(b"\n]\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_vectors(block: np.ndarray) -> list[str]:
    """Each row as comma-separated JSON numbers, shortest exact float32 form (0.1, not
    0.10000000149011612); non-finite values, which JSON cannot hold, become null."""
    if not len(block):
        return []
    if block.shape[1] == 0:
        return [""] * len(block)
    if not np.isfinite(block).all():
        return [", ".join("null" if not np.isfinite(v) else repr(float(v)) for v in row)
                for row in block]
    import pyarrow as pa

    table = pa.Table.from_arrays([pa.array(np.ascontiguousarray(block[:, j]))
                                  for j in range(block.shape[1])],
                                 names=feature_names(block.shape[1]))
    return delimited_rows(table, ",").decode("ascii").replace(",", ", ").splitlines()


class _ParquetWriter:
    def __init__(self, f, columns, model, dim, survey):
        self.f, self.columns, self.model, self.dim = f, columns, model, dim
        self.writer = None

    def write(self, records: list[dict], block: np.ndarray | None) -> None:
        import pyarrow.parquet as pq

        table = arrow_table(records, self.columns, block, vector="vector")
        if self.writer is None:
            meta = {"model": self.model, "dim": self.dim}
            table = table.replace_schema_metadata({"lookalike": json.dumps(meta)})
            self.writer = pq.ParquetWriter(self.f, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is None:  # no rows: still a valid file with the columns
            self.write([], None if self.model is None else np.zeros((0, self.dim), np.float32))
        assert self.writer is not None  # write() opened it
        self.writer.close()


class _NPZWriter:
    def __init__(self, f, columns, model, dim, survey):
        self.f, self.model, self.dim = f, model, dim
        self.ids: list[np.ndarray] = []
        self.paths: list[str] = []
        self.blocks: list[np.ndarray] = []

    def write(self, records: list[dict], block: np.ndarray | None) -> None:
        self.ids.append(np.asarray([r["id"] for r in records], np.int64))
        self.paths.extend(r["path"] for r in records)
        self.blocks.append(np.asarray(block, np.float32))

    def close(self) -> None:
        ids = np.concatenate(self.ids) if self.ids else np.zeros(0, np.int64)
        vectors = (np.concatenate(self.blocks) if self.blocks
                   else np.zeros((0, self.dim), np.float32))
        paths = np.asarray(self.paths, dtype=str) if self.paths else np.zeros(0, dtype="<U1")
        np.savez(self.f, ids=ids, vectors=vectors, paths=paths, model=np.asarray(self.model))


_WRITERS: dict[str, Callable[..., _Writer]] = {
    "csv": _CSVWriter, "tab": _TabWriter, "json": _JSONWriter, "parquet": _ParquetWriter,
    "npz": _NPZWriter}


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """`fileio.atomic_file` for a file the user named: a folder, a missing folder or one that
    cannot be written to is a LookalikeError that says which."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise LookalikeError(f"{path}: is a folder; give a file name to write to")
    opened = False
    try:
        with atomic_file(path) as f:
            opened = True
            yield f
    except FileNotFoundError:
        if opened:
            raise
        raise LookalikeError(f"{path}: the folder {folder} does not exist") from None
    except OSError as exc:
        if opened:
            raise
        raise LookalikeError(f"{path}: cannot write there ({exc.strerror})") from None


__all__ = ["FORMATS", "MAP_FORMATS", "NEIGHBOR_FORMATS", "ExportColumn", "ExportReport",
           "arrow_table", "atomic_write", "delimited_rows", "export_collection", "extras_of",
           "feature_names", "header_line", "neighbor_records", "neighbors_dataframe",
           "orange_named", "orange_tab_columns", "resolve_format", "tab_header", "tab_records",
           "write_map", "write_neighbors"]
