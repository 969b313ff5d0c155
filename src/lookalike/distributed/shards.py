"""A model's search matrix cut in shards beside the database, for a cluster's workers to search:
`<db>.shards/<model>/g<generation>-<parts>/part-NNNN.npy` with its image ids in
`part-NNNN.ids.npy`, and `manifest.json` written last (its presence means the set is whole).

Shards are cut from the memory-mapped matrix cache (catalogue/matrix.py), in image-id order,
when the catalogue's generation has moved on since the last cut; older cuts are deleted. Each
worker memory-maps only the shards it answers for, from a folder every worker can read (a shared
file system; on one machine, any folder).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..catalogue.matrix import load_matrix
from ..catalogue.paths import shards_folder
from ..catalogue.store import Store
from ..fileio import atomic_file

#: Rows per shard at most: 250,000 rows of 1280-d float32 are 1.2 GB, a worker's comfortable
#: share of memory-mapped pages, and one exact pass over them takes about 0.1 s.
SHARD_ROWS = 250_000

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Shards:
    """One cut of a model's matrix: the shard files (ids beside each) and their row counts."""

    model: str
    generation: int
    dim: int
    parts: tuple[str, ...]   # absolute paths of part-NNNN.npy
    rows: tuple[int, ...]

    def __len__(self) -> int:
        return sum(self.rows)


def shard_count(rows: int, workers: int, shard_rows: int = SHARD_ROWS) -> int:
    """How many shards `rows` are cut into: enough that none has more than `shard_rows`, and
    at least one per worker (each worker then has a share to search), never an empty one."""
    return max(1, min(rows, max(math.ceil(rows / shard_rows), workers)))


def _safe(model: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in model)


def current_shards(store: Store, model: str, parts: int) -> Shards:
    """The cut of `model`'s matrix into `parts` shards for the catalogue as it is now: read
    from its manifest if made already, else cut from the matrix cache (older cuts deleted)."""
    root = shards_folder(store.path) / _safe(model)
    for _ in range(3):  # the catalogue may change while the matrix is read: then cut again
        generation = store.generation
        folder = root / f"g{generation}-{parts}"
        found = _read_manifest(folder)
        if found is not None:
            return found
        ids, matrix = load_matrix(store, model)
        if store.generation != generation:
            continue
        shards = _cut(folder, model, generation, ids, matrix, parts)
        _remove_other_cuts(root, folder)
        return shards
    raise RuntimeError(f"the catalogue kept changing while the {model} shards were cut")


def _read_manifest(folder: Path) -> Shards | None:
    try:
        meta = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return Shards(meta["model"], meta["generation"], meta["dim"],
                      tuple(str(folder / name) for name in meta["parts"]), tuple(meta["rows"]))
    except (OSError, ValueError, KeyError):
        return None


def _cut(folder: Path, model: str, generation: int, ids: np.ndarray, matrix: np.ndarray,
         parts: int) -> Shards:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(ids), parts + 1).astype(np.int64)
    names, rows = [], []
    for n, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
        name = f"part-{n:04d}.npy"
        with atomic_file(folder / name) as fh:
            np.save(fh, np.ascontiguousarray(matrix[start:stop], dtype=np.float32))
        with atomic_file(folder / f"part-{n:04d}.ids.npy") as fh:
            np.save(fh, np.asarray(ids[start:stop], dtype=np.int64))
        names.append(name)
        rows.append(int(stop - start))
    dim = int(matrix.shape[1]) if matrix.ndim == 2 else 0
    meta = {"model": model, "generation": generation, "dim": dim, "parts": names, "rows": rows}
    with atomic_file(folder / MANIFEST) as fh:
        fh.write(json.dumps(meta).encode("utf-8"))
    return Shards(model, generation, dim, tuple(str(folder / n) for n in names), tuple(rows))


def _remove_other_cuts(root: Path, keep: Path) -> None:
    """Cuts of other generations (or shard counts) go: every one is rebuilt from the
    catalogue when asked for. Only lookalike's own folders under `<db>.shards/` are touched."""
    for old in root.glob("g*-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["SHARD_ROWS", "Shards", "current_shards", "shard_count"]
