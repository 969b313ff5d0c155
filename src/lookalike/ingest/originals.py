"""Reading an indexed image back as it was indexed: still a regular file (never waiting on a
named pipe or a device) with the very bytes that were indexed, or, for an image named by URL,
its copy in the download cache (never fetched again), or an object store's object read again.
The web viewer serves originals this way, and the duplicate finder compares them."""

from __future__ import annotations

import os

from ..catalogue.store import is_imported_hash
from ..fileio import FileTooLarge, NotARegularFile, read_regular_file
from ..locators import is_store_url, is_url
from . import downloads, omezarr
from .object_stores import read_object
from .pipeline import content_hash
from .skipped import ImageSkipped

#: Files larger than this (1 GiB) are not read back whole: not served or previewed by the web
#: viewer, nor compared by the duplicate finder. Half the indexer's limit
#: (`ingest.pipeline.DEFAULT_MAX_BYTES`, 2 GiB): a picture read back is held whole in memory,
#: on every request, where indexing reads each file once.
MAX_ORIGINAL_BYTES = 1 << 30


# OSErrors: a caller that only needs "it cannot be had" catches OSError.
class FileGone(OSError):
    """The catalogued file is missing or no longer a regular file."""


class FileChanged(OSError):
    """The catalogued file's bytes are not those that were indexed."""


def read_catalogued(locator: bytes | str, expected_hash: bytes | None,
                    max_bytes: int = MAX_ORIGINAL_BYTES) -> bytes:
    """The bytes of a catalogued file, refused unless it is still the regular file, with the
    same content, that was indexed. Never blocks on a named pipe or a device. An image
    catalogued by URL is read from the download cache (or its data: URL), never fetched.
    An image known by imported vectors (never read, so no hash to compare) is read as it is."""
    if is_imported_hash(expected_hash):
        expected_hash = None
    if isinstance(locator, bytes) and is_url(locator[:8].decode("latin-1")):
        return _read_downloaded(locator.decode("utf-8", "replace"), expected_hash)
    if isinstance(locator, bytes) and is_store_url(locator[:32].decode("latin-1")):
        return _read_stored(locator.decode("utf-8", "replace"), expected_hash, max_bytes)
    if not isinstance(locator, bytes) or not os.path.isabs(locator):
        raise FileGone("not a local file")
    if omezarr.is_zarr_folder(locator):
        return _read_zarr(locator, expected_hash)
    try:
        data = read_regular_file(locator, max_bytes)
    except NotARegularFile:
        raise FileGone("no longer a regular file") from None
    except FileTooLarge:
        raise FileChanged(f"larger than {max_bytes:,} bytes") from None
    except OSError as exc:
        raise FileGone(exc.strerror or str(exc)) from None
    return _as_indexed(data, expected_hash, "its content changed since it was indexed")


def _read_stored(url: str, expected_hash: bytes | None, max_bytes: int) -> bytes:
    try:
        data = read_object(url, max_bytes)
    except ImageSkipped as exc:
        raise FileGone(exc.reason) from None
    return _as_indexed(data, expected_hash, "the object changed since it was indexed")


def _read_zarr(locator: bytes, expected_hash: bytes | None) -> bytes:
    """An OME-Zarr folder's `ZarrFolder`, refused unless its files are those indexed."""
    try:
        found = omezarr.read_folder(locator)
    except ImageSkipped as exc:
        raise FileGone(exc.reason) from None
    return _as_indexed(found, expected_hash, "its files changed since it was indexed")


def _read_downloaded(url: str, expected_hash: bytes | None) -> bytes:
    data = downloads.Downloader().cached(url)
    if data is None:
        raise FileGone("not in the download cache; run `lookalike index` on its table again "
                       "to download it")
    return _as_indexed(data, expected_hash, "the downloaded copy is not the one indexed")


def _as_indexed(data: bytes, expected_hash: bytes | None, changed: str) -> bytes:
    """`data`, refused with `changed` unless its content hash is the one indexed."""
    if expected_hash is not None and content_hash(data) != expected_hash:
        raise FileChanged(f"{changed}; run `lookalike index` again")
    return data
