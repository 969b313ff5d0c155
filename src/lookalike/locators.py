"""What a reference string is: an http(s) URL, a `data:` URL, an object store's URL (`s3://`,
another fsspec scheme), or a file path.

A leaf: the folder scanner, the table reader, the downloader, the exports and the web app all ask
here, so that a `data:` URL is recognised one way everywhere (case-insensitively, as RFC 3986)."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes, urlsplit

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_HTTP = re.compile(r"^https?://", re.IGNORECASE)
_DATA = re.compile(r"^data:", re.IGNORECASE)


def is_data_url(text: str) -> bool:
    """Whether a value is a `data:` URL: the whole image in the string itself."""
    return _DATA.match(text) is not None


def is_http(text: str) -> bool:
    """Whether a value is an http or https URL."""
    return _HTTP.match(text) is not None


def is_url(text: str) -> bool:
    """Whether a value names an image by URL (http, https or data) rather than by file path."""
    return is_http(text) or is_data_url(text)


def url_scheme(text: str) -> str | None:
    """The scheme of a URL-like value (`ftp` in `ftp://...`), None for a plain path. A
    one-letter scheme is a Windows drive (`C:\\...`), not a URL."""
    m = _SCHEME.match(text)
    if not m or len(m.group(1)) == 1:
        return None
    if text[m.end():m.end() + 2] != "//" and m.group(1).lower() != "data":
        return None
    return m.group(1).lower()


#: Schemes lookalike reads itself: http(s) and data: by the downloader, file: as a path. Any
#: other `scheme://` names an object store or a remote file system, read through fsspec.
_OWN_SCHEMES = frozenset({"http", "https", "data", "file"})


def is_store_url(text: str) -> bool:
    """Whether a value names an object in an object store (`s3://bucket/key`, `gs://`,
    `az://`, any other fsspec URL) rather than a file path or a downloadable URL."""
    scheme = url_scheme(text)
    return scheme is not None and scheme not in _OWN_SCHEMES


def url_name(url: str) -> str:
    """A short name for an image known by URL: the stem of the last part of its path."""
    if is_data_url(url):
        return "data URL"
    path = unquote_to_bytes(urlsplit(url).path).decode("utf-8", "replace").rstrip("/")
    last = path.rsplit("/", 1)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last[1:] else last
    return stem or urlsplit(url).hostname or url


__all__ = ["is_data_url", "is_http", "is_url", "is_store_url", "url_scheme", "url_name"]
