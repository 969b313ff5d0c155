"""Indexing: scan sources, decode what changed, embed it in batches, commit batch by batch.

Decoding runs in a thread pool a few batches ahead of inference, so the two overlap (Pillow
and onnxruntime both release the GIL); images named by URL are downloaded by a pool of their
own ahead of decoding. Every batch is one transaction: an interrupted run loses at most the
batch in flight, and the next run resumes where it stopped, because files whose size and
modification time are unchanged are not opened again (and URLs already embedded, whose bytes
are in the download cache, are not fetched again).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from . import decode as images
from ..locators import is_http
from .downloads import DownloadFailed, Downloader, Fetched
from ..progress import progress_bar
from .folders import ImageFile, RemoteImage, SourceError, Unreadable, not_a_file, scan
from ..catalogue.store import ImageRow, Store
from ..fileio import bounded_map
from .tables import TableInfo, TableOptions, is_table, table_images

#: Files larger than this are skipped without being read.
DEFAULT_MAX_BYTES = 1 << 31


@dataclass
class IndexReport:
    """What one `index` run did. `skipped` lists (path, reason) for every file not usable."""

    model: str
    found: int = 0
    embedded: int = 0
    from_cache: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0            # the whole run: scanning, downloads, model loading included
    embed_seconds: float = 0.0      # reading, decoding, embedding and storing the new images
    interrupted: bool = False
    downloaded: int = 0             # images fetched over the network
    download_cache_hits: int = 0    # images named by URL whose bytes were in the cache
    metadata_updated: int = 0       # unchanged images whose table columns changed
    tables: list[TableInfo] = field(default_factory=list)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        """Skip counts by the reason's first words (details in brackets dropped)."""
        return dict(Counter(reason.split(" (")[0] for _, reason in self.skipped).most_common())

    @property
    def images_per_second(self) -> float:
        """Images embedded per second of `embed_seconds`: the rate of the pipeline itself,
        neither diluted by files found unchanged nor by loading the model."""
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0


@dataclass
class _Prepared:
    file: ImageFile | RemoteImage
    content_hash: bytes | None = None
    width: int | None = None
    height: int | None = None
    pixels: np.ndarray | None = None
    skip_reason: str | None = None
    size: int | None = None

    def row(self) -> ImageRow:
        f = self.file
        return ImageRow(f.locator, f.path, f.root, f.name, f.category,
                        f.size if self.size is None else self.size, f.mtime_ns,
                        self.width, self.height, self.content_hash, self.skip_reason,
                        extras=f.extras)


