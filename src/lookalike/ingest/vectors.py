"""Vectors computed elsewhere (on a GPU machine, by the user's own pipeline, by `lookalike
export`): read from a file and checked, so that `Collection.add_vectors` can store them as a
model's vectors without reading a single image.

Files: Parquet and JSON with a list column (`vector`, as `export` writes it) or numbered
numeric columns; CSV, TSV and Orange's .tab with numbered columns (`f0` ... `f{d-1}`); `.npz`
with the arrays `paths` and `vectors` (and `model`). Images are named by a path (relative ones
start at the file's folder) or an http(s) URL.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import LookalikeError
from ..formats.records import CATALOGUE_FIELDS, MAP_FIELDS

#: Files `lookalike import` reads, by extension.
VECTOR_FILE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".json": "json", ".npz": "npz",
                        ".csv": "table", ".tsv": "table", ".tab": "table"}

#: Column names taken for the images' paths and for a list column of vectors, in this order.
PATH_COLUMNS = ("path", "image", "file", "filename", "url", "locator")
VECTOR_COLUMNS = ("vector", "embedding", "vectors", "embeddings", "features")

#: Columns of a lookalike export that describe the image or the export itself, not kept as
#: extras on import (the analyses and the map are recomputed).
_EXPORT_COLUMNS = frozenset({*CATALOGUE_FIELDS, *MAP_FIELDS, "cluster", "typicality", "outlier",
                             "blurry", "dark", "bright", "low_information", "greyscale",
                             "odd_size", "odd_aspect", "image name"})

#: A model name of the user's own: it names files beside the database.
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


class VectorFileError(LookalikeError):
    """A vector file that cannot be imported; the message names the file and what to do."""


@dataclass
class ImportedVectors:
    """Vectors read from a file, one per image, checked: no missing or repeated path, every
    vector of the same length, every value finite."""

    source: str
    paths: list[str]
    vectors: np.ndarray                       # float32 (n, d)
    model: str | None = None                  # the model the file says made them (npz, parquet)
    categories: list[str | None] | None = None
    extras: list[dict[str, Any]] | None = None
    columns: dict[str, str] = field(default_factory=dict)  # role -> column taken, to tell
    base_dir: str | None = None               # where relative paths start (a .tab's origin)


def read_vector_file(path: str | os.PathLike, path_column: str | None = None,
                     vector_column: str | None = None) -> ImportedVectors:
    """The images and vectors of a file (see the module); VectorFileError if it cannot be
    used. `vector_column`: a list column, or the prefix of numbered columns (`f` for f0, f1...)."""
    shown = os.fspath(path)
    kind = VECTOR_FILE_SUFFIXES.get(os.path.splitext(shown)[1].lower())
    if kind is None:
        raise VectorFileError(f"{shown}: not a vector file (known: "
                              f"{', '.join(VECTOR_FILE_SUFFIXES)})")
    if not os.path.isfile(path):
        raise VectorFileError(f"{shown}: no such file")
    if kind == "npz":
        return _from_npz(shown)
    columns, model, origins = _read_columns(shown, kind)
    found = _from_columns(shown, columns, model, path_column, vector_column)
    origin = origins.get(found.columns["path"])
    if origin:
        from .tables import resolve_origin

        found.base_dir = resolve_origin(origin, shown)
    return found


def _read_columns(shown: str, kind: str
                  ) -> tuple[dict[str, list], str | None, dict[str, str]]:
    """Every column of a parquet, JSON or delimited file as lists, the model named in a
    lookalike parquet's metadata, and the `origin` of columns of a .tab that have one."""
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(shown)
            meta = (table.schema.metadata or {}).get(b"lookalike")
            model = json.loads(meta).get("model") if meta else None
            return ({name: table.column(name).to_pylist() for name in table.column_names},
                    model, {})
        if kind == "json":
            with open(shown, encoding="utf-8") as fh:
                records = json.load(fh)
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise VectorFileError(f"{shown}: not a JSON list of records (objects), as "
                                      "`lookalike export --format json` writes")
            names = list(dict.fromkeys(k for r in records for k in r))
            return {n: [r.get(n) for r in records] for n in names}, None, {}
        from .tables import read_table

        table = read_table(shown)
        origins = {c.name: c.attributes["origin"] for c in table.columns
                   if isinstance(c.attributes.get("origin"), str)}
        return {c.name: c.values for c in table.columns}, None, origins
    except VectorFileError:
        raise
    except LookalikeError as exc:
        raise VectorFileError(str(exc)) from None
    except OSError as exc:
        raise VectorFileError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # a malformed file: the readers raise many types
        raise VectorFileError(f"{shown}: not a readable {kind} file ({type(exc).__name__}: "
                              f"{str(exc).strip() or 'no details'})") from None


