"""The SQLite file that holds a collection: its catalogue of images and the embedding cache.

Images are identified by their locator (the raw bytes of an absolute path, or a URL); the
other columns of a table source ride along as `extras`, a JSON object.
Embeddings are keyed by (content hash, model), so a renamed or copied file is not embedded
again. The schema is versioned with `PRAGMA user_version` and upgraded by `MIGRATIONS`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from ..errors import LookalikeError


def extras_dict(extras: str | bytes | dict | None) -> dict:
    """The `extras` of an image (a table source's other columns, plate columns...) as a dict:
    the JSON object text the catalogue keeps, or a dict already read; {} when there is none
    or it is not a JSON object."""
    if isinstance(extras, (str, bytes)) and extras:
        try:
            extras = json.loads(extras)
        except ValueError:
            return {}
    return dict(extras) if isinstance(extras, dict) else {}


SCHEMA_VERSION = 6

#: Statements that take a database from version N-1 to N, by N.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE images (
        id           INTEGER PRIMARY KEY,
        locator      BLOB NOT NULL UNIQUE,  -- os.fsencode(absolute path), or a URL
        path         TEXT NOT NULL,         -- the locator for display
        root         TEXT,                  -- the folder the user indexed
        name         TEXT,                  -- file stem (Orange's "image name")
        category     TEXT,                  -- sub-folder relative to root
        size         INTEGER,               -- bytes
        mtime_ns     INTEGER,
        width        INTEGER,
        height       INTEGER,
        content_hash BLOB,                  -- blake2b-128 of the file bytes
        skip_reason  TEXT,                  -- NULL for a usable image
        indexed_at   REAL NOT NULL
    );
    CREATE INDEX images_content_hash ON images(content_hash);
    CREATE INDEX images_root ON images(root);
    CREATE TABLE embeddings (
        content_hash BLOB NOT NULL,
        model        TEXT NOT NULL,
        vector       BLOB NOT NULL,         -- float32, little-endian
        PRIMARY KEY (content_hash, model)
    ) WITHOUT ROWID;
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # Embedding rows hold their vector inline, so counting or listing a model's hashes read
    # every blob (2.5 s at 100k images); this index answers them without touching vectors.
    2: """
    CREATE INDEX embeddings_model ON embeddings(model, content_hash);
    """,
    # Collections read from a table keep its other columns with each image (JSON object
    # text, keys in the table's column order); NULL for images found in folders. The partial
    # index lets "which columns are there" skip the folder images without reading them.
    3: """
    ALTER TABLE images ADD COLUMN extras TEXT;
    CREATE INDEX images_with_extras ON images(id) WHERE extras IS NOT NULL;
    """,
    # Pairs of images a person said are not copies of each other (`duplicates` leaves them
    # apart), by content hash, smaller first: the decision outlives re-indexing, renames
    # and moves.
    4: """
    CREATE TABLE not_duplicates (
        hash_a    BLOB NOT NULL,
        hash_b    BLOB NOT NULL,
        marked_at REAL NOT NULL,
        PRIMARY KEY (hash_a, hash_b)
    ) WITHOUT ROWID;
    """,
    # What `analyze` reads: each content's pixel measures (analysis/quality.py), taken while
    # indexing from the pixels decoded anyway, and per model each image's cluster, typicality,
    # outlier score and place in the diverse sample (`analysis:MODEL` in settings says for
    # which catalogue generation and settings). Databases made before get the measures of
    # their images when `analyze` first runs; nothing existing is changed.
    5: """
    CREATE TABLE image_quality (
        content_hash BLOB PRIMARY KEY,
        sharpness    REAL NOT NULL,         -- variance of the Laplacian, grey 0..255
        darkest      REAL NOT NULL,         -- 1st percentile of grey, 0..1
        brightest    REAL NOT NULL,         -- 99th percentile of grey, 0..1
        entropy      REAL NOT NULL,         -- of the 256-bin grey histogram, bits
        colour       REAL NOT NULL          -- mean (max - min) over R, G, B, 0..255
    ) WITHOUT ROWID;
    CREATE TABLE analysis (
        model        TEXT NOT NULL,
        image_id     INTEGER NOT NULL,
        cluster      INTEGER NOT NULL,      -- -1: noise (in no cluster)
        typicality   REAL NOT NULL,         -- 0..1
        outlier      REAL NOT NULL,         -- cosine distance to the k-th nearest neighbour
        sample_rank  INTEGER,               -- place in the diverse sample from 0, NULL after
        PRIMARY KEY (model, image_id)
    ) WITHOUT ROWID;
    """,
    # Each content's top ImageNet classes by a model with a classifier (analysis/tags.py
    # chooses them: the first always, up to five above a floor), taken while embedding:
    # the default model's GeM features do not give its average-pooled head's classes
    # (README, "Tags"). Searching by tag reads the index by (model, class).
    6: """
    CREATE TABLE tags (
        content_hash BLOB NOT NULL,
        model        TEXT NOT NULL,
        class        INTEGER NOT NULL,      -- ImageNet-1k class index, 0..999
        score        REAL NOT NULL,         -- softmax probability, 0..1
        PRIMARY KEY (content_hash, model, class)
    ) WITHOUT ROWID;
    CREATE INDEX tags_by_class ON tags(model, class);
    """,
}

#: Usable images that have a vector of model `?`: the rows of a model's search matrix.
_USABLE_WITH_VECTOR = ("FROM images i JOIN embeddings e ON e.content_hash = i.content_hash"
                       " WHERE e.model = ? AND i.skip_reason IS NULL")

#: The pixel measures of table image_quality (analysis/quality.py computes them).
QUALITY_COLUMNS = ("sharpness", "darkest", "brightest", "entropy", "colour")

IMAGE_COLUMNS = ("id", "path", "root", "name", "category", "size", "mtime_ns", "width", "height",
                 "content_hash", "skip_reason", "indexed_at", "extras")


@dataclass(frozen=True)
class Browse:
    """Which usable images `Store.browse` pages through, and in which order.

    `category` (with its sub-folders); `name`: a part of the name (case-insensitive for ASCII
    letters); `ids`: only these; `flag`: a quality flag's rule (analysis.quality.flag_rule:
    alternatives of conditions on the pixel measures, "area" or "aspect"); `model`: whose
    stored analysis `cluster` (only that cluster, -1 the noise) and `sort="outlier"` (highest
    outlier score first, then by id) read. `sort="id"` is id order. `tag_classes`: only
    images that `tag_model` tagged with one of these ImageNet classes."""

    category: str | None = None
    name: str | None = None
    ids: tuple[int, ...] | None = None
    flag: tuple[tuple[tuple[str, str, float], ...], ...] | None = None
    model: str | None = None
    cluster: int | None = None
    sort: str = "id"
    tag_model: str | None = None
    tag_classes: tuple[int, ...] | None = None


class StoreError(LookalikeError):
    """The database file cannot be used."""


#: The content hash of an image whose vectors were imported (`Collection.add_vectors`):
#: its bytes were never read, so it is keyed by its locator instead, under a prefix no
#: blake2b digest of file bytes is expected to start with (a chance of 2**-72).
IMPORTED_HASH_PREFIX = b"\x00imported"


def imported_hash(locator: bytes) -> bytes:
    """The 16-byte content hash of an image known only by its imported vectors."""
    import hashlib

    return IMPORTED_HASH_PREFIX + hashlib.blake2b(locator, digest_size=7).digest()


def is_imported_hash(content_hash: bytes | None) -> bool:
    """Whether a content hash is an `imported_hash` (no bytes were read to make it)."""
    return content_hash is not None and content_hash.startswith(IMPORTED_HASH_PREFIX)


def default_db_path() -> Path:
    """`$LOOKALIKE_DB`, else lookalike.db in the user data folder."""
    env = os.environ.get("LOOKALIKE_DB")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("lookalike")) / "lookalike.db"


@dataclass(frozen=True)
class KnownFile:
    """What the catalogue remembers of a file, to tell whether it changed."""

    id: int
    size: int | None
    mtime_ns: int | None
    content_hash: bytes | None
    skip_reason: str | None
    root: str | None = None
    name: str | None = None
    category: str | None = None
    extras: str | None = None


@dataclass
class ImageRow:
    """One catalogue row to write."""

    locator: bytes
    path: str
    root: str | None
    name: str | None
    category: str | None
    size: int | None
    mtime_ns: int | None
    width: int | None = None
    height: int | None = None
    content_hash: bytes | None = None
    skip_reason: str | None = None
    extras: str | None = None  # JSON object text: a table source's other columns


class Store:
    """An open collection database. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else default_db_path()
        if not self.path.exists():
            if not create:
                raise StoreError(f"{self.path}: no collection there; index some images first "
                                 f"(lookalike index FOLDER --db {self.path})")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot create its folder ({exc.strerror})") from None
        elif self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a database file")
        # One connection per thread: a web server answers requests from several threads,
        # and SQLite (in WAL mode) lets them all read at once while an indexer writes.
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        try:
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # pragma: no cover - e.g. a read-only file system
                pass
            self._migrate()
        except StoreError:
            self.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path}: not a lookalike database ({exc})") from None

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            # In WAL mode NORMAL is safe against application crashes (kill -9 loses only
            # the open transaction); only a power cut may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: made by a newer version of lookalike (schema {version}; this "
                f"version reads up to {SCHEMA_VERSION}); upgrade lookalike to use it")
        if version == 0 and self._has_foreign_tables():
            raise StoreError(f"{self.path}: an SQLite file that is not a lookalike database")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction():
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {target}")

    def _has_foreign_tables(self) -> bool:
        return self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] > 0

    def transaction(self):
        """A context manager for one write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        return _Transaction(self.conn, self.path)

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    # -- settings ---------------------------------------------------------------------------

    @overload
    def get_setting(self, key: str, default: str) -> str: ...
    @overload
    def get_setting(self, key: str, default: None = None) -> str | None: ...

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        held = getattr(self._local, "settings", None)  # inside a snapshot: read once
        if held is not None and key in held:
            value = held[key]
        else:
            row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            value = row[0] if row else None
            if held is not None:
                held[key] = value
        return default if value is None else value

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():
            self.conn.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- catalogue --------------------------------------------------------------------------

    def known_files(self) -> dict[bytes, KnownFile]:
        """Every catalogued file by locator."""
        cur = self.conn.execute(
            "SELECT locator, id, size, mtime_ns, content_hash, skip_reason, root, name, category,"
            " extras FROM images")
        return {row[0]: KnownFile(*row[1:]) for row in cur}

    def hashes_with_embedding(self, model: str) -> set[bytes]:
        cur = self.conn.execute("SELECT content_hash FROM embeddings WHERE model = ?", (model,))
        return {row[0] for row in cur}

    def write(self, rows: Sequence[ImageRow],
              embeddings: Iterable[tuple[bytes, str, np.ndarray]] = (),
              quality: Iterable[tuple[bytes, Sequence[float]]] = (),
              tags: Iterable[tuple[bytes, str, int, float]] = ()) -> None:
        """Add or update catalogue rows, cache embeddings, pixel measures (content hash,
        QUALITY_COLUMNS values) and tags (content hash, model, class, score), all in one
        transaction."""
        now = time.time()
        vectors = [(h, m, np.ascontiguousarray(v, dtype="<f4").tobytes()) for h, m, v in embeddings]
        tags = list(tags)
        with self.transaction():
            self._write_quality(quality)
            self._write_tags(tags)
            self.conn.executemany(
                "INSERT INTO embeddings(content_hash, model, vector) VALUES (?, ?, ?) "
                "ON CONFLICT(content_hash, model) DO UPDATE SET vector = excluded.vector",
                vectors)
            self.conn.executemany(
                "INSERT INTO images(locator, path, root, name, category, size, mtime_ns, width,"
                " height, content_hash, skip_reason, indexed_at, extras)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(locator) DO UPDATE SET path = excluded.path, root = excluded.root,"
                " name = excluded.name, category = excluded.category, size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, width = excluded.width, height = excluded.height,"
                " content_hash = excluded.content_hash, skip_reason = excluded.skip_reason,"
                " indexed_at = excluded.indexed_at, extras = excluded.extras",
                [(r.locator, r.path, r.root, r.name, r.category, r.size, r.mtime_ns, r.width,
                  r.height, r.content_hash, r.skip_reason, now, r.extras) for r in rows])
            if rows or vectors or tags:  # an empty batch (a run with nothing new) changes nothing
                self._bump_generation()

    def update_metadata(self, updates: Sequence[tuple[bytes, str | None, str | None, str | None,
                                                      str | None]]) -> None:
        """Set (root, name, category, extras) of catalogued locators, given as
        (locator, root, name, category, extras): a table row whose image is unchanged but
        whose other columns changed is updated without touching its pixels."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE images SET root = ?, name = ?, category = ?, extras = ? WHERE locator = ?",
                [(root, name, category, extras, loc)
                 for loc, root, name, category, extras in updates])
            self._bump_generation()

    def remove(self, ids: Iterable[int]) -> int:
        """Drop catalogue rows (their cached embeddings stay, for files that come back)."""
        ids = list(ids)
        with self.transaction():
            self.conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
            self._bump_generation()
        return len(ids)

    def _bump_generation(self) -> None:
        self.conn.execute("INSERT INTO settings(key, value) VALUES ('generation', '1') "
                          "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    @property
    def generation(self) -> int:
        """A counter that changes with every write to the catalogue or the vectors, so that
        caches derived from them (the search matrix) know when they are stale."""
        return int(self.get_setting("generation", "0"))

    def ids_under(self, folder: bytes) -> dict[bytes, int]:
        """Catalogued locators inside a folder (given as path bytes), with their ids."""
        prefix = folder.rstrip(b"/") + b"/"
        upper = prefix[:-1] + b"0"  # "0" sorts just after "/"
        cur = self.conn.execute(
            "SELECT locator, id FROM images WHERE locator >= ? AND locator < ?", (prefix, upper))
        return dict(cur.fetchall())

    def ids_from_root(self, root: str) -> dict[bytes, int]:
        """Catalogued locators last indexed from `root` (e.g. a table file), with their ids."""
        cur = self.conn.execute("SELECT locator, id FROM images WHERE root = ?", (root,))
        return dict(cur.fetchall())

    def has_extras(self) -> bool:
        """Whether any image carries extra columns from a table source."""
        return self.conn.execute(
            "SELECT 1 FROM images WHERE extras IS NOT NULL AND extras != '{}' LIMIT 1"
        ).fetchone() is not None

    def extra_columns(self) -> list[str]:
        """The names of the extra columns of usable images, roughly in table order."""
        cur = self.conn.execute(
            "SELECT j.key FROM images i, json_each(i.extras) j WHERE i.extras IS NOT NULL"
            " AND i.skip_reason IS NULL GROUP BY j.key ORDER BY min(i.id), min(j.id)")
        return [row[0] for row in cur]

    def count_images(self, *, usable_only: bool = False) -> int:
        sql = "SELECT count(*) FROM images"
        if usable_only:
            sql += " WHERE skip_reason IS NULL"
        return self.conn.execute(sql).fetchone()[0]

    def models(self) -> dict[str, int]:
        """Models with vectors for catalogued images, and how many images each covers."""
        cur = self.conn.execute(
            "SELECT e.model, count(*) FROM images i JOIN embeddings e "
            "ON e.content_hash = i.content_hash WHERE i.skip_reason IS NULL GROUP BY e.model")
        return dict(cur.fetchall())

    def skipped(self) -> list[dict]:
        cur = self.conn.execute(
            "SELECT path, skip_reason FROM images WHERE skip_reason IS NOT NULL ORDER BY path")
        return [{"path": p, "reason": r} for p, r in cur]

    def find(self, locator: bytes) -> dict | None:
        """The catalogue row of a locator, as a dict of IMAGE_COLUMNS."""
        row = self.conn.execute(
            f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE locator = ?", (locator,)
        ).fetchone()
        return dict(zip(IMAGE_COLUMNS, row)) if row else None

    def rows(self, ids: Sequence[int]) -> list[dict]:
        """Catalogue rows for image ids, in the order given."""
        out: dict[int, dict] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 900):  # SQLite's parameter limit
            chunk = ids[start:start + 900]
            marks = ",".join("?" * len(chunk))
            cur = self.conn.execute(
                f"SELECT {', '.join(IMAGE_COLUMNS)} FROM images WHERE id IN ({marks})", chunk)
            for row in cur:
                out[row[0]] = dict(zip(IMAGE_COLUMNS, row))
        return [out[i] for i in ids if i in out]

    def paths_and_categories(self, ids: np.ndarray, scan_from: int = 20_000
                             ) -> tuple[list[str], list[str | None]]:
        """The path and category of each of the sorted image `ids`: from one scan of the table
        when `scan_from` or more are asked (a million in 2 s rather than 9 s by chunks of
        ids), else (or if an id is not in the table) as `rows` finds them."""
        if len(ids) >= scan_from:
            rows = self.conn.execute("SELECT id, path, category FROM images ORDER BY id")
            every = rows.fetchall()
            known = np.fromiter((r[0] for r in every), np.int64, len(every))
            at = np.minimum(np.searchsorted(known, ids), max(len(known) - 1, 0))
            if np.array_equal(known[at], ids):
                return [every[k][1] for k in at.tolist()], [every[k][2] for k in at.tolist()]
        found = self.rows(np.asarray(ids).tolist())
        return [r["path"] for r in found], [r["category"] for r in found]

    def vectors(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, float32 matrix) of every usable image that has a `model` vector."""
        ids: list[int] = []
        blobs: list[bytes] = []
        for image_id, blob in self.iter_vectors(model):
            ids.append(image_id)
            blobs.append(blob)
        if not blobs:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        return np.asarray(ids, np.int64), matrix.astype(np.float32, copy=False)

    def iter_vectors(self, model: str):
        """(image id, raw float32 bytes) of every usable image with a `model` vector, by id."""
        return self.conn.execute(
            f"SELECT i.id, e.vector {_USABLE_WITH_VECTOR} ORDER BY i.id", (model,))

    def vector_hashes(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, content hashes as 'S16') of the rows `iter_vectors` gives, by id."""
        cur = self.conn.execute(
            f"SELECT i.id, i.content_hash {_USABLE_WITH_VECTOR} ORDER BY i.id", (model,))
        rows = cur.fetchall()
        return (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                np.array([r[1] for r in rows], dtype="S16"))

    def count_vectors(self, model: str) -> int:
        return self.conn.execute(
            f"SELECT count(*) {_USABLE_WITH_VECTOR}", (model,)).fetchone()[0]

    def vector_dim(self, model: str) -> int | None:
        """The length of `model`'s vectors of usable images, None if it has none."""
        row = self.conn.execute(f"SELECT length(e.vector) {_USABLE_WITH_VECTOR} LIMIT 1",
                                (model,)).fetchone()
        return None if row is None else row[0] // 4

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]


    # -- what the Python API asks (browsing, filters, credits) ----------------------------------

    def usable_ids(self, category: str | None = None, path_prefix: str | None = None) -> np.ndarray:
        """Ids of the usable images, by id; only those in `category` (or its sub-folders) and
        whose path starts with `path_prefix` (taken literally) when given."""
        sql = "SELECT id FROM images WHERE skip_reason IS NULL"
        args: list[str] = []
        if category is not None:
            sql, args = sql + _CATEGORY_CLAUSE, args + _category_args(category)
        if path_prefix is not None:
            sql += " AND path LIKE ? ESCAPE '\\'"
            args.append(_like_escape(path_prefix) + "%")
        return np.fromiter((r[0] for r in self.conn.execute(sql + " ORDER BY id", args)), np.int64)

    def count_browsed(self, what: Browse = Browse()) -> int:
        """How many usable images `browse` can page through with this filter."""
        tables, where, args = _browse_filter(what)
        return self.conn.execute(f"SELECT count(*) FROM {tables} WHERE {where}",
                                 args).fetchone()[0]

    def browse(self, offset: int, limit: int | None, what: Browse = Browse()) -> list[int]:
        """One page of usable image ids, filtered and ordered as `what` says (see Browse)."""
        tables, where, args = _browse_filter(what)
        return [r[0] for r in self.conn.execute(
            f"SELECT i.id FROM {tables} WHERE {where} ORDER BY {_browse_order(what)}"
            " LIMIT ? OFFSET ?",
            args + [-1 if limit is None else int(limit), max(0, int(offset))])]

    def browse_position(self, image_id: int, what: Browse = Browse()) -> int | None:
        """The offset of an image among `browse`'s ids with this filter, None if not there."""
        tables, where, args = _browse_filter(what)
        # the id last: the joined tables' arguments come first
        if self.conn.execute(f"SELECT 1 FROM {tables} WHERE {where} AND i.id = ?",
                             args + [int(image_id)]).fetchone() is None:
            return None
        if what.sort == "id":
            return self.conn.execute(f"SELECT count(*) FROM {tables} WHERE {where} AND i.id < ?",
                                     args + [int(image_id)]).fetchone()[0]
        return self.conn.execute(
            f"SELECT place FROM (SELECT i.id AS id, row_number() OVER (ORDER BY "
            f"{_browse_order(what)}) - 1 AS place FROM {tables} WHERE {where}) WHERE id = ?",
            args + [int(image_id)]).fetchone()[0]

    def median_area(self) -> float:
        """The median width x height of the usable images whose size is known (0: none)."""
        known = "FROM images WHERE skip_reason IS NULL AND width > 0 AND height > 0"
        n = self.conn.execute(f"SELECT count(*) {known}").fetchone()[0]
        if not n:
            return 0.0
        middle = [r[0] for r in self.conn.execute(
            f"SELECT width * height AS area {known} ORDER BY area LIMIT ? OFFSET ?",
            (2 - n % 2, (n - 1) // 2))]
        return float(sum(middle)) / len(middle)

    def category_counts(self) -> dict[str, int]:
        """Usable images per category as stored (sub-folders not added to their parents)."""
        return dict(self.conn.execute(
            "SELECT category, count(*) FROM images WHERE skip_reason IS NULL "
            "AND category IS NOT NULL GROUP BY category"))

    def usable_locator(self, image_id: int) -> bytes | str | None:
        """The locator (file path bytes, or URL) of a usable image, None if there is none."""
        found = self.conn.execute(
            "SELECT locator FROM images WHERE id = ? AND skip_reason IS NULL",
            (int(image_id),)).fetchone()
        return found[0] if found else None

    def content_hashes(self, ids: Sequence[int]) -> list[bytes]:
        """The content hashes of usable images, in the order given (unknown ids left out)."""
        by_id = {r["id"]: r["content_hash"] for r in self.rows(ids) if r["skip_reason"] is None}
        return [by_id[int(i)] for i in ids if int(i) in by_id]

    def mark_not_duplicates(self, pairs: Iterable[tuple[bytes, bytes]], marked: bool = True) -> int:
        """Record (or with `marked=False`, forget) pairs of content hashes that are not copies
        of each other; returns how many changed."""
        ordered = sorted({(min(a, b), max(a, b)) for a, b in pairs})
        with self.transaction():
            before = self.conn.total_changes
            if marked:
                now = time.time()
                self.conn.executemany(
                    "INSERT OR IGNORE INTO not_duplicates(hash_a, hash_b, marked_at) "
                    "VALUES (?, ?, ?)", [(a, b, now) for a, b in ordered])
            else:
                self.conn.executemany(
                    "DELETE FROM not_duplicates WHERE hash_a = ? AND hash_b = ?", ordered)
            return self.conn.total_changes - before

    def not_duplicates(self) -> list[tuple[bytes, bytes]]:
        """Every pair of content hashes marked as not copies, smaller first."""
        return [(a, b) for a, b in self.conn.execute(
            "SELECT hash_a, hash_b FROM not_duplicates ORDER BY hash_a, hash_b")]

    # -- tags ---------------------------------------------------------------------------------

    def _write_tags(self, tags: Iterable[tuple[bytes, str, int, float]]) -> None:
        rows = [(h, m, int(c), float(score)) for h, m, c, score in tags]
        # a content tagged again (indexed anew) keeps only its new classes
        self.conn.executemany("DELETE FROM tags WHERE content_hash = ? AND model = ?",
                              list({(h, m) for h, m, _, _ in rows}))
        self.conn.executemany("INSERT INTO tags(content_hash, model, class, score)"
                              " VALUES (?, ?, ?, ?)", rows)

    def hashes_with_tags(self, model: str) -> set[bytes]:
        """The contents that have tags of `model`."""
        cur = self.conn.execute("SELECT DISTINCT content_hash FROM tags WHERE model = ?",
                                (model,))
        return {row[0] for row in cur}

    def count_tagged(self, model: str) -> int:
        """How many usable images have tags of `model`."""
        return self.conn.execute(
            "SELECT count(*) FROM images i WHERE i.skip_reason IS NULL AND EXISTS"
            " (SELECT 1 FROM tags t WHERE t.content_hash = i.content_hash AND t.model = ?)",
            (model,)).fetchone()[0]

    def tagged(self, model: str, classes: Iterable[int]) -> list[tuple[int, int, float]]:
        """(image id, class, score) of the usable images tagged by `model` with one of
        `classes`, by id."""
        return self.conn.execute(
            "SELECT i.id, t.class, t.score FROM tags t JOIN images i"
            " ON i.content_hash = t.content_hash WHERE t.model = ? AND i.skip_reason IS NULL"
            " AND t.class IN (SELECT value FROM json_each(?)) ORDER BY i.id, t.class",
            (model, _json_ints(classes))).fetchall()

    def tags_of(self, image_id: int, model: str) -> list[tuple[int, float]]:
        """(class, score) of one image's tags by `model`, highest score first."""
        return self.conn.execute(
            "SELECT t.class, t.score FROM images i JOIN tags t ON t.content_hash ="
            " i.content_hash WHERE i.id = ? AND t.model = ? ORDER BY t.score DESC, t.class",
            (int(image_id), model)).fetchall()

    # -- pixel measures and analyses ---------------------------------------------------------

    def _write_quality(self, quality: Iterable[tuple[bytes, Sequence[float]]]) -> None:
        self.conn.executemany(
            f"INSERT OR REPLACE INTO image_quality(content_hash, {', '.join(QUALITY_COLUMNS)})"
            " VALUES (?, ?, ?, ?, ?, ?)", [(h, *map(float, values)) for h, values in quality])

    def write_quality(self, quality: Iterable[tuple[bytes, Sequence[float]]]) -> None:
        """Store pixel measures by content hash; derived data: the generation stays."""
        with self.transaction():
            self._write_quality(quality)

    def quality(self, ids: Sequence[int]) -> np.ndarray:
        """QUALITY_COLUMNS of images by id, in the order given: NaN where not measured."""
        out = np.full((len(ids), len(QUALITY_COLUMNS)), np.nan)
        where = {int(i): n for n, i in enumerate(ids)}
        wanted = list(where)
        for start in range(0, len(wanted), 900):  # SQLite's parameter limit
            chunk = wanted[start:start + 900]
            cur = self.conn.execute(
                f"SELECT i.id, {', '.join('q.' + c for c in QUALITY_COLUMNS)} FROM images i"
                " JOIN image_quality q ON q.content_hash = i.content_hash"
                f" WHERE i.id IN ({','.join('?' * len(chunk))})", chunk)
            for image_id, *values in cur:
                out[where[image_id]] = values
        return out

    def unmeasured(self) -> list[tuple[int, bytes | str, bytes]]:
        """(id, locator, content hash) of usable images whose pixels were never measured
        (indexed before schema 5)."""
        cur = self.conn.execute(
            "SELECT i.id, i.locator, i.content_hash FROM images i LEFT JOIN image_quality q"
            " ON q.content_hash = i.content_hash WHERE i.skip_reason IS NULL"
            " AND i.content_hash IS NOT NULL AND q.content_hash IS NULL ORDER BY i.id")
        return cur.fetchall()

    def write_analysis(self, model: str, ids: np.ndarray, cluster: np.ndarray,
                       typicality: np.ndarray, outlier: np.ndarray, sample_rank: np.ndarray,
                       settings: str) -> None:
        """Replace the stored analysis of `model` (`settings`: JSON text that says for which
        generation and options); derived data: the generation stays."""
        ranks = [None if r < 0 else int(r) for r in sample_rank]
        with self.transaction():
            self.conn.execute("DELETE FROM analysis WHERE model = ?", (model,))
            self.conn.executemany(
                "INSERT INTO analysis(model, image_id, cluster, typicality, outlier, sample_rank)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                zip([model] * len(ids), ids.tolist(), cluster.tolist(), typicality.tolist(),
                    outlier.tolist(), ranks))
            self.conn.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                              ("analysis:" + model, settings))

    def read_analysis(self, model: str) -> tuple[str, dict[str, np.ndarray]] | None:
        """(settings JSON, columns image_id, cluster, typicality, outlier, sample_rank (-1:
        none)) of the stored analysis of `model`, by image id; None if there is none."""
        settings = self.get_setting("analysis:" + model)
        if settings is None:
            return None
        rows = self.conn.execute(
            "SELECT image_id, cluster, typicality, outlier, coalesce(sample_rank, -1)"
            " FROM analysis WHERE model = ? ORDER BY image_id", (model,)).fetchall()
        names = ("image_id", "cluster", "typicality", "outlier", "sample_rank")
        kinds = (np.int64, np.int64, np.float64, np.float64, np.int64)
        return settings, {name: np.array([r[n] for r in rows], kind)
                          for n, (name, kind) in enumerate(zip(names, kinds))}

    def attribution_notes(self) -> dict[str, str]:
        """Credits recorded when indexing, by the folder whose ATTRIBUTION.txt gave them."""
        return {k[len("attribution:"):]: v for k, v in self.conn.execute(
            "SELECT key, value FROM settings WHERE key LIKE 'attribution:%'")}

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: what this thread reads inside it comes from one state of the
        catalogue, and each setting (the generation, say) is read once. An inner snapshot is
        the outer one; nothing can be written inside."""
        if getattr(self._local, "settings", None) is not None:
            yield
            return
        self.conn.execute("BEGIN")
        self._local.settings = {}
        try:
            yield
        finally:
            self._local.settings = None
            self.conn.execute("COMMIT")

_CATEGORY_CLAUSE = " AND (category = ? OR category LIKE ? ESCAPE '\\')"


#: What a flag rule's terms are in SQL (analysis.quality.flag_rule); every other name is refused.
_RULE_TERMS = {**{m: f"q.{m}" for m in QUALITY_COLUMNS},
               "area": "(i.width * i.height)",
               "aspect": "(max(i.width, i.height) * 1.0 / min(i.width, i.height))"}
_RULE_OPS = ("<", "<=", ">", ">=")


def _browse_filter(what: Browse) -> tuple[str, str, list]:
    """(tables, WHERE clause, arguments) of `Store.browse` and its companions; the images
    table is `i`."""
    tables, where = "images i", "i.skip_reason IS NULL"
    args: list = []
    if what.model is not None and (what.cluster is not None or what.sort == "outlier"):
        tables += " LEFT JOIN analysis a ON a.image_id = i.id AND a.model = ?"
        args.append(what.model)
    if what.flag is not None:
        tables += " LEFT JOIN image_quality q ON q.content_hash = i.content_hash"
    if what.category is not None:
        where += " AND (i.category = ? OR i.category LIKE ? ESCAPE '\\')"
        args += _category_args(what.category)
    if what.name:
        where += " AND i.name LIKE ? ESCAPE '\\'"
        args.append("%" + _like_escape(what.name) + "%")
    if what.ids is not None:
        where += " AND i.id IN (SELECT value FROM json_each(?))"
        args.append(_json_ints(what.ids))
    if what.tag_classes is not None:
        where += (" AND i.content_hash IN (SELECT content_hash FROM tags WHERE model = ?"
                  " AND class IN (SELECT value FROM json_each(?)))")
        args += [what.tag_model, _json_ints(what.tag_classes)]
    if what.cluster is not None:
        where += " AND a.cluster = ?"
        args.append(int(what.cluster))
    if what.flag is not None:
        alternatives = []
        for conditions in what.flag:
            terms = []
            for term, op, value in conditions:
                if term not in _RULE_TERMS or op not in _RULE_OPS:
                    raise ValueError(f"not a flag rule's condition: {term} {op}")
                if term in ("area", "aspect"):
                    terms.append("i.width > 0 AND i.height > 0")
                terms.append(f"{_RULE_TERMS[term]} {op} ?")
                args.append(float(value))
            alternatives.append("(" + " AND ".join(terms) + ")")
        where += " AND (" + " OR ".join(alternatives) + ")"
    return tables, where, args


def _browse_order(what: Browse) -> str:
    if what.sort == "outlier" and what.model is not None:
        return "a.outlier IS NULL, a.outlier DESC, i.id"
    if what.sort != "id":
        raise ValueError(f"not a browsing order: {what.sort}")
    return "i.id"


def _json_ints(values: Iterable[int]) -> str:
    """A JSON list of whole numbers, for `json_each` (no limit on their number)."""
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def _category_args(category: str) -> list[str]:
    return [category, _like_escape(category) + "/%"]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@contextmanager
def no_empty_database_left(db: str | os.PathLike | None):
    """Removes the database file (and its -wal and -shm files, and the folders made for it)
    when the block fails before anything was stored in it and the file did not exist
    before: a mistyped folder or model must not leave an empty collection behind. A
    database that existed is never touched. The block must close its connection first."""
    path = Path(db) if db else default_db_path()
    if path.exists():
        yield
        return
    made = [folder for folder in [path.parent, *path.parent.parents] if not folder.exists()]
    try:
        yield
    except BaseException:
        if holds_nothing(path):
            for suffix in ("", "-wal", "-shm", "-journal"):
                with suppress(OSError):
                    Path(f"{path}{suffix}").unlink()
            for folder in made:  # deepest first; stops at one that is not empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise


def holds_nothing(path: Path) -> bool:
    """Whether the database file at `path` has no images and no embeddings (what a failed
    first `index` leaves), read without creating or changing anything."""
    if not path.is_file():
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master "
                                                  "WHERE type = 'table'")}
        return all(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
                   for table in tables & {"images", "embeddings"})
    except sqlite3.Error:
        return False
    finally:
        con.close()

class _Transaction:
    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    def __enter__(self):
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            failure = _write_failure(self.path, error)
            if failure is None:
                raise
            raise failure from error
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._rollback()
                failure = _write_failure(self.path, error)
                if failure is None:
                    raise
                raise failure from error
            return False
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError):
            failure = _write_failure(self.path, exc)
            if failure is not None:
                raise failure from None
        return False

    def _rollback(self) -> None:
        # A full disk or an I/O error may have rolled the transaction back already.
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass


# SQLite's primary result codes (sqlite3 names them only from Python 3.11).
_SQLITE_BUSY, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 5, 8, 10, 13


def _write_failure(path: Path, exc: sqlite3.OperationalError) -> StoreError | None:
    """A StoreError for a write that failed because of the disk or another process, else
    None (an SQL error is a bug and keeps its traceback)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    kept = "what was written before is kept"
    if primary == _SQLITE_FULL or (primary is None and "disk is full" in str(exc)):
        return StoreError(f"{path}: the disk is full; {kept}, so free some space and run the "
                          "command again to resume")
    if primary == _SQLITE_IOERR:
        return StoreError(f"{path}: writing to the disk failed ({exc}: the disk may be full, "
                          f"failing or over a file size limit); {kept}, run the command again "
                          "once that is fixed")
    if primary == _SQLITE_READONLY:
        return StoreError(f"{path}: the database cannot be written ({exc})")
    if primary == _SQLITE_BUSY:
        return StoreError(f"{path}: another process kept the database locked for 30 s; try "
                          "again when it is done")
    return None
