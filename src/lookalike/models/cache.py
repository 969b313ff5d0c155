"""Where built ONNX models are kept between runs, and how a file is written there safely.

The folder is ``$LOOKALIKE_CACHE_DIR/models`` when that variable is set, else
``platformdirs.user_cache_dir("lookalike")/models``. A file's name carries the builder version
and a fingerprint of the weight file, so a changed builder or reinstalled weights never reuse a
stale graph.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import platformdirs

from ..fileio import write_atomically as write

CACHE_ENV = "LOOKALIKE_CACHE_DIR"


def cache_root() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("lookalike"))


def models_dir() -> Path:
    return cache_root() / "models"


def weights_fingerprint(weights: Path) -> str:
    """Cheap identity of a weight file: its resolved path, size and modification time."""
    st = weights.stat()
    key = f"{weights.resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    return hashlib.sha256(key).hexdigest()[:12]


def model_file(name: str, builder_version: str, weights: Path) -> Path:
    return models_dir() / f"{name}-v{builder_version}-{weights_fingerprint(weights)}.onnx"


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``: a reader never
    sees half a file, and two processes building at once both end with a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, data, mode=0o644, durable=True)  # the cache is not secret
