"""Finding the images of a collection: folder trees and single files become `ImageFile` records
(an OME-Zarr folder, `*.zarr`, is one image and is not walked; an OME-Zarr plate is its
fields, each with its plate columns as extras).

A folder is walked recursively like Orange's Import Images: dot-files and dot-folders are
skipped, symbolic links are followed but loops are not, and the category of an image is its
sub-folder path relative to the folder given. Nothing here opens an image. Tables that list
images (paths or URLs, `RemoteImage`) are read by `tables.py` into the same records.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ..errors import LookalikeError
from ..locators import is_store_url, is_url
from . import omezarr, zarr_plates

#: File name endings taken as images when a folder is scanned (a file given by name is tried
#: whatever its ending).
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".tif", ".tiff",
    ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".heic", ".heif", ".avif",
})


class SourceError(LookalikeError):
    """A path given by the user that cannot be a collection source."""


@dataclass(frozen=True)
class ImageFile:
    """One candidate image file. `locator` (the raw path bytes) is its identity in the store."""

    path: str          # absolute path, for display (undecodable bytes shown as escapes)
    locator: bytes     # os.fsencode of the absolute path: exact even for names that are not UTF-8
    root: str          # the folder (or file) the user gave
    name: str          # file stem, Orange's "image name"
    category: str | None  # sub-folder path relative to the root; None directly in the root
    size: int
    mtime_ns: int
    extras: str | None = None  # a table row's other columns (JSON object); None in folders


@dataclass(frozen=True)
class RemoteImage:
    """An image named by URL in a table (http, https or data:). The URL is its locator."""

    path: str          # the URL
    locator: bytes     # the URL's UTF-8 bytes
    root: str          # the table it was listed in
    name: str
    category: str | None
    extras: str | None = None
    size = None        # known once downloaded
    mtime_ns = None


@dataclass(frozen=True)
class Unreadable:
    """A file-system entry named like an image that is not a readable regular file."""

    path: str
    locator: bytes
    root: str
    reason: str


def display_path(path: str | bytes | os.PathLike) -> str:
    """A printable form of a path, even when its bytes are not valid UTF-8."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def not_a_file(mode: int) -> str:
    """The reason an entry of this `st_mode` (not a regular file) is not an image file."""
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a folder" if stat.S_ISDIR(mode) else "not a regular file")
    return f"{kind}, not an image file"


def _records(path: str, root: str, category: str | None) -> Iterator[ImageFile | Unreadable]:
    """The record of one entry, or those of an OME-Zarr plate's fields."""
    if omezarr.is_zarr_name(path) and os.path.isdir(path) and zarr_plates.is_plate(path):
        yield from _plate_records(path, root, category)
    else:
        yield _record(path, root, category)


def _record(path: str, root: str, category: str | None) -> ImageFile | Unreadable:
    locator = os.fsencode(path)
    shown = display_path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Unreadable(shown, locator, root, "broken symbolic link")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Unreadable(shown, locator, root, "a loop of symbolic links")
        return Unreadable(shown, locator, root, f"cannot read file information ({exc.strerror})")
    if stat.S_ISDIR(st.st_mode) and omezarr.is_zarr_name(path):
        return _zarr_record(path, root, category)
    if not stat.S_ISREG(st.st_mode):
        return Unreadable(shown, locator, root, not_a_file(st.st_mode))
    stem = os.path.splitext(os.path.basename(path))[0]
    return ImageFile(shown, locator, display_path(root), display_path(stem),
                     None if category is None else display_path(category), st.st_size,
                     st.st_mtime_ns)


def _zarr_record(path: str, root: str, category: str | None) -> ImageFile | Unreadable:
    """An OME-Zarr folder as one image: its size is that of all its files, its modification
    time their newest, so that a chunk rewritten deep inside it counts as a change."""
    locator = os.fsencode(path)
    try:
        size, mtime_ns = omezarr.tree_stat(locator)
    except OSError as exc:
        return Unreadable(display_path(path), locator, root,
                          f"an OME-Zarr folder that cannot be read ({exc.strerror or exc})")
    return ImageFile(display_path(path), locator, display_path(root),
                     display_path(omezarr.image_name(path)),
                     None if category is None else display_path(category), size, mtime_ns)


def _plate_records(path: str, root: str, category: str | None
                   ) -> Iterator[ImageFile | Unreadable]:
    """An OME-Zarr plate as its fields: each an OME-Zarr image (PLATE.zarr/A/1/0) with its
    plate columns as extras, in the category of the plate folder."""
    shown_root = display_path(root)
    fields = 0
    for field in zarr_plates.plate_fields(path, omezarr.image_name(path)):
        locator = os.fsencode(field.folder)
        if field.problem is not None:
            yield Unreadable(display_path(field.folder), locator, shown_root, field.problem)
            continue
        record = _zarr_record(field.folder, root, category)
        if isinstance(record, ImageFile):
            record = replace(record, name=field.name,
                             extras=json.dumps(field.columns, ensure_ascii=False))
        fields += 1
        yield record
    if not fields:
        yield Unreadable(display_path(path), os.fsencode(path), shown_root,
                         "an OME-Zarr plate that lists no field of any well")


def scan(path: str | os.PathLike) -> Iterator[ImageFile | Unreadable]:
    """Yield every image file under `path` (a folder, walked recursively, or one file)."""
    root = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise SourceError(f"{display_path(path)}: no such file or folder") from None
    except OSError as exc:
        raise SourceError(f"{display_path(path)}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode) and not omezarr.is_zarr_name(root):
        yield from _walk(root)
    else:
        yield from _records(root, root, None)


def _walk(root: str) -> Iterator[ImageFile | Unreadable]:
    # Real folders are walked before folders reached through symbolic links, so a file seen
    # both ways is listed under its real path; a folder is entered once, which ends loops.
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[str] = [root]
    linked: list[str] = []
    while stack or linked:
        folder = stack.pop() if stack else linked.pop(0)
        try:
            st = os.stat(folder)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        rel = os.path.relpath(folder, root)
        category = None if rel == "." else rel
        subfolders: list[str] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir and omezarr.is_zarr_name(entry.name):
                # One image (or a plate's fields), not a folder to walk.
                yield from _records(entry.path, root, category)
            elif is_dir:
                (linked if entry.is_symlink() else subfolders).append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                yield _record(entry.path, root, category)
        stack.extend(reversed(subfolders))


def resolve(path: str | os.PathLike) -> bytes:
    """The store identity of a file path (or an image URL) given on the command line."""
    if isinstance(path, str) and (is_url(path) or is_store_url(path)):
        return path.encode("utf-8")
    return os.fsencode(os.path.abspath(os.fspath(path)))


__all__ = ["IMAGE_SUFFIXES", "ImageFile", "RemoteImage", "Unreadable", "SourceError", "scan",
           "resolve", "display_path", "not_a_file"]
