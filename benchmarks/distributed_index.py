"""Indexing on a Dask cluster against a plain run, the cost of a shard, the driver's commits.

    nice .venv/bin/python benchmarks/distributed_index.py [--model NAME] [--limit N] [--repeat 1]

On the Twemoji sample (1,903 PNGs, written to benchmarks/out/twemoji once), indexed into fresh
databases through the API:
- images/s of a plain run, of `cluster="local:1"` and of `cluster="local:2"` (the rate of the
  pipeline: model loading and the cluster's start are left out, as `index` prints it; each
  cluster warmed up on a few images first, so its workers hold the model);
- the cost of one shard: shards of n images sent to a `local:1` worker that embeds nothing
  and sends back n catalogue rows and n vectors of the model's dimension (sending, scheduling,
  pickling: what a shard costs beyond its work), per shard size, and the smallest shard size
  whose cost stays under 5 % of the work of a worker thread;
- the driver's commit rate: shards of synthetic rows and vectors committed as `index
  --cluster` commits them, in images/s (the target: at least 5,000);
- on paper, from those: hours for 10 million images on N workers of C cores.
Figures go to stdout and to benchmarks/out/distributed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import lookalike  # noqa: E402
from lookalike import datasets  # noqa: E402
from lookalike.catalogue.store import QUALITY_COLUMNS, ImageRow, Store  # noqa: E402
from lookalike.distributed.client import connect  # noqa: E402
from lookalike.distributed.indexing import (  # noqa: E402
    ShardResult,
    ShardWork,
    commit_shards,
    finished_shards,
)
from lookalike.ingest.folders import ImageFile  # noqa: E402
from lookalike.ingest.pipeline import (  # noqa: E402
    IndexOptions,
    IndexReport,
    _Batch,
    _Prepared,
    list_images,
)
from lookalike.models import DEFAULT_MODEL, get_model_info, load_model  # noqa: E402
from machine import print_machine  # noqa: E402

OUT = Path(__file__).parent / "out"
SHARD_SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
HOURS_FOR = 10_000_000


def twemoji_files(limit: int | None) -> list[Path]:
    folder = OUT / "twemoji"
    if not (folder / "ATTRIBUTION.txt").exists():
        datasets.get("twemoji", folder)
    files = sorted(folder.rglob("*.png"))
    return files[:limit] if limit else files


def index_rate(files: list[Path], model: str, cluster=None) -> tuple[float, float]:
    """(images/s of the pipeline, wall seconds) of one fresh index of `files`."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with lookalike.Collection.index(files, db=Path(tmp) / "b.db", model=model,
                                        cluster=cluster) as col:
            report = col.last_report
        assert report.embedded + report.from_cache == len(files), report
        return report.images_per_second, time.perf_counter() - started


def cluster_rate(files: list[Path], model: str, address: str, repeat: int) -> float:
    with connect(address) as client:
        index_rate(files[:8], model, client)  # warm-up: every worker loads the model
        return max(index_rate(files, model, client)[0] for _ in range(repeat))


def _noop_shard(shard, work: ShardWork) -> ShardResult:
    """A shard's result without its work: a row and a vector for each image, as a worker
    sends them back."""
    dim = work.options.batch_size  # the vectors' dimension travels here (see shard_costs)
    batch = _Batch()
    for item in shard:
        p = _Prepared(item, content_hash=os.urandom(16), width=72, height=72)
        batch.rows.append(p.row())
        batch.to_embed.append(p)
        batch.quality.append((p.content_hash, (0.5,) * len(QUALITY_COLUMNS)))
        batch.vectors.append((p.content_hash, work.model, np.ones(dim, np.float32)))
    return ShardResult(batch, 0.0, "")


