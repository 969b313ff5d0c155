"""The commands lookalike suggests, as the user can type them in their shell."""

from __future__ import annotations

import os
import shlex
import sys


def program() -> str:
    """How to type this program in the user's shell: `lookalike` when that is the one on
    PATH, else the full path of its script (after ./demo.sh, .venv/bin is not on PATH), else
    `python -m lookalike`."""
    import shutil

    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not (os.path.splitext(os.path.basename(script))[0] == "lookalike"
            and os.path.isfile(script)):  # run as `python -m lookalike`, or from Python
        beside = os.path.join(os.path.dirname(sys.executable), "lookalike")
        script = beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else ""
    on_path = shutil.which("lookalike")
    if on_path and (not script or _same_file(on_path, script)):
        return "lookalike"
    if script:
        return shlex.quote(script)
    return f"{shlex.quote(sys.executable)} -m lookalike"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def quoted(path) -> str:
    return shlex.quote(str(path))
