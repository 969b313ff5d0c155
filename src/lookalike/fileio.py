"""Small file and thread helpers with no lookalike imports: files that appear whole or not at
all (exports, caches, downloads, models, sample images), reading a regular file without ever
blocking on a pipe or a device, and a thread-pool map that keeps a bounded number of items in
flight."""

from __future__ import annotations

import os
import secrets
import stat
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


class NotARegularFile(OSError):
    """`read_regular_file` found a named pipe, a socket, a device or a folder: `mode` is its
    st_mode."""

    def __init__(self, mode: int):
        super().__init__(f"not a regular file (mode {mode:o})")
        self.mode = mode


class FileTooLarge(OSError):
    """`read_regular_file` found more than its limit: `size` bytes, at least."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"larger than {limit:,} bytes")
        self.size, self.limit = size, limit


def read_regular_file(path: str | bytes | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of the regular file at `path`. Opened without waiting, so a named pipe or a
    device never blocks the caller: it is refused with NotARegularFile, as is a folder; more
    than `max_bytes` (on disk, or read: the file may grow meanwhile) raises FileTooLarge;
    anything else that stops the read is the OSError that `open` and `read` raise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(info.st_mode)
        if info.st_size > max_bytes:
            raise FileTooLarge(info.st_size, max_bytes)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FileTooLarge(len(data), max_bytes)
    return data
