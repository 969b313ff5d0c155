"""Locks that processes share (the web server's worker processes, two commands on one
database): an exclusive `flock` of a small file beside what it guards. The kernel lets go of
it when its holder exits, however it exits, so a crashed process never leaves others waiting.
No lookalike imports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows: no flock; each process then works as if it were alone
    fcntl = None  # type: ignore[assignment]


@contextmanager
def held(path: str | os.PathLike, *, on_wait: Callable[[], None] | None = None
         ) -> Iterator[bool]:
    """Hold the lock of `path` (a file, made with its folder when missing) for the `with`
    block, waiting while another process (or another `held` of this one) holds it;
    `on_wait()` is called first when it has to wait. Yields True; False when the lock file
    cannot be made (a read-only folder) or the system has no flock: the block then runs
    unguarded, as it would were this the only process."""
    lock = _open(Path(path))
    if lock is None:
        yield False
        return
    with lock:
        taken = _take(lock, wait=False)
        if taken is False:
            if on_wait is not None:
                on_wait()
            taken = _take(lock, wait=True)
        yield taken is True  # closing the file lets go of the lock


def is_held(path: str | os.PathLike) -> bool:
    """Whether some process holds the lock of `path` now."""
    if fcntl is None or not Path(path).is_file():
        return False
    lock = _open(Path(path))
    if lock is None:
        return False
    with lock:
        return _take(lock, wait=False) is False


def hold_for_life(path: str | os.PathLike) -> bool:
    """Take the lock of `path` for the rest of this process's life unless another process
    holds it: False when one does; True when taken, or when locks cannot be had here (act as
    if alone, as `held` does)."""
    lock = _open(Path(path))
    if lock is None:
        return True
    taken = _take(lock, wait=False)
    if taken is False:
        lock.close()
        return False
    _FOR_LIFE.append(lock)  # never closed: the kernel lets go when the process ends
    return True


#: The files of the locks this process holds for its life.
_FOR_LIFE: list[IO[bytes]] = []


def _open(path: Path) -> IO[bytes] | None:
    if fcntl is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "ab")  # noqa: SIM115 - the caller closes it
    except OSError:
        return None


def _take(lock: IO[bytes], wait: bool) -> bool | None:
    """True: taken; False: another holds it; None: this file system cannot lock files."""
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, say, on a network file system without locks
        return None
    return True


__all__ = ["held", "hold_for_life", "is_held"]
