"""Search across workers against search on one machine: time per query of exact cosine top-10
over N synthetic 1280-d vectors.

    nice .venv/bin/python benchmarks/distributed_search.py [--rows 100000] [--workers 2]
                                                           [--queries 20]

- local: `ExactIndex.search` over the whole matrix in this process (the plain `similar`);
- sharded: `distributed.search.search_shards` on a LocalCluster of `--workers` worker
  processes, one shard each (memory-mapped .npy files, as `similar --cluster` cuts them),
  answers merged on the driver; checked to give the local answer;
- its parts: one shard searched alone in this process (a worker's share of the work), the
  driver's merge, and the rest: Dask's scheduling, serialisation and the round trips.
Vectors are random, clipped at zero like pooled ReLU features; queries are fresh vectors. Each
figure is the median over `--queries` single queries, after one warm-up query per path (which
opens the shards and computes their row norms). Results: stdout and
benchmarks/out/distributed_search.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from lookalike.distributed.search import merge, search_shard, search_shards  # noqa: E402
from lookalike.distributed.shards import Shards  # noqa: E402
from lookalike.search.exact import ExactIndex  # noqa: E402
from machine import print_machine  # noqa: E402

DIM = 1280


def write_shards(folder: Path, matrix: np.ndarray, parts: int) -> Shards:
    bounds = np.linspace(0, len(matrix), parts + 1).astype(int)
    paths, rows = [], []
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        path = folder / f"part-{n:04d}.npy"
        np.save(path, matrix[a:b])
        np.save(folder / f"part-{n:04d}.ids.npy", np.arange(a, b, dtype=np.int64))
        paths.append(str(path))
        rows.append(int(b - a))
    return Shards("bench", 0, matrix.shape[1], tuple(paths), tuple(rows))


def median_ms(run, queries) -> float:
    run(queries[0])  # warm-up: shards opened, row statistics computed
    times = []
    for q in queries:
        start = time.perf_counter()
        run(q)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    machine = print_machine()
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    matrix = np.maximum(rng.normal(size=(args.rows, DIM)).astype(np.float32), 0)
    queries = np.maximum(rng.normal(size=(args.queries + 1, DIM)), 0)[:, None, :]
    local = ExactIndex(matrix)
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_shards(Path(tmp), matrix, args.workers)
        del matrix
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            for q in queries[:3]:  # the same answer
                here = local.search(q, 10, "cosine")
                there = search_shards(client, shards, q, 10, "cosine")
                assert np.array_equal(here[0], there[0]), "sharded answer differs"
            t_local = median_ms(lambda q: local.search(q, 10, "cosine"), queries)
            t_sharded = median_ms(lambda q: search_shards(client, shards, q, 10, "cosine"),
                                  queries)
        answers = [search_shard(p, queries[0], 10, "Cosine", None, None) for p in shards.parts]
        t_shard = median_ms(lambda q: search_shard(shards.parts[0], q, 10, "Cosine", None, None),
                            queries)
        t_merge = median_ms(lambda q: merge(answers, 10), queries)
    rest = t_sharded - t_shard - t_merge
    print(f"{args.rows:,} x {DIM} float32, cosine top-10, median of {args.queries} queries")
    print(f"local exact (one process):           {t_local:8.2f} ms")
    print(f"sharded on local:{args.workers} (merged):        {t_sharded:8.2f} ms")
    print(f"  one shard alone ({shards.rows[0]:,} rows):   {t_shard:8.2f} ms")
    print(f"  merge on the driver:               {t_merge:8.3f} ms "
          f"({100 * t_merge / t_sharded:.2f} % of the query)")
    print(f"  scheduling, transfer, round trips: {rest:8.2f} ms")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "distributed_search.json").write_text(json.dumps({
        "machine": machine, "rows": args.rows, "dim": DIM, "workers": args.workers,
        "queries": args.queries, "local_ms": t_local, "sharded_ms": t_sharded,
        "shard_ms": t_shard, "merge_ms": t_merge, "overhead_ms": rest}, indent=1))


if __name__ == "__main__":
    main()
