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
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

from ..analysis.quality import measure
from ..analysis.tags import tags_from_logits
from ..catalogue.store import ImageRow, KnownFile, Store
from ..fileio import FileTooLarge, NotARegularFile, bounded_map, read_regular_file
from ..locators import is_http, is_store_url
from ..progress import progress_bar
from . import decode as images, omezarr
from .channels import reading_model
from .downloads import Downloader, DownloadFailed, Fetched
from .folders import ImageFile, RemoteImage, SourceError, Unreadable, not_a_file, scan
from .object_stores import read_object, scan_store
from .plate_columns import with_file_name_columns, with_ome_columns
from .reading import ReadingOptions
from .tables import TableInfo, TableOptions, is_table, table_images

if TYPE_CHECKING:  # the models (onnxruntime) are loaded on the first batch only
    from ..models.runtime import Model

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
    downloaded: int = 0             # images fetched over the network
    download_cache_hits: int = 0    # images named by URL whose bytes were in the cache
    metadata_updated: int = 0       # unchanged images whose table columns changed
    pattern_matched: int = 0        # images whose file name the --pattern matched
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
    quality: tuple[float, ...] | None = None  # analysis.quality.MEASURES of the pixels
    skip_reason: str | None = None
    size: int | None = None             # of the bytes downloaded (a file's is in `file`)
    downloaded: bool = False            # fetched over the network
    download_cache_hit: bool = False    # a URL's bytes found in the download cache
    extras: str | None = None           # the file's with its OME-XML plate columns

    def row(self) -> ImageRow:
        f = self.file
        return ImageRow(f.locator, f.path, f.root, f.name, f.category,
                        f.size if self.size is None else self.size, f.mtime_ns,
                        self.width, self.height, self.content_hash, self.skip_reason,
                        extras=self.extras or f.extras)


