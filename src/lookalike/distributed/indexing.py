"""Indexing on a Dask cluster: the driver lists and triages the files as a plain run does,
sends the rest to the workers in shards, and commits each finished shard to the catalogue in
one transaction, so that a re-run after any failure skips what is committed.

Each worker reads, decodes and embeds a shard with the local pipeline's own stages
(`ingest.pipeline.embed_unstored`), the model built once per worker process from the packaged
weights. A Dask thread runs one shard at a time with one inference thread: a worker of C
threads keeps C shards going, as many as it has cores.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from ..errors import LookalikeError
from ..ingest.downloads import Downloader
from ..ingest.folders import ImageFile, RemoteImage
from ..ingest.pipeline import (
    EmbedStage,
    IndexOptions,
    IndexReport,
    _Batch,
    commit_batch,
    embed_unstored,
    tally_batch,
)
from ..locators import is_store_url
from ..progress import progress_bar
from .client import ClusterError, connect

if TYPE_CHECKING:
    from distributed import Client

    from ..catalogue.store import Store
    from ..ingest.pipeline import _LazyModel
    from ..models.runtime import Model

#: Images per shard: one task for a worker and one transaction for the driver. A shard's
#: cost (sending it, scheduling, sending back its vectors) was under 1 % of its work from 32
#: images up on this project's 2-core machine (56 ms at 256: benchmarks/distributed_index.py, README
#: "Beyond one machine"); 256 keeps the driver's transactions large (5,800 images/s committed
#: one shard at a time) and the work a lost worker costs small (about 8 s per thread).
DEFAULT_SHARD_SIZE = 256

#: Times a shard whose task raised is tried again (on any worker). A worker that dies is
#: another matter: Dask re-runs its shards elsewhere by itself, up to
#: `distributed.scheduler.allowed-failures` (3) deaths per shard.
RETRIES = 2


@dataclass(frozen=True)
class ShardWork:
    """What every shard of one run shares: the model, the reading options and the download
    settings (sent with each task: a few hundred bytes)."""

    model: str
    options: IndexOptions
    downloads: dict[str, Any]


@dataclass
class ShardResult:
    """A shard done on a worker: its rows, vectors and per-image facts as one batch, and how
    long the worker spent on it (the rest of a shard's time on the driver's clock is the
    cost of shipping it: see benchmarks/distributed_index.py)."""

    batch: _Batch
    seconds: float
    worker: str


# -- on the workers ------------------------------------------------------------------------

_models: dict[tuple[str, int | None], Model] = {}
_models_lock = threading.Lock()


def _cached_model(name: str, threads: int | None = None) -> Model:
    """The model, loaded once per worker process and shared by its threads (an onnxruntime
    session runs concurrent calls)."""
    from ..models import load_model

    with _models_lock:
        model = _models.get((name, threads))
        if model is None:
            model = _models[(name, threads)] = load_model(name, threads=threads)
        return model


def embed_shard(shard: Sequence[ImageFile | RemoteImage], work: ShardWork) -> ShardResult:
    """Runs on a worker: read, decode and embed `shard` (URLs downloaded here), as one batch
    for the driver to commit."""
    started = time.perf_counter()
    _check_reachable(shard)
    with Downloader(**work.downloads) as downloader:
        batch = embed_unstored(shard, work.model, work.options, downloader, _cached_model)
    return ShardResult(batch, time.perf_counter() - started, socket.gethostname())


def _check_reachable(shard: Sequence[ImageFile | RemoteImage]) -> None:
    """A worker that cannot see the folders the driver listed says so in one line, rather
    than recording every image as unreadable (which a re-run would then keep). Objects in
    a store (s3://...) are the store's to refuse, object by object."""
    files = (item for item in shard if isinstance(item, ImageFile)
             and not is_store_url(os.fsdecode(item.locator[:64])))
    for folder in {os.path.dirname(item.locator) for item in files}:
        if not os.path.isdir(folder):
            shown = os.fsdecode(folder)
            raise ClusterError(
                f"worker on {socket.gethostname()} cannot see {shown}, listed on the machine "
                f"that runs `index`: the workers need the images at the same paths (a shared "
                f"file system) or by URL")


# -- on the driver -------------------------------------------------------------------------

def cluster_stage(cluster: str | Client, shard_size: int = DEFAULT_SHARD_SIZE) -> EmbedStage:
    """The pipeline's embedding stage on `cluster` (an address as `connect` takes it, or a
    Client): connected only when there is something to embed."""
    if shard_size < 1:
        raise LookalikeError(f"shard size must be 1 or more images, not {shard_size}")

    def stage(store: Store, todo: Sequence[ImageFile | RemoteImage], model: _LazyModel,
              embedded: set[bytes], options: IndexOptions, downloader: Downloader,
              report: IndexReport) -> None:
        if not todo:
            return
        work = ShardWork(model.model, dataclasses.replace(options, threads=1, progress=False),
                         _settings(downloader))
        shards = (todo[i:i + shard_size] for i in range(0, len(todo), shard_size))
        connecting = time.perf_counter()
        with connect(cluster) as client, \
                progress_bar(len(todo), options.progress, "embedding on the cluster") as bar:
            # Like a model's loading, starting or reaching the cluster is kept out of the rate.
            model.loading_seconds = time.perf_counter() - connecting
            for results in finished_shards(client, shards, work):
                batch = _Batch.joined(result.batch for result in results)
                commit_shards(store, batch, embedded, report)
                bar.update(len(batch.rows))

    return stage


def commit_shards(store: Store, batch: _Batch, embedded: set[bytes], report: IndexReport
                  ) -> None:
    """One transaction for finished shards (joined in one batch). Their workers did not know
    what the catalogue (or another shard) holds already: those contents count as cached and
    keep their vectors."""
    batch.drop_known(embedded)
    commit_batch(store, batch)
    embedded.update(h for h, _, _ in batch.vectors)
    tally_batch(report, batch)


def finished_shards(client: Client, shards: Iterator[Sequence[ImageFile | RemoteImage]],
                    work: ShardWork, task: Callable[..., ShardResult] = embed_shard
                    ) -> Iterator[list[ShardResult]]:
    """The shards' results as `task` (on the workers) finishes them: all those finished since
    the last look, together (a driver that falls behind then commits several shards in one
    transaction, and so catches up). Twice as many shards as the cluster has threads are in
    flight (at least 4): the workers never wait for the driver, and a killed driver loses no
    more than those."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    def submit(shard: Sequence[ImageFile | RemoteImage]):
        return client.submit(task, shard, work, pure=False, retries=RETRIES)

    window = max(4, 2 * sum(client.nthreads().values()))
    pending = as_completed([submit(shard) for shard in islice(shards, window)])
    try:
        for futures in pending.batches():
            try:
                results = [future.result() for future in futures]
            except KilledWorker:
                raise ClusterError("a shard's worker died 3 times (out of memory?); the shards "
                                   "committed are kept: run the command again to resume, "
                                   "with a smaller --shard-size or more memory per worker"
                                   ) from None
            for shard in islice(shards, len(futures)):
                pending.add(submit(shard))
            yield results
    finally:
        pending.clear()  # released: the scheduler drops what is still queued


def _settings(downloader: Downloader) -> dict[str, Any]:
    """The downloader's settings, for the workers to make their own with."""
    return {f.name: getattr(downloader, f.name)
            for f in dataclasses.fields(downloader) if f.init}
