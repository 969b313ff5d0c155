"""The web viewer's files: catalogued originals as it serves them (read by
`ingest/originals.py`: a file is served only as the catalogue knows it, still a regular
file with the very bytes that were indexed), and their thumbnails, made once per (content
hash, size step) and kept beside the database in `<db>.thumbs/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..fileio import write_atomically
from ..ingest import downloads
from ..locators import is_url

#: Thumbnail sizes (longest side, pixels); a request is served the smallest step that covers it.
THUMBNAIL_SIZES = (32, 64, 128, 256, 512, 1024)
#: The viewer's grid shows thumbnails this size (CSS pixels) until the user picks another.
DEFAULT_THUMBNAIL_SIZE = 128

def snap_size(size: int) -> int:
    """The smallest thumbnail step at least `size` (the largest step for anything bigger)."""
    return next((s for s in THUMBNAIL_SIZES if s >= size), THUMBNAIL_SIZES[-1])


def download_name(row: dict, data: bytes) -> str:
    """A file name for an original: its own, or for a URL its name and format."""
    path = row["path"]
    if not is_url(path):
        return os.path.basename(path)
    ext = (downloads.sniff(data) or "").lower().replace("jpeg", "jpg")
    return f"{row['name'] or 'image'}.{ext}" if ext else (row["name"] or "image")


def media_type(data: bytes) -> str:
    """The MIME type of encoded image bytes, from their header."""
    return Image.MIME.get(downloads.sniff(data) or "", "application/octet-stream")


class ThumbnailCache:
    """Thumbnails on disk under `folder/<size>/<hash[:2]>/<hash>` (renditions for the browser
    under `folder/display/`), written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, digest: bytes, size: int | str) -> Path:
        name = digest.hex()
        return self.folder / str(size) / name[:2] / name

    def get(self, digest: bytes, size: int | str) -> bytes | None:
        try:
            return self.path(digest, size).read_bytes()
        except OSError:
            return None

    def put(self, digest: bytes, size: int | str, data: bytes) -> None:
        target = self.path(digest, size)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data, mode=0o600)  # private, as the catalogue's pictures
        except OSError:
            pass  # a read-only folder or a full disk: serve it uncached
