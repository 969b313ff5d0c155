"""Images named by URL: downloaded concurrently into an on-disk cache, so re-indexing never
downloads again and the web viewer serves them without touching the network.

http(s) downloads have timeouts, a size limit and retries with exponential backoff (for
connection errors, timeouts, 5xx and 429 answers; never for other 4xx). What arrives is kept
only if its bytes are an image, whatever the URL or the server's Content-Type say. `data:`
URLs are decoded locally. A URL that cannot be used raises `DownloadFailed` with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import random
import threading
import time
import warnings
from collections.abc import Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

from ..errors import LookalikeError
from ..fileio import bounded_map
from ..locators import is_data_url, is_http, is_url, url_name, url_scheme
from ..version import __version__
from .decode import ImageSkipped

if TYPE_CHECKING:
    import httpx

#: Largest download accepted, in bytes.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Seconds to wait for a connection, or for the next bytes of an answer.
DEFAULT_TIMEOUT = 30.0
#: Seconds one attempt may take in all (a server can trickle bytes forever otherwise).
DEFAULT_TOTAL_TIMEOUT = 300.0
#: Further attempts after the first one fails in a way that may pass.
DEFAULT_RETRIES = 3
#: The wait before the first retry; it doubles for each further one.
DEFAULT_BACKOFF = 0.5
#: Downloads in flight at once.
DEFAULT_CONCURRENCY = 8

#: A Retry-After longer than this is not honoured (the usual backoff applies instead).
_MAX_RETRY_AFTER = 60.0


class DownloadFailed(ImageSkipped):
    """A URL whose image could not be had; `reason` says why, for people."""


def cache_dir() -> Path:
    """`$LOOKALIKE_CACHE_DIR/downloads`, else `downloads` in the user cache folder."""
    from ..models.cache import cache_root

    return cache_root() / "downloads"


def decode_data_url(url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes a `data:` URL carries (base64 or percent-encoded). Raises DownloadFailed."""
    header, comma, payload = url.partition(",")
    if not comma:
        raise DownloadFailed("invalid data: URL (no comma before the data)")
    if header.lower().endswith(";base64"):
        if len(payload) * 3 // 4 > max_bytes + 3:
            raise DownloadFailed(_too_large(len(payload) * 3 // 4, max_bytes))
        try:
            data = base64.b64decode(unquote_to_bytes(payload), validate=False)
        except (binascii.Error, ValueError):
            raise DownloadFailed("invalid data: URL (bad base64)") from None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise DownloadFailed(_too_large(len(data), max_bytes))
    return data


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    more = "more than " if at_least else ""
    return f"download too large ({more}{size:,} bytes; the limit is {limit:,})"


def sniff(data: bytes) -> str | None:
    """The image format of some bytes (Pillow's name, e.g. "PNG"), or None if they are not
    an image: the bytes decide, not a file name or a Content-Type."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.format or "image"
    except Image.DecompressionBombError:
        return "image"  # an image all the same; decoding will give the precise reason
    except Exception:
        return None


def _not_an_image(data: bytes, content_type: str | None, who: str = "the server sent") -> str:
    sent = content_type.split(";")[0].strip() if content_type else "no Content-Type"
    start = data[:24]
    shown = start.decode("ascii", "replace") if start.isascii() else start.hex(" ")
    return (f"not an image ({who} {sent}, {len(data):,} bytes starting {shown!r})" if data
            else f"not an image ({who} {sent} and no bytes)")


@dataclass
class Fetched:
    """The bytes of a URL and whether they came over the network (else from the cache)."""

    data: bytes
    downloaded: bool


@dataclass
class Downloader:
    """Fetches images by URL into `cache` (default `cache_dir()`); use as a context manager.

    Thread-safe: one HTTP connection pool is shared by every thread."""

    cache: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_bytes: int = DEFAULT_MAX_BYTES
    concurrency: int = DEFAULT_CONCURRENCY
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.cache = Path(self.cache) if self.cache is not None else cache_dir()
        for name in ("timeout", "total_timeout", "max_bytes", "concurrency"):
            if not getattr(self, name) > 0:
                raise LookalikeError(f"Downloader {name} must be positive, not "
                                     f"{getattr(self, name)!r}")
        if self.retries < 0 or self.backoff < 0:
            raise LookalikeError("Downloader retries and backoff cannot be negative")

    # -- the cache ------------------------------------------------------------------------------

    def cache_path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
        folder = self.cache if self.cache is not None else cache_dir()  # set by __post_init__
        return folder / digest[:2] / digest

    def is_cached(self, url: str) -> bool:
        return is_data_url(url) or self.cache_path(url).is_file()

    def cached(self, url: str) -> bytes | None:
        """The bytes of a URL if they are at hand without the network (cache or data:)."""
        if is_data_url(url):
            try:
                return decode_data_url(url, self.max_bytes)
            except DownloadFailed:
                return None
        try:
            return self.cache_path(url).read_bytes()
        except OSError:
            return None

    # -- fetching -------------------------------------------------------------------------------

    def fetch(self, url: str) -> Fetched:
        """The bytes of the image at `url`, from the cache when there; else downloaded, checked
        to be an image and cached. Raises DownloadFailed."""
        if is_data_url(url):
            data = decode_data_url(url, self.max_bytes)
            if sniff(data) is None:
                raise DownloadFailed(_not_an_image(data, url[5:].split(",")[0] or "text/plain",
                                                   "the data: URL holds"))
            return Fetched(data, downloaded=False)
        if not is_http(url):
            scheme = url_scheme(url) or "?"
            raise DownloadFailed(f"unsupported URL scheme {scheme!r} (only http, https and data "
                                 "URLs are read)")
        cached = self.cached(url)
        if cached is not None:
            return Fetched(cached, downloaded=False)
        data, content_type = self._download(url)
        if sniff(data) is None:
            raise DownloadFailed(_not_an_image(data, content_type))
        self._keep(url, data)
        return Fetched(data, downloaded=True)

    def fetch_many(self, urls: Iterable[str]
                   ) -> Generator[tuple[str, Fetched | DownloadFailed]]:
        """(url, Fetched or DownloadFailed) for each URL, in order, `concurrency` at a time."""
        def one(url: str):
            try:
                return url, self.fetch(url)
            except DownloadFailed as exc:
                return url, exc

        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="lookalike-download")
        try:
            yield from bounded_map(pool, one, urls, window=4 * self.concurrency)
        finally:  # stopped early (Ctrl-C): drop what is queued, do not wait for what is in flight
            pool.shutdown(wait=False, cancel_futures=True)

    def _keep(self, url: str, data: bytes) -> None:
        from ..models.cache import write_atomically

        try:
            write_atomically(self.cache_path(url), data)
        except OSError:
            pass  # a full disk or a read-only cache: the image is still indexed this time

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=httpx.Timeout(self.timeout), follow_redirects=True,
                    headers={"User-Agent": f"lookalike/{__version__}"},
                    limits=httpx.Limits(max_connections=max(self.concurrency, 1)))
            return self._client

    def _download(self, url: str) -> tuple[bytes, str | None]:
        import httpx

        client = self._http()
        tries = self.retries + 1
        for attempt in range(1, tries + 1):
            wait = None
            try:
                return self._attempt(client, url)
            except _Retryable as exc:
                if attempt == tries:
                    raise DownloadFailed(f"download failed: {exc.reason} "
                                         f"({_tries(tries)})") from None
                wait = exc.retry_after
            except httpx.TimeoutException as exc:
                reason = (f"cannot connect within {self.timeout:g} s"
                          if isinstance(exc, httpx.ConnectTimeout)
                          else f"timed out, nothing received for {self.timeout:g} s")
                if attempt == tries:
                    raise DownloadFailed(f"download failed: {reason} ({_tries(tries)})") from None
            except httpx.TransportError as exc:
                if attempt == tries:
                    raise DownloadFailed(f"download failed: {_transport_failure(exc)} "
                                         f"({_tries(tries)})") from None
            except httpx.InvalidURL:
                raise DownloadFailed("download failed: invalid URL") from None
            delay = self.backoff * 2 ** (attempt - 1) * (1 + 0.25 * random.random())
            time.sleep(delay if wait is None else max(wait, delay))
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, client, url: str) -> tuple[bytes, str | None]:
        deadline = time.monotonic() + self.total_timeout
        with client.stream("GET", url) as response:
            status = response.status_code
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status} {response.reason_phrase}".rstrip(),
                                 _retry_after(response.headers.get("retry-after")))
            if status >= 400:
                raise DownloadFailed(f"download failed: HTTP {status} "
                                     f"{response.reason_phrase}".rstrip())
            if not 200 <= status < 300:  # a redirect that was not followed (e.g. 304)
                raise DownloadFailed(f"download failed: HTTP {status} {response.reason_phrase} "
                                     "(expected 200 OK)")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise DownloadFailed(_too_large(int(declared), self.max_bytes))
            chunks, received = [], 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > self.max_bytes:
                    raise DownloadFailed(_too_large(self.max_bytes, self.max_bytes,
                                                    at_least=True))
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise DownloadFailed(f"download failed: took longer than "
                                         f"{self.total_timeout:g} s")
            return b"".join(chunks), response.headers.get("content-type")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are ignored)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return None if seconds is None or seconds < 0 or seconds > _MAX_RETRY_AFTER else seconds


def _transport_failure(exc) -> str:
    """One plain reason for a connection that failed (httpx names its own classes and the
    socket's errno in its messages)."""
    import httpx

    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text:
            return "connection refused"
        if any(word in text for word in ("name or service", "nodename", "name resolution",
                                         "getaddrinfo", "no address")):
            return "host name not found"
        if "certificate" in text or "ssl" in text or "tls" in text:
            return "the server's TLS certificate was not accepted"
        if "unreachable" in text:
            return "network unreachable"
        return "cannot connect"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    return "connection lost"


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"


__all__ = ["Downloader", "DownloadFailed", "Fetched", "is_url", "is_http", "url_scheme",
           "url_name", "cache_dir", "decode_data_url", "sniff", "DEFAULT_MAX_BYTES",
           "DEFAULT_TIMEOUT", "DEFAULT_RETRIES"]
