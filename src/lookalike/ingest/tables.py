"""Collections listed in a table: one row per image, named by a path or URL in one column.

CSV, TSV, Excel (.xlsx), Parquet and Orange's .tab are read. Headers are read as Orange reads
them: three rows (names, types, flags with `key=value` attributes such as `type=image` and
`origin=FOLDER`) when the second and third rows look like types and flags, else one row of
names (optionally prefixed Orange-style, `mS#image`). The image column is the one given, else
the first marked `type=image`, else the one whose values look most like image paths or URLs.
Every other column is kept with each image as metadata ("extras").
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from ..locators import is_data_url, is_url, url_name, url_scheme
from .folders import (
    IMAGE_SUFFIXES,
    ImageFile,
    RemoteImage,
    SourceError,
    Unreadable,
    _record,
    display_path,
)
from .object_stores import stat_object

#: Extensions read as tables, with their kind.
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tab", ".xlsx": "xlsx",
                  ".parquet": "parquet", ".pq": "parquet"}

#: Values Orange reads as missing.
MISSING = frozenset({"", "?", ".", "~", "NA", "nan", "NaN", "N/A"})

_TYPES = {"c": "continuous", "continuous": "continuous", "d": "discrete", "discrete": "discrete",
          "s": "string", "string": "string", "text": "string", "t": "time", "time": "time"}
_FLAG_WORDS = {"class": "class", "c": "class", "meta": "meta", "m": "meta", "ignore": "ignore",
               "i": "ignore", "weight": "weight", "w": "weight"}
_DISCRETE_LIST = re.compile(r"^\s*\S+(\s\S+)+\s*$")
_ONE_ROW_PREFIX = re.compile(r"^([cmiw]?[CDST]?|[CDST][cmiw])#(.*)$", re.S)

#: A value is taken for an image when it ends so (query and fragment of a URL aside).
_IMAGE_END = re.compile(r"\.(" + "|".join(s[1:] for s in sorted(IMAGE_SUFFIXES)) + r")$",
                        re.IGNORECASE)


class TableError(SourceError):
    """A table that cannot be read as a list of images."""


@dataclass
class TableOptions:
    """How to read tables given to `index`: which column holds the images (default: chosen
    as Orange would), which one the category, and the folder relative paths start from
    (default: the table's `origin` attribute, else the table's folder)."""

    image_column: str | None = None
    category_column: str | None = None
    base_dir: str | os.PathLike | None = None

    def given(self) -> bool:
        return any(v is not None for v in (self.image_column, self.category_column, self.base_dir))


@dataclass
class Column:
    name: str
    values: list            # one value per data row; None where missing
    type: str | None = None  # Orange's declared type ("continuous", ...), None if not declared
    flags: set[str] = field(default_factory=set)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Table:
    path: str
    columns: list[Column]

    @property
    def rows(self) -> int:
        return len(self.columns[0].values) if self.columns else 0

    def column(self, name: str, option: str) -> Column:
        """The column called `name` (exactly, else the only one whose name differs only in
        case); TableError naming `option` if there is none."""
        exact = [c for c in self.columns if c.name == name]
        if exact:
            return exact[0]
        folded = [c for c in self.columns if c.name.casefold() == name.casefold()]
        if len(folded) == 1:
            return folded[0]
        names = ", ".join(repr(c.name) for c in self.columns) or "none"
        raise TableError(f"{self.path}: no column named {name!r} for {option} (its columns: "
                         f"{names})")


@dataclass
class TableInfo:
    """What reading a table found and chose, to tell the user."""

    path: str
    rows: int
    image_column: str
    chosen_because: str | None       # None when the user named the column
    category_column: str | None
    category_because: str | None
    extra_columns: list[str]
    base_dir: str
    images: int = 0                  # distinct images listed
    urls: int = 0                    # of which named by URL
    without_image: int = 0           # rows with an empty image cell
    duplicates: int = 0              # rows naming an image listed on an earlier row


def is_table(path: str | os.PathLike) -> bool:
    """Whether `path` is a file that `index` reads as a table (by its extension)."""
    return (os.path.splitext(os.fspath(path))[1].lower() in TABLE_SUFFIXES
            and os.path.isfile(path))


# -- reading ------------------------------------------------------------------------------------

def read_table(path: str | os.PathLike) -> Table:
    """The columns of a table file, values typed (numbers, text, None for missing)."""
    shown = display_path(path)
    kind = TABLE_SUFFIXES.get(os.path.splitext(os.fspath(path))[1].lower())
    if kind is None:
        raise TableError(f"{shown}: not a table file (known: {', '.join(TABLE_SUFFIXES)})")
    try:
        if kind == "parquet":
            return _from_frame(shown, _read_parquet(path))
        if kind == "xlsx":
            cells = _read_xlsx(path)
        else:
            cells = _read_delimited(path, shown, "\t" if kind in ("tsv", "tab") else None)
    except TableError:
        raise
    except OSError as exc:
        raise TableError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a malformed file: the readers raise many types
        raise TableError(f"{shown}: not a readable {kind} file ({type(exc).__name__}: "
                         f"{str(exc).strip() or 'no details'})") from None
    return _from_cells(shown, cells)


def _read_delimited(path, shown: str, delimiter: str | None) -> list[list]:
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(f"{shown}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if delimiter is None:
        # Like Orange: sniff the first lines, among the delimiters a spreadsheet may use.
        sample = "".join(text.splitlines(keepends=True)[:10])
        try:
            delimiter = csv.Sniffer().sniff(sample, ",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    # A data: URL holds a whole image in one cell: far more than csv's 128 KB default.
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    return [row for row in reader if any(cell.strip() for cell in row)]


def _read_xlsx(path) -> list[list]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.active
        if sheet is None:  # read_table reports it as an unreadable file
            raise ValueError("the workbook has no active sheet")
        rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    rows = [r for r in rows if any(c is not None and str(c).strip() for c in r)]
    # openpyxl pads rows to the sheet's widest; drop columns empty everywhere at the right
    width = max((max((i + 1 for i, c in enumerate(r) if c is not None), default=0)
                 for r in rows), default=0)
    return [r[:width] for r in rows]


def _read_parquet(path):
    import pandas as pd

    return pd.read_parquet(path)


def _from_frame(shown: str, frame) -> Table:
    names = _unique_names([str(c) for c in frame.columns])
    columns = []
    for name, series in zip(names, (frame.iloc[:, i] for i in range(frame.shape[1]))):
        columns.append(Column(name, [_plain(v) for v in series.tolist()]))
    return Table(shown, columns)


def _from_cells(shown: str, rows: list[list]) -> Table:
    if not rows:
        raise TableError(f"{shown}: the table is empty")
    width = max(len(r) for r in rows)
    rows = [list(r) + [None] * (width - len(r)) for r in rows]
    header = [_cell_text(c) for c in rows[0]]
    types: list[str] = [""] * width
    flags: list[str] = [""] * width
    if len(rows) >= 3 and _are_types(rows[1]) and _are_flags(rows[2]):
        types = [_cell_text(c) for c in rows[1]]
        flags = [_cell_text(c) for c in rows[2]]
        data = rows[3:]
    elif all(_is_number(c) for c in rows[0]):
        header, data = [""] * width, rows  # no header row: Orange names them itself
    else:
        data = rows[1:]
        for i, name in enumerate(header):
            m = _ONE_ROW_PREFIX.match(name)
            if m and m.group(1):
                prefix, header[i] = m.group(1), m.group(2)
                types[i] = "".join(ch for ch in prefix if ch.isupper()).lower()
                flags[i] = " ".join(ch for ch in prefix if ch.islower())
    names = _unique_names([n.strip() for n in header])
    columns = []
    for i, name in enumerate(names):
        parsed = _parse_flags(flags[i])
        if "ignore" in parsed[0]:
            continue
        declared = _TYPES.get(types[i].strip()) or ("discrete" if _DISCRETE_LIST.match(types[i])
                                                    else None)
        values = _typed([r[i] for r in data], declared)
        columns.append(Column(name, values, declared, parsed[0], parsed[1]))
    return Table(shown, columns)


def _cell_text(cell) -> str:
    if cell is None or isinstance(cell, float) and math.isnan(cell):
        return ""
    return cell if isinstance(cell, str) else str(_plain(cell))


def _is_number(cell) -> bool:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return True
    try:
        float(str(cell))
    except ValueError:
        return False
    return True


def _are_types(row: list) -> bool:
    return all(_cell_text(c).strip() in _TYPES or not _cell_text(c).strip()
               or _DISCRETE_LIST.match(_cell_text(c)) for c in row) \
        and any(_cell_text(c).strip() for c in row)


def _are_flags(row: list) -> bool:
    for c in row:
        text = _cell_text(c)
        parts = [p for p in re.split(r"(?<!\\) ", text.strip()) if p]
        if not all(p in _FLAG_WORDS or "=" in p[1:] for p in parts):
            return False
    return True


def _parse_flags(cell: str) -> tuple[set[str], dict[str, Any]]:
    """Flags and attributes of a third-header-row cell, as Orange reads them."""
    from ..formats.orange import parse_orange_flags

    parsed = parse_orange_flags(cell) if cell.strip() else (set(), {})
    if parsed is None:  # Orange would warn and skip what it cannot read; keep what we can
        parsed = (set(), {})
        for part in re.split(r"(?<!\\) ", cell):
            part = part.replace("\\ ", " ").strip()
            if "=" in part[1:]:
                key, value = part.split("=", 1)
                parsed[1][key] = value
            elif part in _FLAG_WORDS:
                parsed[0].add(part)
    return {_FLAG_WORDS.get(f, f) for f in parsed[0]}, parsed[1]


def _typed(cells: list, declared: str | None) -> list:
    """A column's values: text cells become numbers where the column is (or is declared)
    numeric, missing values None; typed cells (from Excel) keep their type."""
    values = [None if c is None or isinstance(c, float) and math.isnan(c) else c for c in cells]
    values = [c.strip() if isinstance(c, str) else c for c in values]
    values = [None if isinstance(c, str) and c in MISSING else c for c in values]
    if declared in ("discrete", "string", "time"):
        return [None if c is None else _cell_text(c) for c in values]
    present = [c for c in values if c is not None]
    if present and all(isinstance(c, bool) for c in present):
        return values
    numbers = [_number(c) for c in present]
    if present and all(n is not None for n in numbers):
        it = iter(numbers)
        return [None if c is None else next(it) for c in values]
    if all(isinstance(c, str) for c in present):
        if present and all(c.lower() in ("true", "false") for c in present):
            return [None if c is None else c.lower() == "true" for c in values]
        return values
    return [None if c is None else _cell_text(c) for c in values]  # mixed: all as text


def _number(value) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value
    if not isinstance(value, str):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _plain(value) -> Any:
    """A value as JSON holds it: numbers, text, booleans, lists, objects or None."""
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # NumPy scalars
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else str(value)
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [_plain(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    import pandas as pd

    try:
        if pd.isna(value):  # NaT, pd.NA
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)) or hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _unique_names(names: list[str]) -> list[str]:
    # Orange's rule for clashing names (formats.orange.unique_name); unnamed columns "Feature N".
    from ..formats.orange import unique_name

    out: list[str] = []
    taken: set[str] = set()
    unnamed = 0
    for name in names:
        if not name:
            unnamed += 1
            name = f"Feature {unnamed}"
        candidate = unique_name(name, taken)
        taken.add(candidate)
        out.append(candidate)
    return out


# -- which column, which folder ---------------------------------------------------------------

def looks_like_image(value: Any) -> bool:
    """Whether a cell names an image: an http(s) or data:image URL, or a path ending in an
    image extension."""
    if not isinstance(value, str) or not value.strip():
        return False
    text = value.strip()
    if text[:11].lower() == "data:image/":
        return True
    if is_url(text) and not is_data_url(text):
        return True
    path = urlsplit(text).path if url_scheme(text) else text
    return bool(_IMAGE_END.search(path))


def choose_image_column(table: Table) -> tuple[Column, str]:
    """The column Orange would take for the images, and why."""
    marked = [c for c in table.columns if c.attributes.get("type") == "image"]
    if marked:
        return marked[0], "marked type=image"
    best, best_score = None, (0.0, 0.0)
    for c in table.columns:
        present = [v for v in c.values if v is not None]
        if not present:
            continue
        share = sum(map(looks_like_image, present)) / len(present)
        # Between two such columns (a web page's URL beside its picture's), the one whose
        # values end like image files.
        named = sum(isinstance(v, str) and bool(_IMAGE_END.search(urlsplit(v).path))
                    for v in present) / len(present)
        if (share, named) > best_score:
            best, best_score = c, (share, named)
    best_share = best_score[0]
    if best is None or best_share < 0.5:
        names = ", ".join(repr(c.name) for c in table.columns) or "none"
        raise TableError(f"{table.path}: no column looks like image paths or URLs; name the "
                         f"one that holds them with --image-column (its columns: {names})")
    return best, f"{best_share:.0%} of its values look like image files or URLs"


def resolve_origin(origin: str, table_path: str) -> str:
    """The folder an Orange `origin` attribute points to, found again when the table moved
    (as Orange's File widget does): the origin itself if it exists, else a folder of the same
    name beside the table or one level up, else that folder holding all the files."""
    table_dir = os.path.dirname(os.path.abspath(table_path))
    if not os.path.isabs(origin):
        origin = os.path.join(table_dir, origin)
    if os.path.isdir(origin):
        return origin
    name = os.path.basename(os.path.normpath(origin))
    for lookup in (table_dir, os.path.dirname(table_dir)):
        if name and os.path.isdir(os.path.join(lookup, name)):
            return os.path.join(lookup, name)
    return origin


# -- rows to images -----------------------------------------------------------------------------

def table_images(path: str | os.PathLike, options: TableOptions | None = None
                 ) -> tuple[TableInfo, list[ImageFile | RemoteImage | Unreadable]]:
    """Read a table and list the images its rows name, each carrying the row's other columns."""
    options = options or TableOptions()
    table_path = os.path.abspath(os.fspath(path))
    table = read_table(table_path)
    if not table.columns:
        raise TableError(f"{table.path}: the table has no columns")
    if options.image_column is not None:
        image_col, why = table.column(options.image_column, "--image-column"), None
    else:
        image_col, why = choose_image_column(table)
    category_col, category_why = None, None
    if options.category_column is not None:
        category_col = table.column(options.category_column, "--category-column")
    else:
        classes = [c for c in table.columns if "class" in c.flags and c is not image_col]
        if classes:
            category_col, category_why = classes[0], "the class column"
    if category_col is image_col:
        raise TableError(f"{table.path}: column {image_col.name!r} cannot be both the images "
                         "and the category")
    if options.base_dir is not None:
        base = os.path.abspath(os.fspath(options.base_dir))
        if not os.path.isdir(base):
            raise TableError(f"{display_path(base)}: --base-dir is not a folder")
    elif isinstance(image_col.attributes.get("origin"), str) and image_col.attributes["origin"]:
        base = resolve_origin(image_col.attributes["origin"], table_path)
    else:
        base = os.path.dirname(table_path)
    extra_cols = [c for c in table.columns if c is not image_col and c is not category_col]
    info = TableInfo(display_path(table_path), table.rows, image_col.name, why,
                     category_col.name if category_col else None, category_why,
                     [c.name for c in extra_cols], display_path(base))

    root = info.path
    items: list[ImageFile | RemoteImage | Unreadable] = []
    seen: set[bytes] = set()
    for n in range(table.rows):
        value = image_col.values[n]
        text = "" if value is None else _cell_text(value).strip()
        if not text:
            info.without_image += 1
            continue
        category = None
        if category_col is not None and category_col.values[n] is not None:
            category = _category_text(category_col.values[n])
        extras = json.dumps({c.name: c.values[n] for c in extra_cols}, ensure_ascii=False,
                            allow_nan=False)
        item = _image_of(text, base, root, category, extras, n + 1)
        if item.locator in seen:
            info.duplicates += 1
            continue
        seen.add(item.locator)
        items.append(item)
        info.images += 1
        info.urls += isinstance(item, RemoteImage)
    return info, items


def _category_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _cell_text(value)


def _image_of(text: str, base: str, root: str, category: str | None, extras: str,
              row: int) -> ImageFile | RemoteImage | Unreadable:
    if is_url(text):
        name = f"row {row}" if is_data_url(text) else url_name(text)
        return RemoteImage(text, text.encode("utf-8"), root, name, category, extras)
    scheme = url_scheme(text)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme is not None:  # an object store's URL: its facts asked of the store
        record = stat_object(text, root, category)
        return record if isinstance(record, Unreadable) else replace(record, extras=extras)
    path = os.path.normpath(os.path.join(base, os.path.expanduser(text)))
    if not os.path.lexists(path):
        return Unreadable(display_path(path), os.fsencode(path), root,
                          "no such file (named in the table)")
    record = _record(path, root, category)
    if isinstance(record, Unreadable):
        return record
    return replace(record, root=root, extras=extras)


__all__ = ["TABLE_SUFFIXES", "TableError", "TableOptions", "TableInfo", "Table", "Column",
           "is_table", "read_table", "table_images", "choose_image_column", "looks_like_image",
           "resolve_origin"]