def read_file(locator: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a file (or of an object in a store, by its URL), or ImageSkipped with the
    reason it cannot be read. Never blocks on a named pipe or a device (opened without
    waiting, then refused). An OME-Zarr folder gives its `omezarr.ZarrFolder` (its identity,
    and where to read it)."""
    if locator[:1] != b"/" and is_store_url(locator[:32].decode("latin-1")):
        return read_object(locator.decode("utf-8"), max_bytes)
    if omezarr.is_zarr_folder(locator):
        return omezarr.read_folder(locator)
    try:
        return read_regular_file(locator, max_bytes)
    except NotARegularFile as exc:
        raise images.ImageSkipped(not_a_file(exc.mode)) from None
    except FileTooLarge as exc:
        raise images.ImageSkipped(f"file too large ({exc.size:,} bytes; the limit is "
                                  f"{max_bytes:,})") from None
    except OSError as exc:
        raise images.ImageSkipped(f"cannot read file ({exc.strerror or exc})") from None


def content_hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class IndexOptions:
    """How a run reads and embeds images: the knobs `index_paths` takes, handed to each stage."""

    batch_size: int = 32                    # images per inference call and per transaction
    threads: int = field(default_factory=default_threads)  # inference threads
    progress: bool = True                   # bars on stderr
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES      # files larger than this are skipped unread
    decode_threads: int | None = None       # default: two per inference thread
    tables: TableOptions | None = None      # how to read the tables among the paths
    reading: ReadingOptions = field(default_factory=ReadingOptions)  # planes, channels, window
    pattern: str | None = None              # file names -> plate columns (plate_columns.py)
    retag: bool = False                     # read again images embedded before tags were kept

    @property
    def decoders(self) -> int:
        # Twice as many decoders as cores keeps both busy while inference waits on its threads
        # (measured: +3-5 % images/s on 1600x1200 JPEGs over one decoder per core).
        return self.decode_threads or 2 * self.threads


class _LazyModel:
    """The embedder of one run, loaded on its first batch: a run with nothing new to embed
    never loads it, and the time loading takes is kept out of the pipeline's rate."""

    def __init__(self, name: str, input_size: int, load: Callable, threads: int,
                 tags: bool = False, model: str | None = None) -> None:
        self.name, self.input_size = name, input_size  # name: the key its vectors are kept by
        self.model = model or name                     # the network (without reading options)
        self._load, self._threads = load, threads
        self._embedder: Model | None = None
        self.loading_seconds = 0.0
        self.tags = tags  # keep each image's ImageNet classes (a model with a classifier)

    def embed(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Vectors, and ImageNet logits when `tags` (None otherwise), from one run."""
        if self._embedder is None:
            loading = time.perf_counter()
            self._embedder = self._load(self.name, threads=self._threads)
            self.loading_seconds = time.perf_counter() - loading
        if self.tags:
            return self._embedder.embed_and_classify(pixels)
        return self._embedder.embed(pixels), None


#: What reads, embeds and commits the images left to do: (store, todo, model, embedded,
#: options, downloader, report), the counts going into the report.
EmbedStage = Callable[[Store, Sequence["ImageFile | RemoteImage"], "_LazyModel", set[bytes],
                       IndexOptions, Downloader, IndexReport], None]


def run_model(info, options: IndexOptions, load: Callable) -> _LazyModel:
    """The embedder of a run of `info`'s model read the `options.reading` way, loaded on its
    first batch (here, or on a cluster's worker). Tags need the built-in classifier on whole
    pictures: none for a user's model (no classifier) nor for per-channel vectors."""
    return _LazyModel(options.reading.vector_key(info.name), info.input_size,
                      reading_model(load, info.name, options.reading), options.threads,
                      tags=not info.file and not options.reading.per_channel, model=info.name)


def index_paths(store: Store, paths: Sequence[str | os.PathLike], model: str, *,
                batch_size: int = 32, threads: int | None = None, progress: bool = True,
                max_pixels: int = images.DEFAULT_MAX_PIXELS,
                max_bytes: int = DEFAULT_MAX_BYTES,
                decode_threads: int | None = None,
                load_model: Callable | None = None,
                tables: TableOptions | None = None,
                downloader: Downloader | None = None,
                reading: ReadingOptions | None = None,
                pattern: str | None = None, retag: bool = False,
                embed_stage: EmbedStage | None = None) -> IndexReport:
    """Bring the catalogue up to date with `paths` (folders, image files and tables that list
    images by path or URL) and make sure every image has a `model` vector.

    The keywords are those of `IndexOptions`; `load_model` (default `models.load_model`) is
    called on the first batch to embed; `downloader` fetches the images named by URL
    (default: a `Downloader` with its default settings and cache); `reading` says how
    scientific images are read (their vectors are stored under `reading.vector_key(model)`);
    `embed_stage` reads, embeds and commits what is new (default: here, batch by batch;
    `distributed.indexing` sends it to a cluster's workers instead)."""
    from ..models import get_model_info, load_model as default_load_model

    info = get_model_info(model)
    options = IndexOptions(batch_size=batch_size, threads=threads or default_threads(),
                           progress=progress, max_pixels=max_pixels, max_bytes=max_bytes,
                           decode_threads=decode_threads, tables=tables,
                           reading=reading or ReadingOptions(), pattern=pattern, retag=retag)
    embedder = run_model(info, options, load_model or default_load_model)
    stage = embed_stage or _embed_new
    if downloader is not None:
        return _index(store, paths, embedder, options, downloader, stage)
    with Downloader() as own:
        return _index(store, paths, embedder, options, own, stage)


def _index(store: Store, paths: Sequence[str | os.PathLike], model: _LazyModel,
           options: IndexOptions, downloader: Downloader, embed_stage: EmbedStage
           ) -> IndexReport:
    """The pipeline: list what `paths` name, forget what vanished, skip what is unchanged,
    then decode, embed and commit the rest batch by batch."""
    started = time.perf_counter()
    report = IndexReport(model=model.name)
    found, report.tables = list_images(paths, options.tables)  # SourceError: a path not there
    report.found = len(found)
    known = store.known_files()
    found, report.pattern_matched = with_file_name_columns(found, options.pattern, known)
    embedded = store.hashes_with_embedding(model.name)
    if model.tags and options.retag:  # contents embedded before tags were kept (schema 6)
        embedded &= store.hashes_with_tags(model.name)
    report.removed = _drop_vanished(store, paths, found, report.tables)
    _remember_attributions(store, paths)

    plan = _triage(found, known, embedded, downloader)
    report.skipped += plan.skipped
    report.unchanged = plan.unchanged
    if plan.unreadable:
        store.write(plan.unreadable)
    if plan.metadata:
        store.update_metadata(plan.metadata)
        report.metadata_updated = len(plan.metadata)

    embed_started = time.perf_counter()
    embed_stage(store, plan.todo, model, embedded, options, downloader, report)
    if report.embedded:
        report.embed_seconds = time.perf_counter() - embed_started - model.loading_seconds
    report.seconds = time.perf_counter() - started
    store.set_setting("last_model", model.name)
    return report


def list_images(paths: Sequence[str | os.PathLike], options: TableOptions | None
                ) -> tuple[list[ImageFile | RemoteImage | Unreadable], list[TableInfo]]:
    """Every image the paths name (folders walked, tables read), each locator once."""
    options = options or TableOptions()
    found: list[ImageFile | RemoteImage | Unreadable] = []
    infos: list[TableInfo] = []
    seen: set[bytes] = set()
    for path in paths:
        items: Iterable[ImageFile | RemoteImage | Unreadable]
        if is_table(path):
            info, items = table_images(path, options)
            infos.append(info)
        elif isinstance(path, str) and is_store_url(path):
            items = scan_store(path)
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


def _drop_vanished(store: Store, paths: Sequence[str | os.PathLike],
                   found: Sequence[ImageFile | RemoteImage | Unreadable],
                   tables: Sequence[TableInfo]) -> int:
    """Forget the images under the folders given that are there no more, and the rows taken
    out of the tables given; returns how many were forgotten."""
    seen = {item.locator for item in found}
    vanished: list[int] = []
    for path in paths:
        if isinstance(path, str) and is_store_url(path):  # a prefix listed whole
            under = store.ids_under(path.encode("utf-8"))
            vanished += [i for loc, i in under.items() if loc not in seen]
            continue
        absolute = os.path.abspath(os.fspath(path))
        if os.path.isdir(absolute):
            under = store.ids_under(os.fsencode(absolute))
            vanished += [i for loc, i in under.items() if loc not in seen]
    for table in tables:
        vanished += [i for loc, i in store.ids_from_root(table.path).items() if loc not in seen]
    return store.remove(vanished) if vanished else 0


@dataclass
class _Triage:
    """The images found, sorted by what the catalogue already knows of them."""

    todo: list[ImageFile | RemoteImage] = field(default_factory=list)  # to read
    unchanged: int = 0                                                  # embedded already
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unreadable: list[ImageRow] = field(default_factory=list)            # rows to write
    metadata: list[tuple] = field(default_factory=list)                 # new table columns


def _triage(found: Sequence[ImageFile | RemoteImage | Unreadable], known: dict[bytes, KnownFile],
            embedded: set[bytes], downloader: Downloader) -> _Triage:
    """What is left to read of `found`, without opening a file: only what is new or changed,
    or catalogued without its vector for this model."""
    plan = _Triage()
    for item in found:
        if isinstance(item, Unreadable):
            plan.skipped.append((item.path, item.reason))
            plan.unreadable.append(ImageRow(item.locator, item.path, item.root, None, None, None,
                                            None, skip_reason=item.reason))
            continue
        k = known.get(item.locator)
        if k is None or not _unchanged(item, k, embedded, downloader):
            plan.todo.append(item)
            continue
        if item.extras is not None and (k.root, k.name, k.category, k.extras) != (
                item.root, item.name, item.category, item.extras):
            plan.metadata.append((item.locator, item.root, item.name, item.category, item.extras))
        if k.skip_reason is not None:
            plan.skipped.append((item.path, k.skip_reason))
        elif k.content_hash in embedded:
            plan.unchanged += 1
        else:
            plan.todo.append(item)
    return plan


def _unchanged(item: ImageFile | RemoteImage, k: KnownFile, embedded: set[bytes],
               downloader: Downloader) -> bool:
    """Whether a catalogued image may be taken as it is: a file of the same size and
    modification time; a URL already embedded, while its bytes are in the download cache (the
    web viewer serves them from there; one that failed is tried again)."""
    if isinstance(item, RemoteImage):
        return (k.skip_reason is None and k.content_hash in embedded
                and downloader.is_cached(item.path))
    return k.size == item.size and k.mtime_ns == item.mtime_ns


@dataclass
class _Batch:
    """Consecutive images read: a catalogue row for each, the pixels of those to embed, and
    what they add to the counts; committed in one transaction."""

    rows: list[ImageRow] = field(default_factory=list)
    to_embed: list[_Prepared] = field(default_factory=list)
    quality: list[tuple[bytes, tuple[float, ...]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    from_cache: int = 0
    downloaded: int = 0
    download_cache_hits: int = 0
    vectors: list[tuple[bytes, str, np.ndarray]] = field(default_factory=list)  # once embedded
    tags: list[tuple[bytes, str, int, float]] = field(default_factory=list)     # (hash, model,
    #                                                  ImageNet class, probability), likewise

    @classmethod
    def joined(cls, batches: Iterable[_Batch]) -> _Batch:
        """One batch holding all of `batches` (every field's lists joined, counts summed): a
        cluster worker's shard, committed by the driver in one transaction."""
        out = cls()
        for batch in batches:
            for f in fields(cls):
                setattr(out, f.name, getattr(out, f.name) + getattr(batch, f.name))
        return out

    def drop_known(self, embedded: set[bytes]) -> None:
        """Count the images whose content `embedded` holds as taken from the cache, and drop
        their vectors: for a shard embedded on a worker that did not know them."""
        new = [p for p in self.to_embed if p.content_hash not in embedded]
        self.from_cache += len(self.to_embed) - len(new)
        self.to_embed = new
        self.vectors = [v for v in self.vectors if v[0] not in embedded]
        self.tags = [t for t in self.tags if t[0] not in embedded]


def _embed_new(store: Store, todo: Sequence[ImageFile | RemoteImage], model: _LazyModel,
               embedded: set[bytes], options: IndexOptions, downloader: Downloader,
               report: IndexReport) -> None:
    """Read, decode, embed and commit `todo`, batch by batch; the counts go into `report`."""
    with closing(embed_batches(todo, model, embedded, options, downloader)) as batches:
        for batch in batches:
            commit_batch(store, batch)
            tally_batch(report, batch)


def embed_batches(todo: Sequence[ImageFile | RemoteImage], model: _LazyModel,
                  embedded: set[bytes], options: IndexOptions, downloader: Downloader
                  ) -> Generator[_Batch]:
    """Read, decode and embed `todo`: batches of rows, vectors and per-image facts, without a
    catalogue (a cluster worker runs this too). `embedded` (the contents with a vector) gains
    each batch's once the caller asks for the next one, i.e. after it is committed.
    Decoding runs in a pool a few batches ahead of inference, downloads ahead of decoding."""
    remote = sum(isinstance(item, RemoteImage) for item in todo)
    download_bar = progress_bar(remote, options.progress, "downloading", position=0)
    bar = progress_bar(len(todo), options.progress, "embedding", position=1 if remote else None)
    pool = ThreadPoolExecutor(max_workers=options.decoders,
                              thread_name_prefix="lookalike-decode")
    staged: Generator[tuple] = _with_downloads(todo, downloader, download_bar) if remote \
        else ((item, None) for item in todo)
    prepared = bounded_map(pool, lambda s: _prepare(s, model.input_size, embedded, options),
                           staged, window=options.batch_size * 3)
    try:
        for batch in _batches(prepared, embedded, options.batch_size, bar):
            batch.vectors, batch.tags = _embed(model, batch.to_embed)
            for p in batch.to_embed:
                p.pixels = None  # embedded: a batch handed on carries no pixels
            yield batch
            embedded.update(h for h, _, _ in batch.vectors)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        staged.close()  # stops the downloads still queued
        bar.close()
        download_bar.close()


def embed_unstored(todo: Sequence[ImageFile | RemoteImage], model: str, options: IndexOptions,
                   downloader: Downloader, load_model: Callable) -> _Batch:
    """`todo` read, decoded and embedded with no catalogue at hand (a shard on a cluster
    worker), as one batch to commit: each content embedded once, whatever the catalogue
    holds (the committer drops what it knows: `_Batch.drop_known`)."""
    from ..models import get_model_info

    embedder = run_model(get_model_info(model), options, load_model)
    with closing(embed_batches(todo, embedder, set(), options, downloader)) as batches:
        return _Batch.joined(batches)


def _with_downloads(todo: Sequence[ImageFile | RemoteImage], downloader: Downloader,
                    bar) -> Generator[tuple]:
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
            bar.update(1)
            yield item, fetched
    finally:
        fetched_urls.close()


def _prepare(staged: tuple[ImageFile | RemoteImage, Fetched | DownloadFailed | None],
             input_size: int, embedded: set[bytes], options: IndexOptions) -> _Prepared:
    """Read, hash and decode one image, in a decoding thread; a content embedded already is
    not decoded, only measured."""
    item, fetched = staged
    p = _Prepared(item)
    if isinstance(fetched, Fetched):
        p.size = len(fetched.data)
        p.downloaded = fetched.downloaded
        p.download_cache_hit = not fetched.downloaded and is_http(item.path)  # not data:
    try:
        if isinstance(fetched, DownloadFailed):
            raise fetched
        data = fetched.data if fetched is not None else read_file(item.locator, options.max_bytes)
        p.content_hash = content_hash(data)
        p.extras = with_ome_columns(item.extras, data)
        if p.content_hash in embedded:
            p.width, p.height = images.read_size(data, options.max_pixels)
        else:
            decoded = images.decode(data, input_size, max_pixels=options.max_pixels,
                                    reading=options.reading)
            p.width, p.height, p.pixels = decoded.width, decoded.height, decoded.for_model
            p.quality = measure(decoded.pixels)  # ~0.3 ms, on pixels decoded anyway
    except images.ImageSkipped as exc:
        p.skip_reason = exc.reason
        p.pixels = None
    return p


def _batches(prepared: Iterable[_Prepared], embedded: set[bytes], batch_size: int,
             bar) -> Iterator[_Batch]:
    """The prepared images in batches of `batch_size` to embed (or of 1,000 rows), each
    taken once the one before is committed, so that a copy of an image embedded earlier in
    the run is not embedded again. The last batch comes even when empty."""
    batch = _Batch()
    for p in prepared:
        batch.rows.append(p.row())
        if p.quality is not None and p.content_hash is not None:
            batch.quality.append((p.content_hash, p.quality))
        batch.downloaded += p.downloaded
        batch.download_cache_hits += p.download_cache_hit
        if p.skip_reason is not None:
            batch.skipped.append((p.file.path, p.skip_reason))
        elif p.pixels is None or p.content_hash in embedded:
            batch.from_cache += 1
        else:
            batch.to_embed.append(p)
        if len(batch.to_embed) >= batch_size or len(batch.rows) >= 1000:
            yield batch
            batch = _Batch()
        bar.update(1)
    yield batch


def _embed(model: _LazyModel, prepared: Sequence[_Prepared]
           ) -> tuple[list[tuple[bytes, str, np.ndarray]], list[tuple[bytes, str, int, float]]]:
    """(content hash, model, vector) for each content among `prepared`, once (copies of one
    image in a batch are embedded together, stored once), and its tags (content hash, model,
    ImageNet class, probability) when the model has a classifier."""
    if not prepared:
        return [], []
    # Only decoded images with their content hash reach here (_batches sorts them out).
    out, logits = model.embed(np.stack([p.pixels for p in prepared if p.pixels is not None]))
    classes = tags_from_logits(logits) if logits is not None else [[] for _ in prepared]
    vectors: dict[bytes, tuple[np.ndarray, list[tuple[int, float]]]] = {}
    for p, v, found in zip(prepared, out, classes):
        assert p.content_hash is not None
        vectors.setdefault(p.content_hash, (v, found))
    return ([(h, model.name, v) for h, (v, _) in vectors.items()],
            [(h, model.name, c, score) for h, (_, found) in vectors.items()
             for c, score in found])


def commit_batch(store: Store, batch: _Batch) -> None:
    """One transaction: an interrupted run loses at most the batch in flight."""
    store.write(batch.rows, batch.vectors, batch.quality, batch.tags)


def tally_batch(report: IndexReport, batch: _Batch) -> None:
    """Add a committed batch's counts to the run's report."""
    report.embedded += len(batch.to_embed)
    report.from_cache += batch.from_cache
    report.skipped += batch.skipped
    report.downloaded += batch.downloaded
    report.download_cache_hits += batch.download_cache_hits

ATTRIBUTION_FILE = "ATTRIBUTION.txt"


def _remember_attributions(store: Store, paths: Sequence[str | os.PathLike]) -> None:
    """A folder's (or a table's folder's) ATTRIBUTION.txt (licence credits, e.g. Twemoji's
    CC-BY) is kept in the store so that every view of its images can show it."""
    for path in paths:
        if isinstance(path, str) and is_store_url(path):
            continue
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
                max_pixels: int = images.DEFAULT_MAX_PIXELS, embedder=None,
                reading: ReadingOptions | None = None) -> np.ndarray:
    """Vectors for image files outside any collection (nothing is stored), read the `reading`
    way (as the collection they are compared with reads its own). Raises ImageSkipped."""
    from ..models import get_model_info, load_model

    info = get_model_info(model)
    reading = reading or ReadingOptions()
    pixels = [images.decode(read_file(os.fsencode(p)), info.input_size, max_pixels=max_pixels,
                            reading=reading).for_model for p in paths]
    embedder = embedder or reading_model(load_model, info.name, reading)(info.name, threads)
    return embedder.embed(np.stack(pixels))
