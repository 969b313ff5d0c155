"""Search speed and recall on 1280-d vectors at 10k, 100k and 1M rows.

    .venv/bin/python benchmarks/search.py [--sizes 10000,100000,1000000] [--queries 100]

Vectors: real EfficientNet-Lite0 embeddings of the Twemoji sample and of the 1600x1200 photos
(benchmarks/throughput.py makes those folders), expanded to N rows by random convex mixtures
of three real vectors plus a little noise, clipped at zero like pooled ReLU features. That
keeps the spread and cluster structure of real embeddings at sizes no bundled data set has.
Queries are fresh mixtures, not rows of the matrix.

Per size, for cosine top-10 (the default metric), timed query by query and interleaved with
the floor so machine noise hits both alike:
- floor: one float32 BLAS matrix-vector product over the same matrix (`X @ q`);
- exact: `ExactIndex.search` (lookalike's exact path, float32 first pass), and the ratio to
  the floor; and the same with the 8-bit first pass a long-running process builds
  (int8_scan.py), checked to give the same answers;
- baseline: what a user would otherwise write, as Orange does: scipy `cdist` + full sort
  (skipped at 1M: cdist needs a float64 copy of the whole matrix);
- scan: the compressed exhaustive scan (8-bit codes, one shard per core, 200 candidates
  re-ranked exactly), its ratio to the floor and recall@10 against exact;
- ivf: FAISS IVF with 8-bit codes (from 100k rows), build time, per nprobe p50/p95, recall@10;
- graphs (from 100k rows, search_peers.py): lookalike's paths (exact float32, exact with the
  8-bit pass, IVF, the HNSW graph) beside FAISS HNSW (M=32), hnswlib and usearch (the `bench`
  extra), single queries and 20 at once, build time, memory, recall@10, and the ratio of
  lookalike's graph to the fastest of them at recall@10 >= 0.99.
Memory: the float32 matrix and the 8-bit codes. Results: stdout and benchmarks/out/search.json.

`--via-collection` imports each size's vectors into a collection database first
(`Collection.add_vectors`, no image embedded: how a million-image collection is made here) and
searches the matrix read back from it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import lookalike  # noqa: E402
from lookalike.search.approximate import ApproximateIndex, search as approx_search  # noqa: E402
from lookalike.search.exact import ExactIndex  # noqa: E402
from machine import print_machine  # noqa: E402
from search_peers import compare  # noqa: E402

OUT = Path(__file__).parent / "out"


def real_vectors() -> np.ndarray:
    from throughput import photo_folder, twemoji_folder

    db = OUT / "search-base.db"
    col = lookalike.Collection.index([twemoji_folder(), photo_folder()], db=db,
                                     model="efficientnet-lite0")
    return np.array(col.vectors()[1], dtype=np.float32)


def mixtures(base: np.ndarray, n: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)
    noise = 0.05 * float(base.std())
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        picks = rng.integers(0, len(base), (m, 3))
        w = rng.dirichlet([1.0, 1.0, 1.0], m).astype(np.float32)
        block = np.einsum("mk,mkd->md", w, base[picks])
        block += rng.normal(0, noise, block.shape).astype(np.float32)
        out[start:start + m] = np.maximum(block, 0)
    return out


def pct(times: list[float]) -> dict:
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f[:10]) & set(t[:10])) / 10 for f, t in zip(found, truth)]))


def via_collection(x: np.ndarray) -> np.ndarray:
    """x imported into a fresh collection database and read back as it serves it."""
    import shutil

    db = OUT / f"search-{len(x)}.db"
    for leftover in OUT.glob(f"search-{len(x)}.db*"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    with lookalike.Collection.create(db) as col:
        report = col.add_vectors([f"/bench/{i:07d}.jpg" for i in range(len(x))], x, model="bench")
        print(f"imported {report.images:,} vectors into {db} in {report.seconds:.1f} s")
        return np.asarray(col.vectors("bench")[1])


def run_size(base: np.ndarray, n: int, n_queries: int, collection: bool = False) -> dict:
    from scipy.spatial.distance import cdist

    x = mixtures(base, n, seed=n)
    if collection:
        x = via_collection(x)
    queries = mixtures(base, n_queries, seed=1)
    ids = np.arange(n, dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    exact._int8_wanted = True  # the float32 pass alone; the 8-bit one is measured apart
    exact.search(queries[:1], 10, "cosine")  # per-row norms, once
    fast = ExactIndex(x)
    build_started = time.perf_counter()
    fast.start_int8(wait=True)  # built only from search.INT8_MIN_ROWS rows
    build_s = time.perf_counter() - build_started
    fast.search(queries[:1], 10, "cosine")
    row: dict = {"rows": n, "matrix_mb": x.nbytes / 2**20}
    floor, ours, truth, eight = [], [], [], []
    for q in queries:
        floor.append(timed(lambda: x @ q)[0])
        t, (rows, dist) = timed(lambda: exact.search(q, 10, "cosine"))
        ours.append(t)
        truth.append(rows)
        if fast._int8 is not None:
            t, (rows8, dist8) = timed(lambda: fast.search(q, 10, "cosine"))
            eight.append(t)
            # float64 re-scoring of a different pool may differ in the last bit
            if list(rows8) != list(rows) or not np.allclose(dist8, dist, rtol=1e-12, atol=0):
                raise RuntimeError("the 8-bit first pass changed an answer")
    row["floor"] = pct(floor)
    row["exact"] = pct(ours)
    row["exact"]["x_floor_p50"] = row["exact"]["p50_ms"] / row["floor"]["p50_ms"]
    print(f"\n{n:,} rows x {x.shape[1]}: matrix {row['matrix_mb']:.0f} MB")
    print(f"  floor (X @ q)         p50 {row['floor']['p50_ms']:7.2f} ms"
          f"  p95 {row['floor']['p95_ms']:7.2f}")
    print(f"  exact top-10          p50 {row['exact']['p50_ms']:7.2f} ms"
          f"  p95 {row['exact']['p95_ms']:7.2f}  {row['exact']['x_floor_p50']:.2f}x floor")
    if eight:
        row["exact_8bit"] = pct(eight)
        row["exact_8bit"]["x_floor_p50"] = row["exact_8bit"]["p50_ms"] / row["floor"]["p50_ms"]
        row["exact_8bit"]["build_s"] = build_s
        print(f"  exact, 8-bit 1st pass p50 {row['exact_8bit']['p50_ms']:7.2f} ms  p95 "
              f"{row['exact_8bit']['p95_ms']:7.2f}  {row['exact_8bit']['x_floor_p50']:.2f}x floor"
              f"  (same answers; built in {build_s:.1f} s)")

    if n <= 200_000:
        base_times = []
        for q in queries[: max(5, n_queries // 5)]:
            def orange_way():
                d = cdist(q[None], x, "cosine")[0]
                return np.argsort(d)[:10]
            base_times.append(timed(orange_way)[0])
        row["baseline_cdist_sort"] = pct(base_times)
        print(f"  scipy cdist + sort    p50 {row['baseline_cdist_sort']['p50_ms']:7.2f} ms"
              f"  ({row['baseline_cdist_sort']['p50_ms'] / row['exact']['p50_ms']:.1f}x exact)")

    if n <= 200_000:
        t_build, scan = timed(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", "scan"))
        found, times, floor2 = [], [], []
        for q in queries:
            floor2.append(timed(lambda: x @ q)[0])
            t, (rows, _) = timed(lambda: approx_search(scan, exact, ids, q[None], 10, "cosine"))
            times.append(t)
            found.append(rows)
        row["scan"] = {**pct(times), "build_s": t_build, "recall_at_10": recall(found, truth),
                       "x_floor_p50": float(np.median(times) / np.median(floor2)),
                       "codes_mb": scan.ntotal * x.shape[1] / 2**20}
        s = row["scan"]
        print(f"  compressed scan       p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f}"
              f"  {1 / s['x_floor_p50']:.2f}x faster than floor  recall@10 {s['recall_at_10']:.3f}"
              f"  codes {s['codes_mb']:.0f} MB")

    if n >= 100_000:
        t_build, ivf = timed(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", "ivf"))
        row["ivf"] = {"build_s": t_build, "nlist": int(ivf.shards[0].nlist), "by_nprobe": {}}
        print(f"  ivf build {t_build:.0f} s, {ivf.shards[0].nlist} lists")
        for nprobe in (8, 16, 32, 64):
            ivf.nprobe = nprobe
            found, times = [], []
            for q in queries:
                t, (rows, _) = timed(lambda: approx_search(ivf, exact, ids, q[None], 10, "cosine"))
                times.append(t)
                found.append(rows)
            r = {**pct(times), "recall_at_10": recall(found, truth)}
            row["ivf"]["by_nprobe"][nprobe] = r
            print(f"  ivf nprobe {nprobe:<3}        p50 {r['p50_ms']:7.2f} ms"
                  f"  p95 {r['p95_ms']:7.2f}  recall@10 {r['recall_at_10']:.3f}")
    if n >= 100_000:
        row["graphs"] = compare(x, queries, truth, ids, hashes)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--via-collection", action="store_true",
                        help="import the vectors into a collection first (add_vectors)")
    args = parser.parse_args()
    machine = print_machine()
    base = real_vectors()
    print(f"base: {len(base)} real Lite0 vectors")
    results = {"machine": machine, "base_vectors": len(base), "sizes": []}
    for n in (int(s) for s in args.sizes.split(",")):
        results["sizes"].append(run_size(base, n, args.queries, args.via_collection))
        OUT.mkdir(exist_ok=True)
        (OUT / "search.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
