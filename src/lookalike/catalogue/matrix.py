"""The search matrix of one model: every usable image's vector as one contiguous float32 array.

Reading a million vectors out of SQLite takes seconds, so the matrix is written once to a
`.npy` file beside the database (`<db>.vectors/<model>.g<generation>.npy`, ids alongside) and
memory-mapped by every later process: opening it is instant and the operating system shares
its pages. The file name carries the store's generation counter, so any change to the
catalogue makes a new file; older ones are deleted.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from pathlib import Path

import numpy as np

from ..fileio import atomic_file
from .paths import vectors_folder
from .store import Store


def cache_folder(store: Store) -> Path:
    return vectors_folder(store.path)


def _safe(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model)


#: np.load parses a .npy header with ast.literal_eval, and CPython 3.11.7 (seen here) can fail
#: with "SystemError: AST constructor recursion depth mismatch" when threads parse at once:
#: a server's threads open the cache one at a time (a header read, microseconds).
_OPENING = threading.Lock()


def load_matrix(store: Store, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, float32 matrix) for `model`, memory-mapped from the cache (built if stale)."""
    folder = cache_folder(store)
    generation = store.generation
    for _ in range(3):
        stem = f"{_safe(model)}.g{generation}"
        matrix_file, ids_file = folder / f"{stem}.npy", folder / f"{stem}.ids.npy"
        if matrix_file.is_file() and ids_file.is_file():
            try:
                with _OPENING:
                    return np.load(ids_file), np.load(matrix_file, mmap_mode="r")
            except (OSError, ValueError):
                pass  # a damaged cache file: rebuild it
        try:
            folder.mkdir(exist_ok=True)
            generation = _build(store, model, folder)
        except OSError:
            break  # a read-only folder or a full disk
        _remove_other_generations(folder, model, generation)
    return store.vectors(model)  # search from memory instead


#: A temporary file untouched for this long was left by a build that was killed (a build
#: writes continuously; one of a million vectors takes about a minute).
STALE_TEMPORARY_S = 600


def _remove_other_generations(folder: Path, model: str, generation: int) -> None:
    keep = f"{_safe(model)}.g{generation}."
    stale = [old for old in folder.glob(f"{_safe(model)}.g*.npy") if not old.name.startswith(keep)]
    now = time.time()
    for leftover in folder.glob("*.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMPORARY_S:
                stale.append(leftover)
        except OSError:
            pass
    for old in stale:
        try:
            old.unlink()
        except OSError:
            pass


def _build(store: Store, model: str, folder: Path) -> int:
    """Write the cache files from one consistent snapshot; returns their generation."""
    with store.snapshot():  # count, rows and generation agree
        generation = store.generation
        count = store.count_vectors(model)
        rows = store.iter_vectors(model)
        first = rows.fetchone()
        dim = len(first[1]) // 4 if first else 0
        stem = f"{_safe(model)}.g{generation}"
        ids = np.empty(count, np.int64)
        # Temporary names of their own (fileio): threads of one process may build the same
        # generation side by side, and a shared name let one truncate what another renamed.
        # Plain writes, not a memory map: on a full disk a write fails with ENOSPC, where
        # touching the pages of a sparse memory-mapped file kills the process with SIGBUS.
        with atomic_file(folder / f"{stem}.npy") as fh:  # committed last: its appearing
            np.lib.format.write_array_header_1_0(        # means the ids are whole too
                fh, {"descr": "<f4", "fortran_order": False, "shape": (count, dim)})
            for n, (image_id, blob) in enumerate(itertools.chain([first], rows) if first else ()):
                if len(blob) != 4 * dim:
                    raise ValueError(f"image {image_id}: a {model} vector of "
                                     f"{len(blob) // 4} dimensions, not {dim}")
                ids[n] = image_id
                fh.write(blob)
            with atomic_file(folder / f"{stem}.ids.npy") as ids_fh:
                np.save(ids_fh, ids)
    return generation

