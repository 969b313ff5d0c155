"""Small file and thread helpers with no lookalike imports: files that appear whole or not at
all (exports, caches, downloads, models, sample images), and a thread-pool map that keeps a
bounded number of items in flight."""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import BinaryIO


@contextmanager
def atomic_file(path: str | os.PathLike, *, mode: int | None = None,
                durable: bool = False) -> Iterator[BinaryIO]:
    """A binary file that appears at `path` only once it is completely written: written under
    a hidden temporary name ending in `.tmp` in the same folder (the indexer skips dot-files;
    cache sweepers find `*.tmp`), then renamed over `path`; removed if the block fails.

    `mode`: the file's permissions (default: as `open` makes them, under the umask).
    `durable`: fsync before the rename, so that a crash leaves the old file or the new one.
    Nested blocks commit inner first: the outer file appearing means the inner ones are whole.
    Raises OSError as `open` does when the temporary file cannot be made."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")  # noqa: SIM115 - closed below, before the rename
    try:
        with f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomically(path: str | os.PathLike, data: bytes, *, mode: int | None = None,
                     durable: bool = False) -> None:
    """Write `data` to `path` with `atomic_file`: a reader never sees half a file."""
    with atomic_file(path, mode=mode, durable=durable) as f:
        f.write(data)


def bounded_map(pool: ThreadPoolExecutor, fn: Callable, items: Iterable, window: int) -> Iterator:
    """pool.map that keeps at most `window` items in flight, in order."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


__all__ = ["atomic_file", "bounded_map", "write_atomically"]