def _from_npz(shown: str) -> ImportedVectors:
    try:
        with np.load(shown, allow_pickle=False) as npz:
            names = set(npz.files)
            missing = [n for n in ("paths", "vectors") if n not in names]
            if missing:
                raise VectorFileError(f"{shown}: no array {' or '.join(map(repr, missing))}; an "
                                      "npz to import holds `paths` (one per row) and `vectors` "
                                      "(rows x dimensions) (its arrays: "
                                      f"{', '.join(sorted(names))})")
            paths, vectors = npz["paths"], npz["vectors"]
            model = str(npz["model"]) if "model" in names and npz["model"].ndim == 0 else None
    except VectorFileError:
        raise
    except Exception as exc:  # not a zip, a pickled array, ...
        raise VectorFileError(f"{shown}: not a readable npz file ({type(exc).__name__}: "
                              f"{str(exc).strip() or 'no details'})") from None
    if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
        raise VectorFileError(f"{shown}: `vectors` must be a 2-D array of numbers, not "
                              f"{vectors.dtype} of shape {vectors.shape}")
    if paths.ndim != 1 or len(paths) != len(vectors):
        raise VectorFileError(f"{shown}: `paths` has {paths.size} entries for {len(vectors)} "
                              "vectors; give one path per row")
    texts = [None if p is None else str(p) for p in paths.tolist()]
    return _checked(shown, texts, vectors, model, None, None, {"path": "paths",
                                                               "vector": "vectors"})


def _from_columns(shown: str, columns: dict[str, list], model: str | None,
                  path_column: str | None, vector_column: str | None) -> ImportedVectors:
    listed = ", ".join(repr(c) for c in columns) or "none"
    path_name = _path_column(shown, columns, path_column, listed)
    vector_names, vectors = _vector_columns(shown, columns, vector_column, path_name, listed)
    category = next((c for c in columns if c.casefold() == "category"), None)
    categories = None
    if category is not None:
        categories = [None if v is None or v == "" else str(v) for v in columns[category]]
    kept = [c for c in columns if c not in (path_name, category, *vector_names)
            and c.casefold() not in _EXPORT_COLUMNS]
    extras = ([{c: _plain(columns[c][n]) for c in kept} for n in range(len(vectors))]
              if kept else None)
    paths = [None if v is None else str(v).strip() or None for v in columns[path_name]]
    roles = {"path": path_name, "vector": vector_names[0] if len(vector_names) == 1
             else f"{vector_names[0]} ... {vector_names[-1]}"}
    return _checked(shown, paths, vectors, model, categories, extras, roles)


def _path_column(shown: str, columns: dict[str, list], asked: str | None, listed: str) -> str:
    if asked is not None:
        found = _named(columns, asked)
        if found is None:
            raise VectorFileError(f"{shown}: no column named {asked!r} for --path-column (its "
                                  f"columns: {listed})")
        return found
    for name in PATH_COLUMNS:
        found = _named(columns, name)
        if found is not None:
            return found
    raise VectorFileError(f"{shown}: no column of image paths or URLs (looked for "
                          f"{', '.join(PATH_COLUMNS)}); name it with --path-column (its "
                          f"columns: {listed})")


def _vector_columns(shown: str, columns: dict[str, list], asked: str | None, path_name: str,
                    listed: str) -> tuple[list[str], np.ndarray]:
    """The column(s) that hold the vectors, and the vectors as a float32 matrix: one list
    column, or the numbered columns PREFIX0 ... PREFIX{d-1}."""
    wanted = [asked] if asked is not None else list(VECTOR_COLUMNS)
    for name in wanted:
        found = _named(columns, name)
        if found is not None and found != path_name:
            return [found], _list_column(shown, found, columns[found])
    prefixes = [asked] if asked is not None else _numbered_prefixes(columns)
    for prefix in prefixes:
        numbered: list[str] = []
        while f"{prefix}{len(numbered)}" in columns:
            numbered.append(f"{prefix}{len(numbered)}")
        if numbered:
            return numbered, _numeric_columns(shown, numbered, columns)
    how = (f"no column {asked!r} (a list of numbers) nor columns {asked}0, {asked}1, ..."
           if asked is not None else
           "no vector column (a list column named vector or embedding, or numbered columns "
           "such as f0, f1, ...); name it with --vector-column")
    raise VectorFileError(f"{shown}: {how} (its columns: {listed})")


