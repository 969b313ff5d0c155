"""A collection's map (analysis/layout.py), kept beside its database and brought up to date
cheaply: images added since the fit are placed into it (the others do not move), removed or
changed ones dropped (a changed one is placed again), until more than REFIT_SHARE of the images
fitted on have been placed since; then, or when asked, the layout is fitted again.

Files, one pair per model and method, in `<db>.maps/` (catalogue/paths.py):
`<model>-<method>.npz` (ids, content hashes, x/y, which were placed, the projection, and what
it was fitted on) and, for UMAP and t-SNE, `<model>-<method>.reducer`, the fitted object that
places new points, pickled. A pickle runs code when loaded, so it is loaded only when its
HMAC, made with a key of this user's (in the user cache folder, not beside the database),
matches the one the .npz holds: a map folder copied from elsewhere is refitted, not trusted.
A missing, corrupt, stale or foreign file is refitted, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import pickle
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_file
from . import layout

#: The map is fitted again once more than this share of the images it was fitted on have
#: been placed into it since (placement keeps the fitted points still, so clusters that only
#: the new images form are drawn less well than a refit would draw them).
REFIT_SHARE = 0.25

_FORMAT = 1


@dataclass
class MapLayout:
    """A collection's 2-D map: image `ids` (sorted) at (`x`, `y`).

    `method` is the layout used ("umap", "tsne" or "pca"; PCA for fewer than
    layout.MIN_NONLINEAR images whatever was asked), `model` whose vectors it lays out,
    `fitted_on` how many images the layout was fitted on, `placed` how many of the current
    images were placed into it afterwards rather than fitted; `action` what this call did:
    "fitted", "placed" (added images placed, removed ones dropped) or "cached" (nothing to
    do); `seconds` how long that took. `paths` and `categories` are the images', in the order
    of `ids`."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    method: str
    model: str
    fitted_on: int
    placed: int
    action: str
    seconds: float = 0.0
    paths: list[str] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (f"<MapLayout by {self.method} of {self.model} vectors: {len(self):,} images, "
                f"fitted on {self.fitted_on:,}, {self.placed:,} placed since ({self.action})>")

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per image: id, path, category, x, y."""
        return [{"id": int(i), "path": p, "category": c, "x": float(x), "y": float(y)}
                for i, p, c, x, y in zip(self.ids, self.paths, self.categories, self.x, self.y)]

    def to_pandas(self):
        """id, path, category, x, y as a pandas DataFrame, one row per image."""
        import pandas as pd

        return pd.DataFrame({"id": np.asarray(self.ids, np.int64), "path": self.paths,
                             "category": self.categories,
                             "x": np.asarray(self.x, np.float64),
                             "y": np.asarray(self.y, np.float64)})


@dataclass
class StoredMap:
    """What a map's files hold: image ids with their content hashes and positions, which
    were placed rather than fitted, and what places new points (loaded on demand)."""

    ids: np.ndarray          # int64, sorted
    hashes: np.ndarray       # S16, content hash of each image when laid out
    coords: np.ndarray       # (n, 2) float32
    placed: np.ndarray       # bool: placed into the layout rather than fitted
    method: str
    fitted_on: int
    generation: int          # the catalogue generation it is up to date with
    seed: int
    projection: layout.Projection
    reducer_mac: str = ""    # HMAC of the pickled reducer ("" for PCA, or when not saved)
    files: tuple[Path, Path] | None = None

    def fitted(self) -> layout.Fitted | None:
        """The fitted layout that places new points, or None if its file cannot be trusted."""
        if self.method == "pca":
            return layout.Fitted(self.coords, "pca", self.projection)
        if self.files is None or not self.reducer_mac:
            return None
        try:
            data = self.files[1].read_bytes()
            if not hmac.compare_digest(_mac(data), self.reducer_mac):
                return None
            return layout.Fitted(self.coords, self.method, self.projection, pickle.loads(data))
        except Exception:  # unreadable, or a pickle of another umap-learn/openTSNE version
            return None


def map_files(folder: Path, model: str, method: str) -> tuple[Path, Path]:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}-{method}")
    return folder / f"{stem}.npz", folder / f"{stem}.reducer"


def current(folder: Path, model: str, method: str, generation: int,
            seed: int = layout.DEFAULT_SEED) -> StoredMap | None:
    """The stored map when it is up to date with catalogue `generation` (what
    `bring_up_to_date` would answer "cached"), found without the collection's ids, hashes or
    vectors: a million-image map is read in a tenth of a second. Else None."""
    stored = load(map_files(folder, model, method))
    if stored is not None and stored.seed == seed and stored.generation == generation:
        return stored
    return None


def bring_up_to_date(folder: Path, model: str, method: str, ids: np.ndarray, hashes: np.ndarray,
                     vectors, generation: int, *, refit: bool = False, may_fit: bool = True,
                     seed: int = layout.DEFAULT_SEED) -> tuple[StoredMap, str] | None:
    """(the map of the images `ids` (sorted, with content `hashes`), what was done): the
    stored one as it is, with added images placed and removed ones dropped, or fitted anew
    (see the module). `vectors(rows)` gives the vectors of the rows of `ids` asked for (all
    of them: None). `may_fit=False` never fits (an export): None when no stored map can
    place the images."""
    files = map_files(folder, model, method)
    stored = None if refit else load(files)
    if stored is not None and stored.seed == seed and stored.generation == generation:
        return stored, "cached"
    if stored is not None and stored.seed == seed:
        updated = _update(stored, ids, hashes, vectors, generation, method, may_fit)
        if updated is not None:
            _save(updated, files, None)
            same = (np.array_equal(updated.ids, stored.ids)
                    and np.array_equal(updated.hashes, stored.hashes))
            return updated, "cached" if same else "placed"
    if not may_fit:
        return None
    if not len(ids):
        raise ValueError("no vectors to lay out")
    fitted = layout.fit(np.asarray(vectors(None)), method, seed)
    fresh = StoredMap(np.asarray(ids, np.int64), np.asarray(hashes, "S16"), fitted.coords,
                      np.zeros(len(ids), bool), fitted.method, len(ids), generation, seed,
                      fitted.projection)
    _save(fresh, files, fitted.reducer)
    return fresh, "fitted"


def _update(stored: StoredMap, ids: np.ndarray, hashes: np.ndarray, vectors, generation: int,
            method: str, may_fit: bool) -> StoredMap | None:
    """`stored` with the images no longer in `ids` (or changed) dropped and the new ones
    placed; None when it should be fitted again instead."""
    where = np.searchsorted(stored.ids, ids)
    where = np.minimum(where, max(len(stored.ids) - 1, 0))
    kept = (len(stored.ids) > 0) & (stored.ids[where] == ids) & (stored.hashes[where] == hashes)
    new_rows = np.flatnonzero(~kept)
    placed_after = int(stored.placed[where[kept]].sum()) + len(new_rows)
    too_many = placed_after > REFIT_SHARE * stored.fitted_on
    other_method = stored.method != method and len(ids) >= layout.MIN_NONLINEAR
    if may_fit and (too_many or other_method):
        return None
    coords = np.zeros((len(ids), 2), np.float32)
    coords[kept] = stored.coords[where[kept]]
    placed = np.zeros(len(ids), bool)
    placed[kept] = stored.placed[where[kept]]
    if len(new_rows):
        fitted = stored.fitted()
        if fitted is None:
            return None if may_fit else _without(stored, ids, hashes, kept, coords, placed,
                                                 generation)
        coords[new_rows] = layout.place(fitted, np.asarray(vectors(new_rows)))
        placed[new_rows] = True
    return StoredMap(np.asarray(ids, np.int64), np.asarray(hashes, "S16"), coords, placed,
                     stored.method, stored.fitted_on, generation, stored.seed,
                     stored.projection, stored.reducer_mac, stored.files)


def _without(stored, ids, hashes, kept, coords, placed, generation) -> StoredMap:
    """The images that cannot be placed (the reducer is gone) are left off the map."""
    return StoredMap(np.asarray(ids, np.int64)[kept], np.asarray(hashes, "S16")[kept],
                     coords[kept], placed[kept], stored.method, stored.fitted_on, generation,
                     stored.seed, stored.projection, stored.reducer_mac, stored.files)


def load(files: tuple[Path, Path]) -> StoredMap | None:
    """The map stored in `files`, or None when missing, damaged or of another format."""
    try:
        with np.load(files[0], allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != _FORMAT:
                return None
            ids, coords = z["ids"].astype(np.int64), z["coords"].astype(np.float32)
            stored = StoredMap(ids, z["hashes"].astype("S16"), coords, z["placed"].astype(bool),
                               str(meta["method"]), int(meta["fitted_on"]),
                               int(meta["generation"]), int(meta["seed"]),
                               layout.Projection(z["mean"].astype(np.float32),
                                                 z["axes"].astype(np.float32)),
                               str(meta.get("reducer_mac", "")), files)
    except Exception:  # a damaged file of any kind: refit
        return None
    n = len(stored.ids)
    if (coords.shape != (n, 2) or len(stored.hashes) != n or len(stored.placed) != n
            or not np.all(np.diff(stored.ids) > 0) or not np.isfinite(coords).all()
            or stored.method not in layout.METHODS):
        return None
    return stored


def _save(stored: StoredMap, files: tuple[Path, Path], reducer: Any) -> None:
    """Write the map (and a newly fitted reducer) atomically; a folder that cannot be written
    only means the next call fits again."""
    try:
        files[0].parent.mkdir(exist_ok=True)
        if reducer is not None:
            data = pickle.dumps(reducer, protocol=pickle.HIGHEST_PROTOCOL)
            with atomic_file(files[1]) as f:
                f.write(data)
            stored.reducer_mac = _mac(data)
        meta = {"format": _FORMAT, "method": stored.method, "fitted_on": stored.fitted_on,
                "generation": stored.generation, "seed": stored.seed,
                "reducer_mac": stored.reducer_mac, "saved": time.time()}
        buffer = io.BytesIO()
        np.savez(buffer, ids=stored.ids, hashes=stored.hashes, coords=stored.coords,
                 placed=stored.placed, mean=stored.projection.mean, axes=stored.projection.axes,
                 meta=np.asarray(json.dumps(meta)))
        with atomic_file(files[0]) as f:
            f.write(buffer.getvalue())
        stored.files = files
    except OSError:
        pass


def newest_method(folder: Path, model: str) -> str | None:
    """The method of the map of `model` written last, or None if there is none."""
    found = []
    for method in layout.METHODS:
        path = map_files(folder, model, method)[0]
        try:
            found.append((path.stat().st_mtime_ns, method))
        except OSError:
            continue
    return max(found)[1] if found else None


def _mac(data: bytes) -> str:
    return hmac.new(_signing_key(), data, hashlib.sha256).hexdigest()


def _signing_key() -> bytes:
    """This user's key for map reducers, made on first use (readable by the user only)."""
    from ..models.cache import cache_root

    path = cache_root() / "map-signing.key"
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return _read_key(path)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) < 32:
        raise OSError(f"{path}: an incomplete key")
    return key


__all__ = ["REFIT_SHARE", "MapLayout", "StoredMap", "bring_up_to_date", "current", "load",
           "map_files",
           "newest_method"]