def shard_costs(files: list[Path], dim: int, shards: int = 60) -> dict[int, float]:
    """Seconds per shard of each size, on the driver's clock, for no-op shards kept in
    flight as `index --cluster` keeps them."""
    found, _ = list_images([str(f) for f in files], None)
    items = [item for item in found if isinstance(item, ImageFile)]
    costs = {}
    with connect("local:1") as client:
        work = ShardWork("bench", IndexOptions(batch_size=dim, threads=1, progress=False), {})
        for size in SHARD_SIZES:
            pool = (items * (size // len(items) + 1))[:size]
            list(finished_shards(client, iter([pool] * 4), work, _noop_shard))  # warm-up
            started = time.perf_counter()
            done = sum(len(results) for results in finished_shards(
                client, iter([pool] * shards), work, _noop_shard))
            costs[size] = (time.perf_counter() - started) / done
    return costs


def commit_rate(dim: int, group: int = 1, images: int = 20_000, shard: int = 256) -> float:
    """Images/s the driver commits, shards of synthetic rows and vectors as workers send,
    `group` finished shards per transaction (as many as finish while it commits)."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "c.db") as store:
        embedded: set[bytes] = set()
        report = IndexReport(model="bench")
        batches = []
        for s in range(0, images, shard):
            batch = _Batch()
            for i in range(s, min(s + shard, images)):
                h = i.to_bytes(16, "little")
                path = f"/data/archive/folder{i // 1000:05d}/image{i:08d}.jpg"
                batch.rows.append(ImageRow(path.encode(), path, "/data/archive",
                                           f"image{i:08d}", f"folder{i // 1000:05d}", 123_456,
                                           1_700_000_000_000_000_000 + i, 640, 480, h))
                batch.quality.append((h, tuple(rng.random(len(QUALITY_COLUMNS)))))
                batch.vectors.append((h, "bench", rng.standard_normal(dim, np.float32)))
                batch.to_embed.append(_Prepared(None, content_hash=h))  # type: ignore[arg-type]
            batches.append(batch)
        started = time.perf_counter()
        for g in range(0, len(batches), group):
            commit_shards(store, _Batch.joined(batches[g:g + group]), embedded, report)
        seconds = time.perf_counter() - started
        assert report.embedded == images
    return images / seconds


def smallest_cheap_shard(costs: dict[int, float], per_thread: float) -> int | None:
    """The smallest shard size whose cost is under 5 % of a worker thread's work on it."""
    return next((n for n, c in sorted(costs.items()) if c < 0.05 * n / per_thread), None)


def on_paper(per_core: float, commits: float, shard_cost: float, shard: int) -> list[dict]:
    """Hours for 10M images on N workers of C cores: the workers' rate (one shard per core,
    less the shard's cost), capped by the driver's commits."""
    rows = []
    per_core_net = shard / (shard / per_core + shard_cost)
    for workers, cores in [(1, 2), (1, 16), (4, 16), (16, 16), (64, 16), (128, 32)]:
        rate = workers * cores * per_core_net
        rows.append({"workers": workers, "cores": cores, "images_per_s": min(rate, commits),
                     "hours": HOURS_FOR / min(rate, commits) / 3600,
                     "bound": "driver commits" if rate > commits else "workers"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, help="index only the first N images")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, best kept")
    args = parser.parse_args()
    machine = print_machine()
    files = twemoji_files(args.limit)
    dim = get_model_info(args.model).dim
    load_model(args.model)  # built once, as for users
    cores = os.cpu_count() or 1
    print(f"{len(files):,} Twemoji PNGs, model {args.model} ({dim}-d), {cores} cores")

    rates = {"plain": max(index_rate(files, args.model)[0] for _ in range(args.repeat))}
    for address in ["local:1", "local:2"]:
        rates[address] = cluster_rate(files, args.model, address, args.repeat)
    for name, rate in rates.items():
        print(f"  index {'' if name == 'plain' else '--cluster ' + name:<18} {rate:7.1f} images/s"
              f"  ({rate / rates['plain']:.2f}x plain)")

    per_thread = rates["local:2"] / 2  # local:2 here: two workers of one thread each
    costs = shard_costs(files, dim)
    print(f"cost of a shard (no-op work, {dim}-d vectors back), and its share of a worker "
          f"thread's work at {per_thread:.0f} images/s:")
    for size, cost in costs.items():
        print(f"  {size:>5} images  {cost * 1000:7.1f} ms  {cost / (size / per_thread):6.1%}")
    cheap = smallest_cheap_shard(costs, per_thread)
    print(f"smallest shard size under 5 %: {cheap}")

    groups = {group: commit_rate(dim, group) for group in [1, 4, 16]}
    print(f"driver commits, shards of 256 images with {dim}-d vectors: " + ", ".join(
        f"{rate:,.0f} images/s at {g} shard{'s' * (g > 1)} a transaction"
        for g, rate in groups.items()))
    commits = groups[4]  # behind by 4 shards, the driver commits them at once
    paper = on_paper(per_thread, commits, costs[256], 256)
    print(f"on paper, {HOURS_FOR:,} images at {per_thread:.0f} images/s per core:")
    for row in paper:
        print(f"  {row['workers']:>4} workers x {row['cores']:>2} cores  "
              f"{row['images_per_s']:9,.0f} images/s  {row['hours']:8.2f} h  ({row['bound']})")

    OUT.mkdir(exist_ok=True)
    (OUT / "distributed.json").write_text(json.dumps({
        "machine": machine, "images": len(files), "model": args.model, "rates": rates,
        "shard_seconds": costs, "smallest_shard_under_5pct": cheap,
        "commit_images_per_s": groups, "on_paper": paper}, indent=1))


if __name__ == "__main__":
    main()