def _numbered_prefixes(columns: dict[str, list]) -> list[str]:
    """Prefixes P for which a column P0 exists, f first (as export writes them)."""
    found = [m.group(1) for c in columns if (m := re.fullmatch(r"(.*?)_?0", c))]
    found = [p if p + "0" in columns else p + "_" for p in found]
    return sorted(set(found), key=lambda p: (p != "f", p))


def _list_column(shown: str, name: str, values: list) -> np.ndarray:
    lengths = {len(v) for v in values if isinstance(v, (list, tuple, np.ndarray))}
    for row, v in enumerate(values, 1):
        if not isinstance(v, (list, tuple, np.ndarray)):
            raise VectorFileError(f"{shown}: row {row}: column {name!r} holds "
                                  f"{'nothing' if v is None else repr(v)[:40]}, not a list of "
                                  "numbers")
    if len(lengths) > 1:
        first = len(values[0])
        row = next(n for n, v in enumerate(values, 1) if len(v) != first)
        raise VectorFileError(f"{shown}: row {row}: a vector of {len(values[row - 1])} values "
                              f"where row 1 has {first}; every vector must have the same length")
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused later
            return np.asarray([list(v) for v in values], dtype=np.float32).reshape(
            len(values), lengths.pop() if lengths else 0)
    except (TypeError, ValueError):
        raise VectorFileError(f"{shown}: column {name!r} holds values that are not numbers"
                              ) from None


def _numeric_columns(shown: str, names: list[str], columns: dict[str, list]) -> np.ndarray:
    out = np.empty((len(columns[names[0]]), len(names)), np.float32)
    for j, name in enumerate(names):
        for row, v in enumerate(columns[name]):
            if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
                raise VectorFileError(f"{shown}: row {row + 1}, column {name!r}: "
                                      f"{'empty' if v is None else repr(v)[:40]}, not a number")
            with np.errstate(over="ignore"):
                out[row, j] = v
    return out


