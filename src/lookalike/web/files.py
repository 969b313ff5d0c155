"""Reading catalogued image files for the web viewer, and their cached thumbnails.

A file is served only as the catalogue knows it: looked up by image id, still a regular file,
and with the very bytes that were indexed (same content hash). Thumbnails are made once per
(content hash, size step) and kept beside the database in `<db>.thumbs/`.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ..fileio import FileTooLarge, NotARegularFile, read_regular_file, write_atomically
from ..formats.thumbnails import MAX_FILE_BYTES
from ..ingest import downloads
from ..ingest.pipeline import content_hash
from ..locators import is_url

#: Thumbnail sizes (longest side, pixels); a request is served the smallest step that covers it.
THUMBNAIL_SIZES = (32, 64, 128, 256, 512, 1024)
#: The viewer's grid shows thumbnails this size (CSS pixels) until the user picks another.
DEFAULT_THUMBNAIL_SIZE = 128

#: Originals larger than this are not served: the preview limit, which explains why.
MAX_ORIGINAL_BYTES = MAX_FILE_BYTES


class FileGone(Exception):
    """The catalogued file is missing or no longer a regular file."""


class FileChanged(Exception):
    """The catalogued file's bytes are not those that were indexed."""


def snap_size(size: int) -> int:
    """The smallest thumbnail step at least `size` (the largest step for anything bigger)."""
    return next((s for s in THUMBNAIL_SIZES if s >= size), THUMBNAIL_SIZES[-1])


def read_catalogued(locator: bytes | str, expected_hash: bytes | None,
                    max_bytes: int = MAX_ORIGINAL_BYTES) -> bytes:
    """The bytes of a catalogued file, refused unless it is still the regular file, with the
    same content, that was indexed. Never blocks on a named pipe or a device. An image
    catalogued by URL is read from the download cache (or its data: URL), never fetched."""
    if isinstance(locator, bytes) and is_url(locator[:8].decode("latin-1")):
        return _read_downloaded(locator.decode("utf-8", "replace"), expected_hash)
    if not isinstance(locator, bytes) or not os.path.isabs(locator):
        raise FileGone("not a local file")
    try:
        data = read_regular_file(locator, max_bytes)
    except NotARegularFile:
        raise FileGone("no longer a regular file") from None
    except FileTooLarge:
        raise FileChanged(f"larger than {max_bytes:,} bytes") from None
    except OSError as exc:
        raise FileGone(exc.strerror or str(exc)) from None
    if expected_hash is not None and content_hash(data) != expected_hash:
        raise FileChanged("its content changed since it was indexed; run `lookalike index` again")
    return data


def _read_downloaded(url: str, expected_hash: bytes | None) -> bytes:
    data = downloads.Downloader().cached(url)
    if data is None:
        raise FileGone("not in the download cache; run `lookalike index` on its table again "
                       "to download it")
    if expected_hash is not None and content_hash(data) != expected_hash:
        raise FileChanged("the downloaded copy is not the one indexed; run `lookalike index` "
                          "again")
    return data


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
