"""Images in object stores (`s3://bucket/prefix`, `gs://`, `az://`, any fsspec URL): a prefix is
listed like a folder into `ImageFile` records (the URL is the locator), and an object's bytes
are read by its URL, on the driver or on a cluster's workers alike.

Credentials and endpoints come from each store's own configuration (for S3: the AWS_*
variables, AWS_ENDPOINT_URL, ~/.aws; fsspec's config files), never from lookalike. fsspec and
the package of each protocol (s3fs, gcsfs, adlfs) are optional: a missing one is named in one line.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..locators import url_name, url_scheme
from .decode import ImageSkipped
from .folders import IMAGE_SUFFIXES, ImageFile, SourceError, Unreadable

#: What a store's listing calls an object's last change and its version tag, by package
#: (s3fs: LastModified and ETag; gcsfs: updated and etag; adlfs: last_modified and etag).
_TIME_KEYS = ("LastModified", "last_modified", "updated", "mtime", "modified", "created")
_TAG_KEYS = ("ETag", "etag", "md5Hash", "content_md5", "checksum")


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) for a store URL; SourceError with one line when
    fsspec or the protocol's package is missing, or the scheme is unknown."""
    try:
        import fsspec
    except ImportError:
        raise SourceError(f"{url}: object stores are read through fsspec: pip install "
                          "'lookalike[cloud]'") from None
    scheme = url_scheme(url) or "?"
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec's message names the package ("Install s3fs to ...")
        raise SourceError(f"{url}: {str(exc).splitlines()[0].rstrip('.')} "
                          f"(pip install it to read {scheme}:// URLs)") from None
    except ValueError:
        raise SourceError(f"{url}: no file system for {scheme}:// URLs is known to fsspec") \
            from None
    except Exception as exc:  # a protocol that connects at once (ftp://) and cannot
        raise SourceError(f"{url}: cannot reach the store ({_reason(exc)})") from None


def scan_store(url: str) -> Iterator[ImageFile | Unreadable]:
    """Every image object under the prefix `url` (walked recursively, dot-named objects and
    folders skipped as in a folder), or the one object it names."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    try:
        fs.invalidate_cache(root)  # a listing cached by an earlier run in this process
        listed = fs.find(root, detail=True)
        if not listed and fs.isfile(root):
            listed = {root: fs.info(root)}
    except FileNotFoundError:
        raise SourceError(f"{url}: no such bucket or container; check the name (and "
                          "AWS_ENDPOINT_URL or the store's configuration)") from None
    except PermissionError:
        raise SourceError(f"{url}: access denied; check the store's credentials") from None
    except Exception as exc:
        raise SourceError(f"{url}: cannot list it ({_reason(exc)})") from None
    if not listed:
        raise SourceError(f"{url}: nothing there (no object has this prefix)")
    protocol = url.split("://", 1)[0]
    for path in sorted(listed):
        info = listed[path]
        relative = posixpath.relpath(path, root) if path != root else posixpath.basename(path)
        parts = relative.split("/")
        if info.get("type", "file") != "file" or any(p.startswith(".") for p in parts):
            continue
        if posixpath.splitext(path)[1].lower() not in IMAGE_SUFFIXES and path != root:
            continue
        folder = "/".join(parts[:-1])
        yield object_record(f"{protocol}://{path}", url.rstrip("/"), folder or None, info)


def object_record(url: str, root: str, category: str | None, info: dict) -> ImageFile:
    """The record of one object from what the store's listing says of it."""
    return ImageFile(url, url.encode("utf-8"), root, url_name(url), category,
                     int(info.get("size") or 0), version_stamp(info))


def stat_object(url: str, root: str, category: str | None) -> ImageFile | Unreadable:
    """The record of one object named in a table, or Unreadable with the reason."""
    try:
        fs, path = filesystem(url)
        info = fs.info(path)
    except SourceError as exc:
        return Unreadable(url, url.encode("utf-8"), root, str(exc).split(": ", 1)[-1])
    except FileNotFoundError:
        return Unreadable(url, url.encode("utf-8"), root, "no such object (named in the table)")
    except Exception as exc:
        return Unreadable(url, url.encode("utf-8"), root, f"cannot read object information "
                                                          f"({_reason(exc)})")
    return object_record(url, root, category, info)


def version_stamp(info: dict) -> int:
    """What stands for a file's modification time: the object's last change to the second
    (what S3 and Azure give), plus a fingerprint of its ETag in the nanoseconds. An object
    rewritten with the same size within the same second then still counts as changed, and the
    time shown (duplicates' "modified") is right to the second."""
    when = next((info[k] for k in _TIME_KEYS if info.get(k) is not None), None)
    tag = next((str(info[k]) for k in _TAG_KEYS if info.get(k)), None)
    seconds = _seconds(when)
    if seconds is None and tag is None:
        return 0  # a store that tells neither: the size alone tells a change
    fingerprint = 0 if tag is None else int.from_bytes(
        hashlib.blake2b(tag.encode(), digest_size=8).digest(), "big") % 1_000_000_000
    return (seconds or 0) * 1_000_000_000 + fingerprint


def _seconds(when: Any) -> int | None:
    if isinstance(when, datetime):
        return int(when.timestamp())
    if isinstance(when, (int, float)):
        return int(when)
    if isinstance(when, str):
        try:
            return int(datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def read_object(url: str, max_bytes: int) -> bytes:
    """The bytes of the object at `url`, or ImageSkipped with the reason they cannot be had
    (one ranged GET: a larger object is refused after max_bytes + 1 bytes, not read whole)."""
    try:
        fs, path = filesystem(url)
        data = fs.cat_file(path, start=0, end=max_bytes + 1)
    except SourceError as exc:
        raise ImageSkipped(str(exc).split(": ", 1)[-1]) from None
    except FileNotFoundError:
        raise ImageSkipped("no such object (deleted since it was listed?)") from None
    except PermissionError:
        raise ImageSkipped("access denied to the object") from None
    except Exception as exc:  # network libraries raise their own types, not only OSError
        raise ImageSkipped(f"cannot read object ({_reason(exc)})") from None
    if len(data) > max_bytes:
        raise ImageSkipped(f"object too large (more than {max_bytes:,} bytes; the limit is "
                           f"{max_bytes:,})")
    return bytes(data)


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["filesystem", "scan_store", "stat_object", "read_object", "object_record",
           "version_stamp"]