def _named(columns: dict[str, list], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _checked(shown: str, paths: list[str | None], vectors: np.ndarray, model: str | None,
             categories, extras, roles: dict[str, str]) -> ImportedVectors:
    if len(paths) == 0:
        raise VectorFileError(f"{shown}: holds no vectors (no rows)")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
        vectors = np.asarray(vectors, np.float32)
    check_vectors(paths, vectors, shown)
    return ImportedVectors(shown, [str(p) for p in paths], vectors,
                           model, categories, extras, roles)


def check_vectors(paths: list, vectors: np.ndarray, shown: str) -> None:
    """VectorFileError unless there is one finite vector, of at least one value, per path,
    each path given once."""
    if vectors.ndim != 2 or len(vectors) != len(paths):
        raise VectorFileError(f"{shown}: {len(paths)} paths but vectors of shape "
                              f"{vectors.shape}; give one vector per path")
    if vectors.shape[1] == 0:
        raise VectorFileError(f"{shown}: the vectors are empty (no values)")
    for row, p in enumerate(paths, 1):
        if p is None or not str(p).strip():
            raise VectorFileError(f"{shown}: row {row} has no path; every vector needs the "
                                  "image it belongs to")
    finite = np.isfinite(vectors).all(axis=1)  # float32: values beyond its range are inf
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise VectorFileError(f"{shown}: row {row + 1} ({paths[row]}) has a NaN or infinite "
                              "value in its vector; fix or drop that row")




# -- into the catalogue -------------------------------------------------------------------------

@dataclass
class ImportReport:
    """What `Collection.add_vectors` stored: `added` new images (known only by their vectors),
    `updated` images imported before (vector and columns replaced), `attached` images indexed
    before that got (or had replaced) a vector of this model."""

    model: str
    dim: int
    added: int = 0
    updated: int = 0
    attached: int = 0
    seconds: float = 0.0
    source: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return self.added + self.updated + self.attached


def resolve_model(store, name: str | None, dim: int, shown: str) -> str:
    """The model name imported vectors are stored under: a model lookalike knows (its
    canonical name; its dimension must match) or a name of the user's own; either way the
    dimension must match the vectors the collection already holds of it."""
    from ..models import UnknownModelError, get_model_info

    if name is None or not str(name).strip():
        raise VectorFileError(f"{shown}: give the name of the model that made these vectors "
                              "(--model NAME: one of `lookalike models`, or a name of your own)")
    try:
        info = get_model_info(name)
    except UnknownModelError:
        if not MODEL_NAME.match(name):
            raise VectorFileError(f"model name {name!r}: use letters, digits and . _ + - (up to "
                                  "64, starting with a letter or digit)") from None
    else:
        if info.dim != dim:
            raise VectorFileError(f"{shown}: vectors of {dim} dimensions, but {info.name} makes "
                                  f"{info.dim}; import them under a model name of your own "
                                  "(--model my-model)")
        name = info.name
    held = store.vector_dim(name)
    if held is not None and held != dim:
        raise VectorFileError(f"{shown}: vectors of {dim} dimensions, but the collection's "
                              f"{name} vectors have {held}; import them under another --model "
                              "name")
    return name


def plan_import(store, paths: list[str], vectors: np.ndarray, model: str, *, shown: str,
                base_dir: str, categories: list[str | None] | None = None,
                extras: list[dict[str, Any]] | None = None):
    """(catalogue rows to write, embeddings to write, the report) for `vectors` of `model`,
    one per path. An image already indexed keeps its row and gets the vector (by its content
    hash); any other gets a row of its own without pixels read (width, height, size
    unknown) whose content hash is `imported_hash(locator)`. VectorFileError for a path
    given twice or an unsupported URL scheme."""
    from ..catalogue.store import ImageRow, imported_hash, is_imported_hash

    report = ImportReport(model, int(vectors.shape[1]), source=shown)
    known = store.known_files()
    seen: dict[bytes, int] = {}
    rows, embeddings = [], []
    for n, given in enumerate(paths):
        locator, display, name = _locator(given, base_dir, shown, n)
        if locator in seen:
            raise VectorFileError(f"{shown}: {display} is listed twice (rows {seen[locator] + 1} "
                                  f"and {n + 1}); give each image once")
        seen[locator] = n
        k = known.get(locator)
        if (k is not None and k.skip_reason is None and k.content_hash is not None
                and not is_imported_hash(k.content_hash)):
            embeddings.append((k.content_hash, model, vectors[n]))
            report.attached += 1
            continue
        digest = imported_hash(locator)
        category = categories[n] if categories is not None else None
        extra = (json.dumps(extras[n], ensure_ascii=False, allow_nan=False)
                 if extras is not None else None)
        rows.append(ImageRow(locator, display, None, name, category, None, None,
                             content_hash=digest, extras=extra))
        embeddings.append((digest, model, vectors[n]))
        if k is not None and k.skip_reason is None and is_imported_hash(k.content_hash):
            report.updated += 1
        else:
            report.added += 1
    return rows, embeddings, report


def _locator(given: str, base_dir: str, shown: str, n: int) -> tuple[bytes, str, str]:
    """(locator, path shown, name) of an image named in row `n` of a vector file."""
    from urllib.parse import unquote, urlsplit

    from ..locators import is_url, url_name, url_scheme
    from .folders import display_path

    text = given.strip()
    if is_url(text):
        return text.encode("utf-8"), text, url_name(text)
    scheme = url_scheme(text)
    if scheme == "file":
        text = unquote(urlsplit(text).path)
    elif scheme is not None:
        raise VectorFileError(f"{shown}: row {n + 1}: unsupported URL scheme {scheme!r} (images "
                              "are named by a file path or an http, https or data URL)")
    path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(text)))
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.fsencode(path), display_path(path), display_path(stem)


__all__ = ["ImportReport", "ImportedVectors", "MODEL_NAME", "VECTOR_FILE_SUFFIXES",
           "VectorFileError", "check_vectors", "plan_import", "read_vector_file",
           "resolve_model"]
