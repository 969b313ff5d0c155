"""The Python API: a `Collection` of indexed images and its `nearest` look-alikes.

    >>> col = Collection.index(["photos/"], db="photos.db")       # doctest: +SKIP
    >>> res = col.nearest(["photos/cat.jpg"], k=5)                   # doctest: +SKIP
    >>> res.paths, res.distances                                     # doctest: +SKIP

The command line and the web viewer only translate to and from these calls.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .analysis.analyze import Analysis
from .analysis.duplicates import DuplicateGroup
from .analysis.explain import (
    CannotExplain,
    ExplainedImage,
    Explanation,
    check_model,
    heat_maps,
    pair_distance,
)
from .analysis.maps import MapLayout
from .catalogue.cached import ByGeneration
from .catalogue.store import Store, no_empty_database_left
from .distributed.search import check_shardable, sharded_nearest
from .errors import BadReferenceError, LookalikeError, LookalikeWarning
from .formats.records import RECORD_FIELDS
from .ingest import decode as images
from .ingest.folders import display_path, resolve
from .ingest.outside import OutsideEmbedder
from .ingest.pipeline import IndexReport, index_paths
from .ingest.reading import READING_SETTING, ReadingOptions, base_model
from .ingest.vectors import ImportReport
from .locators import is_data_url, is_url
from .search.checks import (
    UnknownCategory,
    answer_notes,
    check_category,
    check_cluster_search,
    check_k,
    check_max_distance,
    nearest_names,
)
from .search.engine import SearchEngine
from .search.exact import ExactIndex
from .search.feedback import (
    DEFAULT_NEGATIVE_RULE,
    DEFAULT_REFINE_METHOD,
    check_refine_method,
    negative_cost,
    refine_rows,
)
from .search.metrics import DEFAULT_K, DEFAULT_METRIC, canonical_metric
from .search.normalise import Normalisation
from .search.references import check_apart, check_inside, is_empty, queries, references


@dataclass
class Neighbors:
    """The look-alikes of one or several references, nearest first.

    `references` names the references (paths or URLs, "vector N" for the N-th vector given);
    `reference_index[i]` is the position in `references` of the one that look-alike i is
    nearest to, which gave it its distance (None when unknown). `notes`: sentences for people
    about this answer (e.g. Mahalanobis on too few images), also issued as
    `LookalikeWarning`s by `Collection.nearest`. `method`: which search answered (one of
    `search.engine.METHODS`: "exact", "hnsw", "ivf", "ivfpq", "scan").

    With negative references (`nearest(..., unlike=...)`) or relevance feedback (`refine`):
    `scores` is what ranked the look-alikes, higher first (`nearest`: minus the cost of
    `search.feedback.negative_cost`; `refine`: the fitted model's score); `unlike_references`
    names the negatives, `unlike_distances[i]` is look-alike i's distance to the nearest of
    them and `unlike_index[i]` its position there. `distances` stay the distance to the
    nearest positive reference.
    """

    rows: list[dict]
    distances: np.ndarray
    model: str
    metric: str
    references: list[str] = field(default_factory=list)
    reference_index: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    method: str = "exact"
    scores: np.ndarray | None = None
    unlike_references: list[str] = field(default_factory=list)
    unlike_distances: np.ndarray | None = None
    unlike_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nearest_references(self) -> list[str | None]:
        """For each look-alike, the reference it is nearest to (as named in `references`)."""
        if self.reference_index is None:
            only = self.references[0] if len(self.references) == 1 else None
            return [only] * len(self.rows)
        return [self.references[i] for i in self.reference_index]

    @property
    def nearest_unlike(self) -> list[str | None]:
        """For each look-alike, the negative reference it is nearest to (None without any)."""
        if self.unlike_index is None:
            return [None] * len(self.rows)
        return [self.unlike_references[i] for i in self.unlike_index]

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.rows]

    @property
    def ids(self) -> list[int]:
        return [r["id"] for r in self.rows]

    def __repr__(self) -> str:
        n = len(self.references)
        refs = (f"1 reference ({_short_name(self.references[0])})" if n == 1
                else f"{n} references")
        found = f"{len(self.rows):,} image{'s' * (len(self.rows) != 1)}"
        if len(self.rows):
            found += f", nearest {self.distances[0]:.4g} ({_short_name(self.rows[0]['path'])})"
        return f"<Neighbors of {refs} by {self.model}, {self.metric}: {found}>"

    def _repr_html_(self) -> str:
        """In Jupyter: a strip of thumbnails with rank and distance, nearest first (the
        first HTML_IMAGES of them), self-contained (thumbnails are inline data: URLs). With
        several references they are numbered, and each look-alike gives the number of its
        nearest."""
        from html import escape

        several = len(self.references) > 1
        index = self.reference_index if self.reference_index is not None else [None] * len(self)
        cells = [_html_cell(rank, row, d, None if i is None or not several else int(i) + 1,
                            None if i is None else self.references[i])
                 for rank, (row, d, i) in enumerate(zip(self.rows[:HTML_IMAGES], self.distances,
                                                        index), 1)]
        refs = "".join(f"<div>reference {n}: {escape(_long_name(r))}</div>"
                       for n, r in enumerate(self.references, 1)) if several else ""
        more = len(self.rows) - HTML_IMAGES
        tail = (f'<div style="margin-top:4px">… and {more:,} more (<code>to_pandas()</code> '
                'lists them all)</div>' if more > 0 else "")
        return ('<div class="lookalike-neighbors" style="font-family:sans-serif">'
                f'<div style="margin-bottom:4px">{escape(repr(self))}{refs}</div>'
                '<div style="display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start">'
                f'{"".join(cells)}</div>{tail}</div>')

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per neighbour with RECORD_FIELDS: rank (from 1), path, distance,
        nearest_reference, ..., then any extra metadata columns the collection's source
        carried."""
        from .formats.export import neighbor_records

        return neighbor_records(self)

    def to_json(self, path: str | os.PathLike | None = None) -> str | None:
        """The records as a JSON list; returned as text, or written to `path` (returns None)."""
        from .formats.export import write_neighbors

        return write_neighbors(self, "json", path)

    def to_csv(self, path: str | os.PathLike | None = None) -> str | None:
        """The records as CSV with a header row (strings quoted, numbers in their shortest
        exact form); returned as text, or written to `path` (returns None)."""
        from .formats.export import write_neighbors

        return write_neighbors(self, "csv", path)

    def to_parquet(self, path: str | os.PathLike) -> None:
        """The records as a Parquet file; model, metric and references are in the schema's
        metadata under b"lookalike" (JSON)."""
        from .formats.export import write_neighbors

        write_neighbors(self, "parquet", path)

    def to_tab(self, path: str | os.PathLike | None = None) -> str | None:
        """The result in Orange's .tab format, ready for Orange's Image Viewer; returned as
        text, or written to `path` (returns None).

        The columns are those of Orange's Import Images plus Neighbors' `distance`: `category`
        (discrete, the class: Import Images makes it the class, Neighbors compares only
        features, so it never enters a distance, and Image Viewer titles images by it), and as
        metas `image name`, `image` (string, flagged `type=image origin=FOLDER`), `distance`,
        `nearest_reference`, `rank`, `width`, `height`, `size`, `id` and any extras. `image`
        holds the path relative to `origin`, as Import Images writes it, so Orange's File widget
        can find the images again when the .tab and the folder move together; a path whose
        relative form Image Viewer would misread as a URL (with '#', '?', '%' or ':') is written
        absolute, which Image Viewer and Image Embedding open directly; URLs are kept. Values
        are tab-separated, strings quoted with '"' (so tabs, newlines and quotes in them survive
        Orange's csv reader). Orange strips spaces around every value and reads "?", ".", "~",
        "NA" and "nan" as missing in discrete and numeric columns: such values cannot be
        carried. Checked by loading the files in Orange 3.40.
        """
        from .formats.export import write_neighbors

        return write_neighbors(self, "tab", path)

    def to_pandas(self):
        """Every column of the records as a pandas DataFrame, nearest first."""
        from .formats.export import neighbors_dataframe

        return neighbors_dataframe(self)


#: A Neighbors result shows at most this many thumbnails in Jupyter, this large (pixels).
HTML_IMAGES = 50
HTML_THUMBNAIL = 96


def _short_name(path: str) -> str:
    """A path or URL by its file name; a data: URL (the whole image) by its media type."""
    if is_data_url(path):
        return path.split(";", 1)[0].split(",", 1)[0] or "data:"
    return os.path.basename(path.rstrip("/")) or path


def _long_name(path: str) -> str:
    """A path or URL whole, except a data: URL (too long to show)."""
    return _short_name(path) if is_data_url(path) else path


def _html_cell(rank: int, row: dict, distance: float, number: int | None,
               reference: str | None) -> str:
    """One look-alike of `Neighbors._repr_html_`: its thumbnail (or why there is none), rank,
    distance, name and the number of its nearest reference (None: not shown)."""
    from html import escape

    from .formats.thumbnails import data_url

    name = _short_name(row["path"])
    tip = _long_name(row["path"]) + (f"\nnearest to {_long_name(reference)}" if reference else "")
    side = HTML_THUMBNAIL
    try:
        picture = (f'<img src="{data_url(row["path"], side)}" alt="{escape(name)}" '
                   f'style="max-width:{side}px;max-height:{side}px">')
    except (images.ImageSkipped, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        picture = (f'<div style="width:{side}px;height:{side}px;display:flex;'
                   'align-items:center;justify-content:center;background:#eee;color:#555;'
                   f'font-size:11px">cannot be read: {escape(reason)}</div>')
    nearest = f"<br>nearest to ref. {number}" if number is not None else ""
    return (f'<figure title="{escape(tip)}" style="margin:0;width:{side + 4}px;text-align:center">'
            f'<div style="height:{side}px;display:flex;align-items:center;'
            f'justify-content:center">{picture}</div>'
            f'<figcaption style="font-size:11px;overflow-wrap:anywhere">#{rank} · {distance:.4f}'
            f'<br>{escape(name)}{nearest}</figcaption></figure>')


class Collection:
    """An indexed image collection stored in one SQLite file.

    `share_with`: another Collection open on the same database, whose loaded search state
    (matrices, the 8-bit pass, FAISS indexes) and catalogue counts this one shares: what either
    loads or counts, the other uses, and an answer one is computing the other waits for. A
    server warms up on a Collection of its own this way while requests are answered.
    """

    def __init__(self, store: Store, *, share_with: Collection | None = None):
        if share_with is not None and share_with.store.path.resolve() != store.path.resolve():
            raise ValueError(f"share_with is open on {share_with.store.path}, not {store.path}")
        self.store: Store = store
        self.engine: SearchEngine = SearchEngine(
            store, share=share_with.engine if share_with is not None else None)
        self._counts: ByGeneration = (share_with._counts if share_with is not None
                                      else ByGeneration())
        self._outside = OutsideEmbedder(lambda: self.reading)  # outside references
        self._maps: ByGeneration = (share_with._maps if share_with is not None
                                    else ByGeneration(limit=16))

    # -- opening and indexing ----------------------------------------------------------------

    @classmethod
    def open(cls, db: str | os.PathLike | None = None, *,
             share_with: Collection | None = None) -> Collection:
        """Open an existing collection (`db` default: `$LOOKALIKE_DB` or the user data folder);
        `share_with`: see the class."""
        return cls(Store(db, create=False), share_with=share_with)

    @classmethod
    def create(cls, db: str | os.PathLike | None = None) -> Collection:
        """Open a collection, creating an empty one if the file does not exist."""
        return cls(Store(db, create=True))

    @classmethod
    def index(cls, paths: Sequence[str | os.PathLike] | str | os.PathLike,
              db: str | os.PathLike | None = None, model: str | None = None,
              **options) -> Collection:
        """Open (or create) `db` and index `paths` into it; the report is in `last_report`.
        A new database is removed again if indexing fails before storing anything."""
        with no_empty_database_left(db):
            col = cls.create(db)
            try:
                col.add(paths, model=model, **options)
            except BaseException:
                col.close()
                raise
        return col

    def add(self, paths: Sequence[str | os.PathLike] | str | os.PathLike, model: str | None = None,
            *, batch_size: int = 32, threads: int | None = None, progress: bool = False,
            max_pixels: int = images.DEFAULT_MAX_PIXELS, image_column: str | None = None,
            category_column: str | None = None, base_dir: str | os.PathLike | None = None,
            downloader=None, reading: ReadingOptions | None = None,
            pattern: str | None = None, retag: bool = False, cluster: Any = None,
            shard_size: int | None = None) -> IndexReport:
        """Index folders, image files and tables: new and changed images are embedded,
        vanished ones (and rows taken out of a table) dropped.

        A table (.csv, .tsv, .tab, .xlsx, .parquet) lists images by path or URL in
        `image_column` (default: the column Orange would take; `last_report.tables` says
        which), with an optional `category_column`; relative paths start at `base_dir`
        (default: the `.tab` origin, else the table's folder). Its other columns are kept
        with each image. URLs are fetched by `downloader` (a `downloads.Downloader`; default
        settings and cache when None).

        `reading` (a `ReadingOptions`: z plane or projection, time point, channels, per-channel
        vectors, percentile window) says how scientific images are read; it is kept with the
        collection, so later runs, outside references and thumbnails read images the same way
        (None: the options kept, or the defaults).

        Plate, well, field, channel and acquisition columns come from an OME-TIFF's OME-XML,
        and from the file names when a `pattern` such as "{plate}_{well}_s{field}_w{channel}.tif"
        is given (ingest/plate_columns.py); `last_report.pattern_matched` counts its matches.

        New images get their ImageNet tags as they are embedded. Images embedded before tags
        were kept (a collection from lookalike's schema 5) get them only with `retag=True`,
        which reads those images once more: re-indexing an unchanged collection otherwise
        reads no pixel.


        `cluster` embeds on a Dask cluster instead of here: "local" or "local:N" (N worker
        processes on this machine), a scheduler address ("tcp://HOST:8786") or a
        `dask.distributed.Client`; the images go out in shards of `shard_size` (default 256),
        each committed when it comes back (README "Beyond one machine")."""
        from .ingest.tables import TableOptions
        from .models import DEFAULT_MODEL

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if reading is not None and reading != self.reading:
            self.store.set_setting(READING_SETTING, reading.to_json())
        stage = None
        if cluster is not None:
            from .distributed.indexing import DEFAULT_SHARD_SIZE, cluster_stage

            stage = cluster_stage(cluster, DEFAULT_SHARD_SIZE if shard_size is None else shard_size)
        report = index_paths(self.store, list(paths), model or DEFAULT_MODEL,
                             batch_size=batch_size, threads=threads, progress=progress,
                             max_pixels=max_pixels,
                             tables=TableOptions(image_column, category_column, base_dir),
                             downloader=downloader, reading=self.reading, pattern=pattern,
                             retag=retag, embed_stage=stage)
        self.engine.forget()
        self.last_report = report
        return report

    def add_vectors(self, paths: Sequence[str | os.PathLike], vectors: Any, model: str, *,
                    categories: Sequence[str | None] | None = None,
                    extras: Sequence[dict] | None = None,
                    base_dir: str | os.PathLike | None = None, source: str | None = None
                    ) -> ImportReport:
        """Store vectors computed elsewhere as `model`'s, one per image path or URL, without
        reading any image: for vectors made on another machine or by your own pipeline.

        `model`: a model lookalike knows (its vectors' dimension must match) or a name of
        your own, which then appears in `models` and is searched with `nearest(model=...)`.
        An image already indexed keeps its catalogue row and gets the vector; any other gets
        a row without pixels read (width, height and size unknown), with `categories` and
        `extras` (a dict of columns per image) when given. Importing a path again replaces
        its vector. Relative paths start at `base_dir` (default: the working folder).
        Everything is written in one transaction: a bad input (a dimension that differs from
        the model's, a NaN, a path given twice) writes nothing. `source` names the input in
        errors. Returns an `ImportReport`."""
        import time

        from .ingest.vectors import check_vectors, plan_import, resolve_model

        start = time.perf_counter()
        shown = source or "add_vectors"
        texts = [os.fspath(p) for p in paths]
        matrix = np.asarray(vectors)
        if matrix.dtype.kind not in "fiu":
            raise LookalikeError(f"{shown}: vectors must be numbers, not {matrix.dtype}")
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
            matrix = matrix.astype(np.float32, copy=False)
        if matrix.ndim == 1 and len(texts) == 1:
            matrix = matrix[None]
        if len(texts) == 0:
            raise LookalikeError(f"{shown}: no vectors to add")
        check_vectors(texts, matrix, shown)
        for name, given in (("categories", categories), ("extras", extras)):
            if given is not None and len(given) != len(texts):
                raise LookalikeError(f"{shown}: {len(given)} {name} for {len(texts)} paths")
        name = resolve_model(self.store, model, matrix.shape[1], shown)
        rows, embeddings, report = plan_import(
            self.store, texts, matrix, name, shown=shown,
            base_dir=os.path.abspath(base_dir or os.curdir),
            categories=list(categories) if categories is not None else None,
            extras=list(extras) if extras is not None else None)
        self.store.write(rows, embeddings)
        self.engine.forget()
        report.seconds = time.perf_counter() - start
        return report

    def import_vectors(self, path: str | os.PathLike, model: str | None = None, *,
                       path_column: str | None = None, vector_column: str | None = None
                       ) -> ImportReport:
        """`add_vectors` from a file: what `export` writes (Parquet or JSON with a `vector`
        list, CSV or .tab with columns f0 ... f{d-1}, .npz with `paths` and `vectors`) and
        common layouts (a path or URL column named path, image, file or url, or
        `path_column`; vectors as a list column named vector or embedding, or numbered
        columns, or `vector_column`: a list column or the prefix of numbered ones). Relative
        paths start at the file's folder; a `category` column gives categories, other
        columns are kept as extras. `model` default: the one the file names (npz, a
        lookalike parquet), else an error."""
        from .ingest.vectors import read_vector_file

        found = read_vector_file(path, path_column, vector_column)
        report = self.add_vectors(found.paths, found.vectors, model or found.model or "",
                                  categories=found.categories, extras=found.extras,
                                  base_dir=found.base_dir or os.path.dirname(
                                      os.path.abspath(path)),
                                  source=found.source)
        report.columns = found.columns
        return report

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self._counted("len", lambda: self.store.count_images(usable_only=True))

    def __repr__(self) -> str:
        where = repr(os.fspath(self.store.path))
        try:  # two counts, each made once per catalogue generation
            count, models = len(self), self.models
        except Exception:  # a deleted or damaged file: the repr must still say which
            return f"<Collection {where}: cannot be read>"
        listed = ", ".join(f"{name} ({n:,})" for name, n in models.items()) or "none"
        return f"<Collection {where}: {count:,} image{'s' * (count != 1)}, models: {listed}>"

    def _counted(self, key, compute):
        """A count over the whole catalogue, made once per catalogue generation: each one
        reads every row (10-20 ms at 100,000 images), and the web viewer asks for them with
        every page of the grid."""
        return self._counts.get(self.store.generation, key, compute)

    def extra_columns(self) -> list[str]:
        """The names of the table columns kept with the images (none for folders)."""
        return list(self._counted("extra_columns", self.store.extra_columns))

    # -- what is inside ------------------------------------------------------------------------

    @property
    def models(self) -> dict[str, int]:
        """Models with vectors in this collection, with the number of images each covers
        (counted once per catalogue generation: every search asks)."""
        return dict(self._counted("models", self.store.models))

    @property
    def reading(self) -> ReadingOptions:
        """How this collection reads scientific images (the options its last `add` was given;
        the defaults until then)."""
        return ReadingOptions.from_json(self.store.get_setting(READING_SETTING))

    @property
    def default_model(self) -> str:
        """The model last used to index, if it has vectors, else the one covering most images."""
        present = self.models
        if not present:
            raise LookalikeError(f"{self.store.path}: the collection has no indexed images yet")
        last = self.store.get_setting("last_model")
        if last in present:
            return last
        return max(present, key=lambda name: present[name])

    def attributions(self, rows: Sequence[dict] | None = None) -> list[str]:
        """Credits that must be shown with these images (all of the collection's by default),
        from the ATTRIBUTION.txt of the folders they were indexed from."""
        notes = self.store.attribution_notes()
        if rows is None:
            return sorted(set(notes.values()))
        roots = {r["root"] for r in rows}
        return sorted({text for root, text in notes.items()
                       if any(r == root or (r or "").startswith(root + os.sep) for r in roots)})

    def skipped(self) -> list[dict]:
        """Every catalogued file that could not be used, with its reason."""
        return self.store.skipped()

    def vectors(self, model: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, float32 matrix) for a model; the matrix is memory-mapped, loaded once
        per process and reloaded only when the collection changed."""
        ids, index = self.engine.index(self._model(model))
        return ids, index.matrix

    def prepare_for_many_searches(self, model: str | None = None) -> None:
        """Build now what makes later exact cosine searches faster (the 8-bit first pass of
        search/exact.py, built anyway after a few searches): a server calls it at start-up."""
        self.engine.prepare(self._model(model))

    def search_plan(self, model: str | None = None, metric: str = DEFAULT_METRIC):
        """Which search answers a top-10 search now (exact, or which approximate index), why,
        and the approximate indexes saved for `model` with the recall each was calibrated to
        (`search.engine.SearchPlan`; `.describe()` says it in one line). Reads the catalogue's
        counts, not the vectors: no search matrix is loaded or built for it."""
        name = self._model(model)
        return self.engine.plan(name, canonical_metric(metric), self.models[name],
                                self.store.vector_dim(name) or 0)

    def prepare_graph(self, model: str | None = None, metric: str = DEFAULT_METRIC) -> bool:
        """Build (or load and bring up to date) the graph index that later searches of
        `metric` use, unless the collection is too small for it to be used (then False): a
        server calls it in the background, answering exactly meanwhile."""
        return self.engine.prepare_graph(self._model(model), canonical_metric(metric))

    def answers_from_graph(self, model: str | None = None, metric: str = DEFAULT_METRIC,
                           k: int | None = DEFAULT_K,
                           approximate: bool | str | None = None) -> bool:
        """Whether `nearest_to_ids` of one image with these arguments (and no filter) would be
        answered by the graph index as it is in memory now, with nothing to count, load,
        build or bring up to date first: a search of well under a millisecond at 100,000
        images, which a server may answer without handing it to a worker thread. Computes
        nothing and waits for nothing; False for arguments a search would refuse."""
        if self._counts.peek(self.store.generation, "models") is None:
            return False  # the models are counted first (10-20 ms at 100,000 images)
        try:
            name, canonical = self._model(model), canonical_metric(metric)
        except LookalikeError:
            return False
        return self.engine.answers_from_graph(name, canonical, k, approximate)

    def vectors_model(self, model: str | None = None) -> str:
        """The name under which the vectors that `model` (None: the default model) stands for
        are stored: the model read the collection's way (`ReadingOptions.vector_key`) where
        it was indexed so. LookalikeError when the collection has none of its vectors."""
        return self._model(model)

    def _model(self, model: str | None) -> str:
        if model is None:
            return self.default_model
        if model in self.models:  # a model of the collection: its vectors may be imported
            keyed = self.reading.vector_key(model)  # read the collection's way, if indexed so
            return keyed if keyed in self.models else model
        from .models import get_model_info

        name = self.reading.vector_key(get_model_info(model).name)
        if name not in self.models:
            raise LookalikeError(
                f"no image in {self.store.path} has a {name} vector; "
                f"index with --model {name} first (present: {', '.join(self.models) or 'none'})")
        return name

    # -- search -------------------------------------------------------------------------------

    def nearest(self, refs: Any = None, k: int | None = DEFAULT_K, metric: str = DEFAULT_METRIC,
                include_references: bool = False, model: str | None = None,
                category: str | None = None, path_prefix: str | None = None,
                approximate: bool | str | None = None, *, name: str | None = None,
                max_distance: float | None = None, unlike: Any = None,
                rule: str = DEFAULT_NEGATIVE_RULE, cluster: Any = None,
                normalise: str | Sequence[str] | None = None,
                controls: str | Sequence[str] | None = None,
                text: str | Sequence[str] | None = None) -> Neighbors:
        """The k images nearest to the references (min distance to any), nearest first.

        `refs`: one or several indexed paths or URLs, image files outside the collection,
        encoded images as bytes (both embedded on the fly, not stored; bytes are named `name`,
        default "uploaded image") or vectors. `k=None` ranks every candidate. References that
        are catalogue rows are left out unless `include_references`. `category` (a sub-folder,
        its own sub-folders included) and `path_prefix` restrict the candidates.

        `approximate`: None (default) follows the policy of `search.engine.choose_method`:
        exact below 20,000 images, the graph index (HNSW) once it is built (see
        `prepare_graph`) or from 200,000 images (IVF where memory is short, IVF-PQ where
        even IVF's 8-bit codes would not fit); True asks for FAISS whatever the size, "hnsw"
        / "ivf" / "ivfpq" / "scan" for one index (built and saved beside the database on
        first use), False for exact. Distances are exact either way;
        approximate search may miss a few true neighbours (recall@10 is measured in
        benchmarks/search.py); the result's `method` says which answered. Manhattan,
        Jaccard, k=None and filtered searches are always exact.

        `max_distance`: only look-alikes at most this far (with k, the k nearest of those;
        with k=None, all of them).

        `unlike`: negative references ("not like this"), in the same forms as `refs`. Then
        the search is exact and ranks by `search.feedback.negative_cost` of the distances to
        the nearest positive (d+) and to the nearest negative (d-): `rule` "subtract" (the
        default) by d+ - 0.5 d-, "exclude" the images nearer to a positive than to every
        negative first; the result gains `scores`, `unlike_distances` and
        `unlike_references`. Negatives that are images of the collection are left out
        like the references.

        `cluster`: search on a Dask cluster ("local", "local:N", a scheduler address or a
        `dask.distributed.Client`): the matrix is cut in shards beside the database
        (`<db>.shards/`), each worker searches its own, the driver merges; the same answer as
        the exact search here. Mahalanobis, `unlike`, `normalise` and `approximate` are not
        offered there.

        `normalise`: the column(s) that group images into plates ("plate"): each plate's
        vectors are then centred and scaled against its `controls` (wells, "A01,B01" or a
        list, or "COLUMN=VALUE") or, without them, against all its images, so that
        look-alikes are not just "same plate" (search/normalise.py). The search is exact, and
        the references must be images of the collection (their plate must be known).

        `text`: a text (or several) to search with, embedded by the model's text tower (a
        CLIP-style pair of your own, `lookalike.models.register_text_model`). Alone, a text is
        a reference like an image (several texts: the distance to the nearest). With `refs`,
        the text steers each reference image: its query is unit(image) + unit(text), the sum
        CLIP-style models compose an image and a text with (see `search.text_queries`). Texts
        rank best by Cosine, the default, the measure such models are trained with.
        """
        check_k(k)
        metric = canonical_metric(metric)
        model = self._model(model)
        how = Normalisation.of(normalise, controls)
        if how is not None and text is not None:
            raise LookalikeError("a text has no plate, so it cannot be searched among "
                                 f"vectors {how.describe()}; leave out the text or "
                                 "the normalisation (--normalise)")
        if cluster is not None:
            check_shardable(metric)
            check_cluster_search(approximate, unlike, how)
        ids, index = self.engine.index(model, how)
        if len(ids) == 0:
            raise LookalikeError(f"{self.store.path}: the collection is empty")
        asked = queries(self.store, self._outside, refs, text, model, ids, index.matrix, name)
        if how is not None:
            check_inside(self.store, asked, how)
        if unlike is not None and not is_empty(unlike):
            if approximate not in (None, False):
                raise LookalikeError("negative references (--unlike) are searched exactly; "
                                     "leave out --approximate")
            negatives = references(self.store, self._outside, unlike, model, ids, index.matrix,
                                   name)
            if how is not None:
                check_inside(self.store, negatives, how)
            check_apart(asked, negatives)
            return self._answer_unlike(model, ids, index, asked, negatives, k, metric,
                                       include_references, rule, category=category,
                                       path_prefix=path_prefix, max_distance=max_distance)
        return self._answer(model, ids, index, asked, k, metric, include_references,
                            category=category, path_prefix=path_prefix, approximate=approximate,
                            max_distance=max_distance, cluster=cluster, normalisation=how)

    def nearest_to_ids(self, ids: Sequence[int], k: int | None = DEFAULT_K,
                       metric: str = DEFAULT_METRIC, include_references: bool = False,
                       model: str | None = None, *, normalise: str | Sequence[str] | None = None,
                       controls: str | Sequence[str] | None = None, **options) -> Neighbors:
        """`nearest` with images of the collection, given by id, as the references."""
        check_k(k)
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            raise LookalikeError("give at least one reference image")
        model = self._model(model)
        how = Normalisation.of(normalise, controls)
        index_ids, index = self.engine.index(model, how)
        where = np.searchsorted(index_ids, wanted)  # index ids are sorted
        for i, w in zip(wanted, where):
            if w >= len(index_ids) or index_ids[w] != i:
                raise BadReferenceError(f"image {i}: not in the collection, or it has no "
                                        f"{model} vector")
        references = (index.matrix[where], np.asarray(wanted, np.int64),
                      [row["path"] for row in self.store.rows(wanted)])
        return self._answer(model, index_ids, index, references, k, canonical_metric(metric),
                            include_references, normalisation=how, **options)

    def _answer(self, model: str, ids: np.ndarray, index: ExactIndex,
                references: tuple[np.ndarray, np.ndarray, list[str]], k: int | None,
                metric: str, include_references: bool, *, category: str | None = None,
                path_prefix: str | None = None, approximate: bool | str | None = None,
                max_distance: float | None = None, cluster: Any = None,
                normalisation: Normalisation | None = None) -> Neighbors:
        """The search behind `nearest` and `nearest_to_ids`, on `model`'s `ids` and `index`:
        `references` are (vectors, ids of those that are images of the collection, names);
        those images are left out unless `include_references`; on `cluster`'s workers if
        given."""
        queries, ref_ids, names = references
        check_max_distance(max_distance)
        among = None
        if category is not None:
            check_category(category, self.categories(), self.store.path)
        if category is not None or path_prefix is not None:
            among = self._filtered(category, path_prefix)
        exclude = None if include_references else ref_ids
        if exclude is not None and len(np.unique(exclude)) == len(ids):
            raise LookalikeError("every image in the collection is a reference: nothing else to "
                                 "show (use --include-references to rank them)")
        if cluster is not None:
            found, dist, nearest = sharded_nearest(self.store, model, cluster, queries, k, metric,
                                                   exclude=exclude, among=among)
            method = "exact"
        else:
            found, dist, nearest, method = self.engine.search(
                model, queries, k, metric, exclude=exclude, among=among,
                approximate=approximate, return_method=True, normalisation=normalisation)
        if max_distance is not None:
            close = dist <= max_distance
            found, dist = found[close], dist[close]
            nearest = None if nearest is None else nearest[close]
        notes = answer_notes(metric, len(ids), index.dim)
        for note in notes:
            warnings.warn(note, LookalikeWarning, stacklevel=3)
        return Neighbors(rows=self.store.rows(found.tolist()), distances=dist, model=model,
                         metric=metric, references=names, reference_index=nearest, notes=notes,
                         method=method)

    def _answer_unlike(self, model: str, ids: np.ndarray, index: ExactIndex,
                       references: tuple[np.ndarray, np.ndarray, list[str]],
                       negatives: tuple[np.ndarray, np.ndarray, list[str]], k: int | None,
                       metric: str, include_references: bool, rule: str, *,
                       category: str | None = None, path_prefix: str | None = None,
                       max_distance: float | None = None) -> Neighbors:
        """`nearest` with negative references: one exact pass for both distance sets."""
        check_max_distance(max_distance)
        negative_cost(np.zeros(1), np.zeros(1), rule)  # an unknown rule: one clear line
        candidates, exclude = self._candidate_rows(ids, category, path_prefix, include_references,
                                                   references[1], negatives[1])
        found, cost, d_pos, which, d_neg, which_neg = index.search_with_negatives(
            references[0], negatives[0], k, metric, lambda p, n: negative_cost(p, n, rule),
            exclude=exclude, candidates=candidates)
        if max_distance is not None:
            close = d_pos <= max_distance
            found, cost, d_pos, which = found[close], cost[close], d_pos[close], which[close]
            d_neg, which_neg = d_neg[close], which_neg[close]
        notes = answer_notes(metric, len(ids), index.dim)
        for note in notes:
            warnings.warn(note, LookalikeWarning, stacklevel=3)
        return Neighbors(rows=self.store.rows(ids[found].tolist()), distances=d_pos, model=model,
                         metric=metric, references=references[2], reference_index=which,
                         notes=notes, scores=-cost, unlike_references=negatives[2],
                         unlike_distances=d_neg, unlike_index=which_neg)

    def refine(self, positives: Any, negatives: Any = (), k: int | None = DEFAULT_K,
               method: str = DEFAULT_REFINE_METHOD, model: str | None = None,
               include_references: bool = False, category: str | None = None,
               path_prefix: str | None = None) -> Neighbors:
        """Relevance feedback: the k images the user most likely wants, given images marked
        right (`positives`, at least one) and wrong (`negatives`), in the forms `nearest`
        takes. `method` (`search.feedback.REFINE_METHODS`): "linear" (the default: a
        logistic regression on the vectors, positives against the negatives and 200 random
        images of the collection as weak negatives), "rocchio" (the nearest to the mean
        positive minus half the mean negative) or "exemplar" (one linear SVM per positive).
        Ranked by the model's score (`scores`, higher first); `distances` are the cosine
        distances to the nearest positive, `unlike_distances` to the nearest negative. The
        marked images are left out unless `include_references`."""
        check_refine_method(method)
        check_k(k)
        model = self._model(model)
        ids, index = self.engine.index(model)
        if len(ids) == 0:
            raise LookalikeError(f"{self.store.path}: the collection is empty")
        if positives is None or is_empty(positives):
            raise LookalikeError("give at least one image marked as wanted (--like)")
        pos = references(self.store, self._outside, positives, model, ids, index.matrix)
        neg = (references(self.store, self._outside, negatives, model, ids, index.matrix)
               if negatives is not None and not is_empty(negatives)
               else (np.zeros((0, index.dim), np.float32), np.zeros(0, np.int64), []))
        check_apart(pos, neg)
        candidates, exclude = self._candidate_rows(ids, category, path_prefix, include_references,
                                                   pos[1], neg[1])
        rows, scores = refine_rows(index, pos[0], neg[0], method, k, candidates, exclude)
        d_pos, which = index.exact_scores(pos[0], rows, "Cosine", return_query=True)
        d_neg, which_neg = (index.exact_scores(neg[0], rows, "Cosine", return_query=True)
                            if len(neg[0]) else (None, None))
        return Neighbors(rows=self.store.rows(ids[rows].tolist()), distances=d_pos, model=model,
                         metric="Cosine", references=pos[2], reference_index=which,
                         scores=scores, unlike_references=neg[2],
                         unlike_distances=d_neg, unlike_index=which_neg)

    def _candidate_rows(self, ids: np.ndarray, category: str | None, path_prefix: str | None,
                        include_references: bool, *marked: np.ndarray
                        ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(rows that may be answered, None: all; rows never answered) of a search whose
        `marked` image ids (references, negatives) are left out unless `include_references`."""
        candidates = None
        if category is not None:
            check_category(category, self.categories(), self.store.path)
        if category is not None or path_prefix is not None:
            candidates = np.flatnonzero(np.isin(ids, self._filtered(category, path_prefix)))
        exclude = None
        if not include_references:
            exclude = np.flatnonzero(np.isin(ids, np.concatenate(marked)))
            if len(exclude) == len(ids):
                raise LookalikeError("every image in the collection is marked: nothing else to "
                                     "show (use --include-references to rank them)")
        return candidates, exclude

    def _filtered(self, category: str | None, path_prefix: str | None) -> np.ndarray:
        """The ids of the usable images in `category` and under `path_prefix`."""
        if path_prefix is not None and not is_url(path_prefix):
            path_prefix = os.path.abspath(path_prefix)
        return self.store.usable_ids(category, path_prefix)

    @property
    def text_models(self) -> list[str]:
        """The collection's models that texts can search (`nearest(text=...)`): those with a
        text tower of yours paired with the image model file that made their vectors."""
        from .models import has_text_model

        return [m for m in self.models
                if has_text_model(base_model(m)) and not self._outside.per_channel(m)]

    # -- explaining a match ---------------------------------------------------------------

    def explain(self, a: Any, b: Any, *, model: str | None = None) -> Explanation:
        """Why `a` and `b` look alike: where each one matches the other, as two heat maps on
        the model's feature grid (see `analysis.explain.Explanation`), with their distance.

        `a`, `b`: images of the collection by id, path or URL, image files outside it, or
        encoded images as bytes; the same image twice is fine. `model`: default the
        collection's `default_model` (or lookalike's default for an empty collection). A model
        without a feature map (your own ONNX model) cannot explain: one line of error."""
        name = self._explaining_model(model)
        reading = self._outside.reading_of(name)
        if reading.per_channel:
            raise CannotExplain(f"{name}: vectors of each channel apart (--per-channel) have "
                                "no one feature map to explain a match with; explain in a "
                                "collection indexed without --per-channel")
        embedder = self._outside.embedder(name)
        check_model(embedder)
        size = embedder.info.input_size
        sides = (self._explained_image(a, size, reading),
                 self._explained_image(b, size, reading))
        heat_a, heat_b, vectors = heat_maps(embedder, np.stack([s.pixels for s in sides]))
        if name in self.models:  # the stored vectors: the distance a search shows
            ids, index = self.engine.index(name)
            for i, side in enumerate(sides):
                at = np.searchsorted(ids, side.id) if side.id is not None else len(ids)
                if at < len(ids) and ids[at] == side.id:
                    vectors[i] = index.matrix[at]
        return Explanation(images=sides, heat=(heat_a, heat_b), model=name,
                           distance=pair_distance(vectors[0], vectors[1]))

    def _explaining_model(self, model: str | None) -> str:
        from .models import DEFAULT_MODEL, get_model_info

        if model is None:
            return self.default_model if self.models else DEFAULT_MODEL
        if model in self.models:  # as `_model`: read the collection's way, if indexed so
            keyed = self.reading.vector_key(model)
            return keyed if keyed in self.models else model
        return self.reading.vector_key(get_model_info(model).name)

    def _explained_image(self, ref: Any, size: int, reading: ReadingOptions) -> ExplainedImage:
        """One side of `explain`: its bytes found and decoded to the model's input size, read
        the way the collection reads its images (`reading`)."""
        from .ingest.originals import read_catalogued

        image_id: int | None = None
        if isinstance(ref, (bytes, bytearray, memoryview)):
            data, shown = bytes(ref), "uploaded image"
        elif isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
            row = self.image(int(ref))
            if row is None:
                raise BadReferenceError(f"image {ref}: no such image in the collection")
            image_id, shown = int(ref), row["path"]
        elif isinstance(ref, (str, os.PathLike)):
            row = self.store.find(resolve(ref))
            if row is not None and row["skip_reason"] is not None:
                raise BadReferenceError(f"{display_path(os.fspath(ref))}: was skipped when "
                                        f"indexed ({row['skip_reason']})")
            if row is not None:
                image_id, shown = row["id"], row["path"]
            else:
                data, shown = self._outside_file(ref), display_path(os.path.abspath(ref))
        else:
            raise BadReferenceError(f"cannot explain {type(ref).__name__}: give an image id, "
                                    "a path or the bytes of an image file")
        if image_id is not None:
            row = self.image(image_id)
            try:
                data = read_catalogued(row["locator"], row["content_hash"]) if row else b""
            except OSError as exc:
                raise BadReferenceError(f"{shown}: cannot be read ({exc})") from None
        try:
            decoded = images.decode(data, size, reading=reading)
        except images.ImageSkipped as exc:
            raise BadReferenceError(f"{shown}: {exc.reason}") from None
        return ExplainedImage(name=shown, id=image_id, width=decoded.width,
                              height=decoded.height, pixels=decoded.pixels, data=data,
                              reading=reading)

    @staticmethod
    def _outside_file(ref: str | os.PathLike) -> bytes:
        """The bytes of an image file that is not in the collection."""
        shown = display_path(os.fspath(ref))
        if isinstance(ref, str) and is_url(ref):
            raise BadReferenceError(f"{shown}: not an image of the collection; a URL must be "
                                    "indexed first (or give a local file)")
        if not os.path.isfile(ref):
            what = "is a folder" if os.path.isdir(ref) else "no such file, and not in the " \
                                                            "collection"
            raise BadReferenceError(f"{shown}: {what}; give an image file")
        try:
            with open(ref, "rb") as f:
                return f.read()
        except OSError as exc:
            raise BadReferenceError(f"{shown}: cannot be read ({exc.strerror})") from None

    # -- duplicates ---------------------------------------------------------------------------

    def duplicates(self, tier: str = "near", threshold: float | None = None,
                   range: tuple[float, float] | None = None, model: str | None = None,
                   across: Collection | str | os.PathLike | None = None,
                   keep_priority: Sequence[str | os.PathLike] | None = None, *,
                   progress: bool | Callable[[int, int], None] = False
                   ) -> list[DuplicateGroup]:
        """Groups of copies, largest first (analysis/duplicates.py says how they are found).

        `tier`: "exact" (the same bytes), "pixels" (the same decoded pixels), "near" (edited
        copies: resized, re-encoded, cropped, brightened, mirrored, ...) or "similar" (the
        cosine distance alone). `threshold`, or `range` (lowest, highest): the cosine
        distances of the candidate pairs the tier checks (for "similar", of the pairs
        themselves). Each group's `keep` follows `choose_keeper`, with `keep_priority`
        folders last. Pairs marked with `mark_not_duplicates` are never grouped.
        `across`: another collection (or its database): then each group is an image of this
        one followed by its copies there (a train/test leak check), and `keep` is that image.
        `progress`: True for a bar on stderr, or a callback `progress(checked, total)` of the
        candidate pairs the tier's check has done (`near` and `pixels`, within a collection).
        """
        from .analysis import duplicates as dup
        from .progress import CountReporter

        dup.check_window(tier, threshold, range)  # a bad argument is named before any work
        vectors, hashes = self._duplicate_inputs(model, need=1 if across is not None else 2)
        if across is not None:
            return self._duplicates_across(across, vectors, hashes, tier, threshold, range)
        reporter = CountReporter("checking pairs", "pairs") if progress is True else None
        report = reporter if reporter is not None else progress if callable(progress) else None
        try:
            found = dup.find_duplicates(vectors, hashes, self._image_bytes, tier, threshold,
                                        range, self.store.not_duplicates(), progress=report)
        finally:
            if reporter is not None:
                reporter.close()
        priority = [os.fspath(f) for f in keep_priority or ()]
        groups = []
        for number, (members, distances) in enumerate(found, 1):
            rows = self.store.rows(members)
            groups.append(dup.DuplicateGroup(number, members, distances,
                                             dup.choose_keeper(rows, priority), rows))
        return groups

    def mark_not_duplicates(self, ids: Sequence[int], not_duplicates: bool = True) -> int:
        """Remember that these images are not copies of each other (every pair of them), so
        that `duplicates` never groups them again, also after re-indexing or moving the files
        (the decision is kept by content); `not_duplicates=False` forgets it. Returns how many
        pairs changed."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        hashes = self.store.content_hashes(wanted)
        if len(hashes) != len(wanted) or len(wanted) < 2:
            missing = sorted(set(wanted) - {r["id"] for r in self.store.rows(wanted)
                                            if r["skip_reason"] is None})
            raise LookalikeError(f"image {missing[0]}: not in the collection" if missing
                                 else "give at least two images")
        pairs = [(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1:]]
        return self.store.mark_not_duplicates(pairs, marked=not_duplicates)

    def move_script(self, groups: Sequence[DuplicateGroup], target: str | os.PathLike,
                    dismissed: Sequence[DuplicateGroup] = ()) -> bytes:
        """A POSIX shell script that, when the user runs it, moves each group's non-keepers
        (every member but `group.keep`: change it to keep another) into the folder `target`
        (an absolute path), keeping their sub-folders; `dismissed` groups are left alone.
        Files gone or changed since indexing are skipped, none is overwritten; nothing runs
        here (formats/decisions.py says what the script does)."""
        from .formats import decisions

        if any("collection" in r for g in groups for r in g.rows):
            raise LookalikeError("a move script is for the copies within one collection, not "
                                 "for copies found in another (across)")
        rows = decisions.decisions(groups, dismissed)
        locators = {r["id"]: self.store.usable_locator(r["id"]) for r in rows
                    if r["action"] in ("keep", "move")}
        return decisions.move_script(rows, target, locators, source=os.fspath(self.store.path))

    def _duplicate_inputs(self, model: str | None, need: int):
        """(Vectors, {id: content hash}) of `model`, refused with one line when there are
        fewer than `need` images."""
        from .analysis.duplicates import Vectors

        n = len(self)
        if n < need:
            raise LookalikeError(f"{self.store.path}: the collection is empty" if n == 0 else
                                 f"{self.store.path}: the collection has one image; copies "
                                 "need at least two")
        ids, index = self.engine.index(self._model(model))
        hash_ids, hashes = self.store.vector_hashes(self._model(model))
        by_id = dict(zip(hash_ids.tolist(), hashes.tolist()))
        return Vectors(ids, index.matrix), {int(i): by_id[int(i)] for i in ids if int(i) in by_id}

    def _duplicates_across(self, across, vectors, hashes, tier, threshold, window
                           ) -> list[DuplicateGroup]:
        from .analysis import copies, duplicates as dup

        other = across if isinstance(across, Collection) else Collection.open(across)
        theirs, their_hashes = other._duplicate_inputs(self._model(None), need=1)
        lo, hi = dup.check_window(tier, threshold, window)
        mine_read, their_read = self._image_bytes, other._image_bytes

        def check(a: int, b: int) -> bool:
            if tier == "exact":
                return hashes.get(a) == their_hashes.get(b)
            if tier == "similar":  # the distance alone, in the window already
                return True
            try:
                data_a, data_b = mine_read(a), their_read(b)
            except OSError:
                return False
            if tier == "pixels":
                return copies.same_pixels(data_a, data_b)
            return copies.copy_check(data_a, data_b).is_copy

        bound = dup.CANDIDATE_DISTANCE["pixels"] if tier == "exact" else hi
        found = dup.find_copies_across(vectors, theirs, check, lo=lo, hi=bound)
        where = os.fspath(other.store.path)
        groups = []
        for number, (mine, copies_there, distances) in enumerate(found, 1):
            rows = self.store.rows([mine]) + [dict(r, collection=where)
                                              for r in other.store.rows(copies_there)]
            groups.append(dup.DuplicateGroup(number, [mine, *copies_there],
                                             [0.0, *distances], mine, rows))
        if other is not across:
            other.close()
        return groups

    def _image_bytes(self, image_id: int) -> bytes:
        """The bytes of an image as indexed; OSError if it is gone or changed since."""
        from .ingest.originals import read_catalogued

        rows = self.store.rows([image_id])
        locator = self.store.usable_locator(image_id)
        if not rows or locator is None:
            raise OSError(f"image {image_id} is not in the collection")
        return read_catalogued(locator, rows[0]["content_hash"])

    # -- the map -------------------------------------------------------------------------------

    def map(self, model: str | None = None, method: str = "umap", refit: bool = False, *,
            seed: int = 0) -> MapLayout:
        """Every image of `model` (default: `default_model`) as a point of a 2-D map, laid out
        by `method`: "umap" (umap-learn), "tsne" (openTSNE) or "pca"; cosine-like (unit rows,
        reduced by PCA to 50 dimensions first). Deterministic for a `seed`.

        The map is kept beside the database (`<db>.maps/`) per model and method. Images
        added later are placed into it (the others stay where they are) and removed ones
        dropped, until more than a quarter of the images it was fitted on have been placed
        since (`analysis.maps.REFIT_SHARE`): then, or with `refit=True`, it is fitted again.
        The result's `action` says which ("fitted", "placed", "cached"), `placed` how many
        images were placed rather than fitted. Fewer than five images are laid out by PCA
        (`method` then says "pca"); one image sits at (0, 0); an empty collection is an error.
        """
        from .analysis.layout import METHODS

        if not isinstance(method, str) or method.lower() not in METHODS:
            near = nearest_names(str(method), list(METHODS), cutoff=0.5)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise LookalikeError(f"no map method {method!r}{hint}; use one of: "
                                 f"{', '.join(METHODS)}")
        method = method.lower()
        model = (model is None and self._model_of_kept_map(method, seed)) or self._model(model)
        key = (model, method, seed)
        if refit:
            fresh = self._lay_out(model, method, seed, refit=True)
            self._maps.clear()  # the next call reads the refitted files
            assert fresh is not None  # may_fit: never None
            return fresh
        computed = []

        def compute() -> MapLayout:
            computed.append(True)
            fresh = self._lay_out(model, method, seed)
            assert fresh is not None  # may_fit: never None
            return fresh
        known = self._maps.get(self.store.generation, key, compute)
        return known if computed else replace(known, action="cached", seconds=0.0)

    def _model_of_kept_map(self, method: str, seed: int) -> str | None:
        """The default model found without counting the models (seconds at a million images):
        the one last indexed with, when its map by `method` is kept and current (so made from
        its vectors at this catalogue generation). Else None."""
        from .analysis import maps
        from .catalogue.paths import maps_folder

        last = self.store.get_setting("last_model")
        if last and maps.current(maps_folder(self.store.path), last, method,
                                 self.store.generation, seed) is not None:
            return last
        return None

    def _lay_out(self, model: str, method: str, seed: int, refit: bool = False,
                 may_fit: bool = True) -> MapLayout | None:
        """The map of `model` by `method`, from `<db>.maps/` brought up to date (see `map`);
        None when `may_fit` is False and there is no usable stored map."""
        import time

        from .analysis import maps
        from .catalogue.paths import maps_folder

        start = time.perf_counter()
        generation = self.store.generation
        folder = maps_folder(self.store.path)
        stored = None if refit else maps.current(folder, model, method, generation, seed)
        if stored is not None:  # up to date: no need to load the ids, hashes or vectors
            return self._map_layout(stored, model, "cached", start)
        ids, index = self.engine.index(model)
        hash_ids, hashes = self.store.vector_hashes(model)
        if not np.array_equal(hash_ids, ids):  # the catalogue moved on: keep what both have
            keep = np.isin(ids, hash_ids)
            ids, rows = ids[keep], np.flatnonzero(keep)
            hashes = hashes[np.searchsorted(hash_ids, ids)]
        else:
            rows = None
        if len(ids) == 0:
            raise LookalikeError(f"{self.store.path}: the collection is empty")
        matrix = index.matrix

        def vectors(wanted):
            if rows is not None:
                wanted = rows if wanted is None else rows[wanted]
            return matrix if wanted is None else matrix[wanted]
        found = maps.bring_up_to_date(folder, model, method, ids, hashes, vectors, generation,
                                      refit=refit, may_fit=may_fit, seed=seed)
        if found is None:
            return None
        return self._map_layout(found[0], model, found[1], start)

    def _map_layout(self, stored, model: str, action: str, start: float) -> MapLayout:
        """A stored map (analysis/maps.py) as the MapLayout `map` answers, with the images'
        paths and categories."""
        import time

        paths, categories = self.store.paths_and_categories(stored.ids)
        return MapLayout(ids=stored.ids, x=stored.coords[:, 0], y=stored.coords[:, 1],
                         method=stored.method, model=model, fitted_on=stored.fitted_on,
                         placed=int(stored.placed.sum()), action=action,
                         seconds=time.perf_counter() - start, paths=paths,
                         categories=categories)

    def _existing_map(self, model: str) -> MapLayout | None:
        """The map of `model` last computed, brought up to date by placing (never fitting),
        or None if it has none: what an export adds as x and y."""
        from .analysis.maps import newest_method
        from .catalogue.paths import maps_folder

        method = newest_method(maps_folder(self.store.path), model)
        return None if method is None else self._lay_out(model, method, 0, may_fit=False)

    # -- the collection as a whole ---------------------------------------------------------------

    def analyze(self, model: str | None = None, clusters: str | int = "auto",
                sample: int | None = None) -> Analysis:
        """Clusters, typicality, outlier scores, quality flags and (with `sample`) a diverse
        sample of that many images, from the vectors of `model` (analysis/analyze.py says
        how). `clusters`: "auto" (HDBSCAN up to 20,000 images, else k-means) or a number of
        clusters for k-means. Stored in the collection, and reused until it changes."""
        from .analysis.analyze import analyze

        model = self._model(model)
        ids, matrix = self.vectors(model)
        return analyze(self.store, model, ids, matrix, clusters, sample)

    def sample(self, n: int, model: str | None = None) -> list[int]:
        """Ids of a diverse sample of `n` images (farthest-point selection from the most
        typical one), under the clusters last analysed (default "auto")."""
        from .analysis.analyze import stored_clusters

        model = self._model(model)
        return self.analyze(model, stored_clusters(self.store, model), sample=n).sample

    # -- export -------------------------------------------------------------------------------

    def export(self, path: str | os.PathLike, format: str | None = None, model: str | None = None,
               vectors: bool = True, *, progress: bool = False):
        """Write every usable image (skipped files are left out) to `path`: its catalogue
        columns (id, path, name, category, width, height, size, extras) and the vector of
        `model` (default: `default_model`); returns an `export.ExportReport`.

        `format` (default: from the extension): "csv" and "tab" (Orange's format, loadable as
        the output of Orange's Image Embedding) give the vector as columns f0..f{d-1};
        "json" and "parquet" as a `vector` list; "npz" holds the arrays `ids`, `vectors`,
        `paths` (and `model`). `vectors=False` writes the catalogue only. Images without a
        `model` vector are left out and counted in the report's `without_vector`.

        Once `map` has laid out `model`'s images, the columns `x` and `y` follow the
        catalogue's (not in npz): the map computed last, with images added since placed
        into it (an export never fits one).
        """
        from .formats.export import export_collection

        try:
            positions = self._existing_map(self._model(model))
        except LookalikeError:  # no such model: export_collection says so when it matters
            positions = None
        return export_collection(self, path, format, model, vectors, progress=progress,
                                 positions=positions)

    # -- browsing (what the web viewer shows) -------------------------------------------------

    def images(self, offset: int = 0, limit: int | None = 100, category: str | None = None,
               name: str | None = None, *, sort: str = "id", cluster: int | None = None,
               flag: str | None = None, ids: Sequence[int] | None = None,
               model: str | None = None, tag: str | None = None) -> tuple[int, list[dict]]:
        """(how many usable images match, one page of their catalogue rows).

        `category` keeps that sub-folder and its own sub-folders (as `nearest` does); `name`
        keeps images whose name contains it (case-insensitive for ASCII letters); `flag`
        keeps those with one of the quality flags (analysis.quality.FLAGS: "blurry", "dark",
        ...; images whose pixels were never measured have none); `ids` keeps only these
        images (a selection, e.g. a lasso on the map). `sort`: "id" (id order) or "outlier"
        (most unusual first: the highest outlier score of `analyze`); `cluster` keeps one of
        the clusters of `analyze` (-1: the images in none). Both read the analysis of `model`
        (default: `default_model`) stored for the collection as it is now; without one they
        are an error that says to run `analyze`. `tag` keeps the images tagged with its words
        (see `tagged`; the tags of `model`). The catalogue sorts and filters, so pages cost
        about the same at any offset.
        """
        what = self._browse(category, name, sort, cluster, flag, ids, model, tag)
        total = self._counted(("images", what, self._analysis_key(what)),
                              lambda: self.store.count_browsed(what))
        return total, self.store.rows(self.store.browse(offset, limit, what))

    def position(self, image_id: int, category: str | None = None,
                 name: str | None = None, *, sort: str = "id", cluster: int | None = None,
                 flag: str | None = None, ids: Sequence[int] | None = None,
                 model: str | None = None, tag: str | None = None) -> int | None:
        """The offset of an image among `images(...)` with the same arguments (what the
        viewer's grid needs to scroll to it), or None if the image is not among them."""
        what = self._browse(category, name, sort, cluster, flag, ids, model, tag)
        return self.store.browse_position(image_id, what)

    def _browse(self, category, name, sort, cluster, flag, ids, model, tag=None):
        from .analysis.browse import browse_filter

        tag_model = self._model(model) if tag else None
        if sort != "id" or cluster is not None:
            model = self._model(model)
        return browse_filter(self.store, category=category, name=name, sort=sort,
                             cluster=cluster, flag=flag, ids=ids, model=model, tag=tag,
                             tag_model=tag_model)

    def _analysis_key(self, what) -> str | None:
        """What a count of `what` depends on beside the generation: the analysis it reads
        (writing one leaves the generation as it is)."""
        from .analysis.analyze import current_settings

        return current_settings(self.store, what.model) if what.model else None

    def categories(self) -> dict[str, int]:
        """Every category with its number of usable images, its sub-folders' included
        (so "animals" counts "animals/cats"), sorted by name."""
        def count() -> dict[str, int]:
            counts: dict[str, int] = {}
            for category, n in self.store.category_counts().items():
                parts = category.split("/")
                for depth in range(1, len(parts) + 1):
                    key = "/".join(parts[:depth])
                    counts[key] = counts.get(key, 0) + n
            return dict(sorted(counts.items()))
        return dict(self._counted("categories", count))

    # -- tags ---------------------------------------------------------------------------------

    def tagged(self, words: str | Sequence[str], *, k: int | None = None,
               model: str | None = None) -> list[dict]:
        """Images by the ImageNet classes their model's classifier saw in them, best first:
        catalogue rows with `score` (the probability of the classes matched, summed) and the
        `tags` that matched ({"name", "synonyms", "score"}).

        `words` name classes by any of their synonyms or by a WordNet noun above them ("cat",
        "tabby cat", "dog" for every breed, "coffee" for espresso), case and plurals aside;
        several names find the images with any of them. Not CLIP: only the 1,000 ImageNet
        classes are known. A word that names no class raises `UnknownTagWord` with the
        nearest names. The tags are those of `model` (default: `default_model`), kept while
        indexing; a user's own model has none."""
        from .analysis.tags import tagged_images

        check_k(k)
        words = [words] if isinstance(words, str) else list(words)
        return tagged_images(self.store, self._model(model), words, k)

    def tags(self, image: int | str | os.PathLike, *, model: str | None = None) -> list[dict]:
        """One image's tags ({"name", "synonyms", "score"}), most likely first: the image by
        id, or by its path or URL as indexed."""
        from .analysis.tags import image_tags, tags_needed

        model = self._model(model)
        image_id = self._image_id(image)
        tags_needed(self.store, model)
        return image_tags(self.store, image_id, model)

    def _image_id(self, image: int | str | os.PathLike) -> int:
        if isinstance(image, bool):
            raise BadReferenceError(f"image must be an id or a path, not {image!r}")
        if isinstance(image, (int, np.integer)):
            row = self.image(int(image))
            shown = f"image {image}"
        else:
            row = self.store.find(resolve(image))
            shown = display_path(os.fspath(image))
        if row is None or row.get("skip_reason") is not None:
            raise BadReferenceError(f"{shown}: not a usable image of {self.store.path}; give "
                                    "the path it was indexed under, or its id")
        return int(row["id"])

    def image(self, image_id: int) -> dict | None:
        """The catalogue row of one usable image by id, with its `locator` (the file path's
        bytes, or a URL), or None if there is no such image."""
        locator = self.store.usable_locator(image_id)
        rows = self.store.rows([int(image_id)]) if locator is not None else []
        return dict(rows[0], locator=locator) if rows else None

    def sample_type(self, image_id: int) -> str:
        """The type of an image's samples as NumPy names it ("uint8", "uint16", "float32",
        ...), from its header: images of other than 8-bit samples are shown through a display
        window (`ReadingOptions.window`; the viewer's preview lets one change it). OSError if
        its file is gone or changed since it was indexed; ImageSkipped if it cannot be read."""
        return images.sample_type(self._image_bytes(image_id))


__all__ = ["Analysis", "Collection", "DuplicateGroup", "ImportReport", "MapLayout", "Neighbors",
           "BadReferenceError", "UnknownCategory", "RECORD_FIELDS", "DEFAULT_K", "DEFAULT_METRIC"]