def read_file(locator: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a file, or ImageSkipped with the reason it cannot be read. Never blocks
    on a named pipe or a device (opened without waiting, then refused)."""
    try:
        fd = os.open(locator, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise images.ImageSkipped(f"cannot read file ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise images.ImageSkipped(not_a_file(info.st_mode))
        if info.st_size > max_bytes:
            raise images.ImageSkipped(f"file too large ({info.st_size:,} bytes; the limit is "
                                      f"{max_bytes:,})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise images.ImageSkipped(f"cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def content_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def index_paths(store: Store, paths: Sequence[str | os.PathLike], model: str, *,
                batch_size: int = 32, threads: int | None = None, progress: bool = True,
                max_pixels: int = images.DEFAULT_MAX_PIXELS,
                max_bytes: int = DEFAULT_MAX_BYTES,
                decode_threads: int | None = None,
                load_model: Callable | None = None,
                tables: TableOptions | None = None,
                downloader: Downloader | None = None) -> IndexReport:
    """Bring the catalogue up to date with `paths` (folders, image files and tables that list
    images by path or URL) and make sure every image has a `model` vector.

    `tables` says how to read the tables among `paths`; `downloader` fetches the images named
    by URL (default: a `Downloader` with its default settings and cache)."""
    from ..models import get_model_info, load_model as _load_model

    info = get_model_info(model)
    load_model = load_model or _load_model
    started = time.perf_counter()
    report = IndexReport(model=info.name)
    threads = threads or default_threads()

    found, report.tables = _find(paths, tables)  # raises SourceError for a path not there
    report.found = len(found)
    known = store.known_files()
    embedded_hashes = store.hashes_with_embedding(info.name)
    own_downloader = downloader is None
    if own_downloader:
        downloader = Downloader()

    seen = {item.locator for item in found}
    vanished: list[int] = []
    for path in paths:
        absolute = os.path.abspath(os.fspath(path))
        if os.path.isdir(absolute):
            vanished += [i for loc, i in store.ids_under(os.fsencode(absolute)).items() if loc not in seen]
    for table in report.tables:  # rows taken out of a table leave the collection
        vanished += [i for loc, i in store.ids_from_root(table.path).items() if loc not in seen]
    report.removed = store.remove(vanished) if vanished else 0
    _remember_attributions(store, paths)

    todo: list[ImageFile | RemoteImage] = []
    unreadable_rows: list[ImageRow] = []
    metadata: list[tuple] = []
    for item in found:
        if isinstance(item, Unreadable):
            report.skipped.append((item.path, item.reason))
            unreadable_rows.append(ImageRow(item.locator, item.path, item.root, None, None, None,
                                            None, skip_reason=item.reason))
            continue
        k = known.get(item.locator)
        if isinstance(item, RemoteImage):
            # A URL already embedded is not fetched again while its bytes are in the cache
            # (the web viewer serves them from there); one that failed is tried again.
            unchanged = (k is not None and k.skip_reason is None
                         and k.content_hash in embedded_hashes and downloader.is_cached(item.path))
            if not unchanged:
                todo.append(item)
                continue
        elif k is None or k.size != item.size or k.mtime_ns != item.mtime_ns:
            todo.append(item)
            continue
        if item.extras is not None and (k.root, k.name, k.category, k.extras) != (
                item.root, item.name, item.category, item.extras):
            metadata.append((item.locator, item.root, item.name, item.category, item.extras))
        if k.skip_reason is not None:
            report.skipped.append((item.path, k.skip_reason))
        elif k.content_hash in embedded_hashes:
            report.unchanged += 1
        else:
            todo.append(item)
    if unreadable_rows:
        store.write(unreadable_rows)
    if metadata:
        store.update_metadata(metadata)
        report.metadata_updated = len(metadata)

    size = info.input_size

    def prepare(staged: tuple[ImageFile | RemoteImage, Fetched | DownloadFailed | None]) -> _Prepared:
        f, fetched = staged
        p = _Prepared(f)
        try:
            if isinstance(fetched, DownloadFailed):
                raise fetched
            data = fetched.data if fetched is not None else read_file(f.locator, max_bytes)
            if fetched is not None:
                p.size = len(data)
            p.content_hash = content_hash(data)
            if p.content_hash in embedded_hashes:
                p.width, p.height = images.read_size(data, max_pixels)
            else:
                decoded = images.decode(data, size, max_pixels=max_pixels)
                p.width, p.height, p.pixels = decoded.width, decoded.height, decoded.pixels
        except images.ImageSkipped as exc:
            p.skip_reason = exc.reason
            p.pixels = None
        return p

    embedder = None
    loading_seconds = 0.0
    rows: list[ImageRow] = []
    batch: list[_Prepared] = []

    def flush() -> None:
        nonlocal embedder, loading_seconds
        vectors: list[tuple[bytes, str, np.ndarray]] = []
        if batch:
            if embedder is None:
                loading = time.perf_counter()
                embedder = load_model(info.name, threads=threads)
                loading_seconds = time.perf_counter() - loading
            out = embedder.embed(np.stack([p.pixels for p in batch]))
            seen_in_batch = set()
            for p, v in zip(batch, out):
                if p.content_hash not in seen_in_batch:
                    vectors.append((p.content_hash, info.name, v))
                    seen_in_batch.add(p.content_hash)
                embedded_hashes.add(p.content_hash)
            report.embedded += len(batch)
        store.write(rows, vectors)
        rows.clear()
        batch.clear()

    remote = sum(isinstance(item, RemoteImage) for item in todo)
    download_bar = progress_bar(remote, progress, "downloading", position=0)
    bar = progress_bar(len(todo), progress, "embedding", position=1 if remote else None)
    # Twice as many decoders as cores keeps both busy while inference waits on its threads
    # (measured: +3-5 % images/s on 1600x1200 JPEGs over one decoder per core).
    pool = ThreadPoolExecutor(max_workers=decode_threads or 2 * threads,
                              thread_name_prefix="lookalike-decode")
    staged = _fetched(todo, downloader, report, download_bar) if remote else \
        ((item, None) for item in todo)
    embed_started = time.perf_counter()
    try:
        for p in bounded_map(pool, prepare, staged, window=batch_size * 3):
            rows.append(p.row())
            if p.skip_reason is not None:
                report.skipped.append((p.file.path, p.skip_reason))
            elif p.pixels is None:
                report.from_cache += 1
            elif p.content_hash in embedded_hashes:  # a copy of a file embedded earlier in this run
                report.from_cache += 1
            else:
                batch.append(p)
            if len(batch) >= batch_size or len(rows) >= 1000:
                flush()
            bar.update(1)
        flush()
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if hasattr(staged, "close"):
            staged.close()  # stops the downloads still queued
        if own_downloader:
            downloader.close()
        bar.close()
        download_bar.close()
        report.seconds = time.perf_counter() - started
        if report.embedded:
            report.embed_seconds = time.perf_counter() - embed_started - loading_seconds
    store.set_setting("last_model", info.name)
    return report


def _find(paths: Sequence[str | os.PathLike], options: TableOptions | None
          ) -> tuple[list[ImageFile | RemoteImage | Unreadable], list[TableInfo]]:
    """Every image the paths name (folders walked, tables read), each locator once."""
    options = options or TableOptions()
    found: list[ImageFile | RemoteImage | Unreadable] = []
    infos: list[TableInfo] = []
    seen: set[bytes] = set()
    for path in paths:
        if is_table(path):
            info, items = table_images(path, options)
            infos.append(info)
        else:
            items = scan(path)
        for item in items:
            if item.locator not in seen:
                seen.add(item.locator)
                found.append(item)
    if options.given() and not infos:
        raise SourceError("--image-column, --category-column and --base-dir are for tables "
                          "(.csv, .tsv, .tab, .xlsx, .parquet); no path given is one")
    return found, infos


def _fetched(todo: Sequence[ImageFile | RemoteImage], downloader: Downloader,
             report: IndexReport, bar) -> Iterator[tuple]:
    """(item, Fetched or DownloadFailed) for URLs, (item, None) for files, in order, with
    `downloader.concurrency` downloads in flight."""
    fetched_urls = downloader.fetch_many(item.path for item in todo
                                         if isinstance(item, RemoteImage))
    try:
        for item in todo:
            if not isinstance(item, RemoteImage):
                yield item, None
                continue
            _, fetched = next(fetched_urls)
            if isinstance(fetched, Fetched):
                if fetched.downloaded:
                    report.downloaded += 1
                elif is_http(item.path):  # not a data: URL
                    report.download_cache_hits += 1
            bar.update(1)
            yield item, fetched
    finally:
        fetched_urls.close()


ATTRIBUTION_FILE = "ATTRIBUTION.txt"


def _remember_attributions(store: Store, paths: Sequence[str | os.PathLike]) -> None:
    """A folder's (or a table's folder's) ATTRIBUTION.txt (licence credits, e.g. Twemoji's
    CC-BY) is kept in the store so that every view of its images can show it."""
    for path in paths:
        folder = os.path.abspath(os.fspath(path))
        if is_table(folder):  # a table's credits sit beside it
            folder = os.path.dirname(folder)
        note = os.path.join(folder, ATTRIBUTION_FILE)
        if os.path.isfile(note):
            try:
                with open(note, encoding="utf-8", errors="replace") as fh:
                    text = fh.read(4096).strip()
            except OSError:
                continue
            if text:
                store.set_setting("attribution:" + os.path.dirname(note), text)


def embed_files(paths: Sequence[str | os.PathLike], model: str, *, threads: int | None = None,
                max_pixels: int = images.DEFAULT_MAX_PIXELS, embedder=None) -> np.ndarray:
    """Vectors for image files outside any collection (nothing is stored). Raises ImageSkipped."""
    from ..models import get_model_info, load_model

    info = get_model_info(model)
    pixels = [images.decode(read_file(os.fsencode(p)), info.input_size, max_pixels=max_pixels).pixels
              for p in paths]
    embedder = embedder or load_model(info.name, threads=threads)
    return embedder.embed(np.stack(pixels))
