"""Answers written to the standard output: a binary format refused on a terminal, and what a
writer puts in a file copied there (`-o -`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from ..errors import LookalikeError

_BINARY_FORMATS = ("parquet", "npz")


def refuse_binary_on_a_terminal(fmt: str) -> None:
    if fmt in _BINARY_FORMATS and sys.stdout.isatty():
        raise LookalikeError(f"{fmt} is a binary format: redirect the standard output to a file "
                             f"(`> out.{fmt}`) or a program (`| ...`), or give -o FILE")


def copy_to_stdout(write: Callable[[str], object], fmt: str):
    """What `write(path)` writes, copied to the standard output (for `-o -`); a binary format
    is refused when that is a terminal, where its bytes would garble the screen."""
    import shutil
    import tempfile

    refuse_binary_on_a_terminal(fmt)
    with tempfile.TemporaryDirectory(prefix="lookalike-") as folder:
        path = os.path.join(folder, f"out.{fmt}")
        result = write(path)
        sys.stdout.flush()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return result
