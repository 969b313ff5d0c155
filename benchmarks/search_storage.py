"""How the graph index should store its rows, and what compressed codes cost in recall, at
100,000 x 1280 (benchmarks/search.py's mixtures, 100 fresh queries, cosine top-10):

    nice .venv/bin/python benchmarks/search_storage.py [--rows 100000] [--queries 100]
        [--skip graphs,codes] [--storages 8bit,fp16,float32]

1. The graph (`ApproximateIndex`, kind "hnsw") built with 8-bit, fp16 and float32 rows: per
   efSearch, recall@10 after exact re-scoring, the CPU time of one query as `nearest` runs it
   (`graph_search.search_each`, thread CPU time: other processes' load slows it less than
   wall time), 20 queries as one `search_each` call (wall time, FAISS's threads as
   `search_each` sets them and held at one), build time and memory (resident memory the
   build added). Beside them FAISS's own search of the float32 graph (one call, no
   re-scoring): FAISS HNSW, the fastest peer of search_peers.py's runs.
2. Memory per vector and recall@10 of the codes a 10M+ collection could keep in memory:
   8-bit codes (the compressed scan), FAISS IVF with 8-bit codes and IVF-PQ with 64 and 128
   bytes per vector, each re-scored exactly from the float32 rows.
Results: stdout and benchmarks/out/search_storage.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from lookalike.search.approximate import (  # noqa: E402
    GRAPH_STORAGES,
    ApproximateIndex,
    search as approx_search,
)
from lookalike.search.exact import ExactIndex  # noqa: E402
from lookalike.search.graph_search import search_each  # noqa: E402
from machine import print_machine  # noqa: E402
from search import OUT, mixtures, real_vectors  # noqa: E402
from search_peers import built  # noqa: E402

EF_SWEEP = (48, 64, 96, 128)


def recall(found, truth) -> float:
    return float(np.mean([len(set(np.asarray(f)[:10]) & set(t[:10])) / 10
                          for f, t in zip(found, truth)]))


def timed_queries(single, queries) -> tuple[list, np.ndarray, np.ndarray]:
    """(answers, CPU ms, wall ms) of `single(q)` per query, after one untimed pass."""
    for q in queries:
        single(q)
    found, cpu, wall = [], [], []
    for q in queries:
        c, w = time.thread_time(), time.perf_counter()
        found.append(single(q))
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return found, np.array(cpu) * 1000, np.array(wall) * 1000


def batch_ms(batch, queries, rounds: int = 7) -> float:
    times = []
    for r in range(rounds):
        qs = queries[(r * 20) % (len(queries) - 19):][:20]
        start = time.perf_counter()
        batch(qs)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def one_thread(fn):
    import faiss

    def run(*args):
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return fn(*args)
        finally:
            faiss.omp_set_num_threads(before)
    return run


def row(name: str, found, truth, cpu, wall, batch: float, batch_1: float | None = None,
        **extra) -> dict:
    out = {"method": name, "recall_at_10": recall(found, truth),
           "cpu_p50_ms": float(np.percentile(cpu, 50)), "cpu_p95_ms": float(np.percentile(cpu, 95)),
           "wall_p50_ms": float(np.percentile(wall, 50)), "batch20_ms": batch,
           "batch20_one_thread_ms": batch_1, **extra}
    print(f"  {name:<44} recall@10 {out['recall_at_10']:.3f}  CPU p50 {out['cpu_p50_ms']:5.2f}"
          f" p95 {out['cpu_p95_ms']:5.2f} ms (wall p50 {out['wall_p50_ms']:5.2f})  20 at once "
          f"{batch:5.1f} ms" + (f" (1 thread {batch_1:5.1f})" if batch_1 is not None else "")
          + "".join(f"  {k} {v:.1f}" for k, v in extra.items()), flush=True)
    return out


def graph_storage(x, queries, truth, ids, hashes, exact,
                  storages=tuple(GRAPH_STORAGES)) -> list[dict]:
    rows = []
    for storage in storages:
        graph, cost = built(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw",
                                                           storage=storage))
        print(f" {storage} graph: built in {cost['build_s']:.0f} s, {cost['memory_mb']:.0f} MB",
              flush=True)

        def single(q, graph=graph):
            return search_each(graph, exact, ids, q[None], 10, "cosine")[0][0]

        def batch(qs, graph=graph):
            search_each(graph, exact, ids, qs, 10, "cosine")
        for ef in EF_SWEEP:
            graph.ef_search = ef
            found, cpu, wall = timed_queries(single, queries)
            rows.append(row(f"lookalike hnsw {storage}, ef {ef}", found, truth, cpu, wall,
                            batch_ms(batch, queries), batch_ms(one_thread(batch), queries),
                            build_s=cost["build_s"], memory_mb=cost["memory_mb"]))
        if storage == "float32":
            rows += faiss_own(graph, queries, truth)
        del graph
    return rows


def faiss_own(graph: ApproximateIndex, queries, truth) -> list[dict]:
    """FAISS's own search of the float32 graph: one call, its top 10, no re-scoring."""
    import faiss

    index, rows = graph.shards[0], []
    qt = graph.transform.queries(queries)
    for ef in (64, 96):
        params = faiss.SearchParametersHNSW(efSearch=ef)
        # FAISS HNSW on one thread for single queries, as search_peers.py runs it
        found, cpu, wall = timed_queries(one_thread(
            lambda q: index.search(q[None], 10, params=params)[1][0]), qt)
        rows.append(row(f"FAISS HNSW float32 alone, efSearch {ef}", found, truth, cpu, wall,
                        batch_ms(lambda qs: index.search(qs, 10, params=params), qt)))
    return rows


def codes(x, queries, truth, ids, hashes, exact) -> list[dict]:
    """Recall@10 and memory per vector of compressed codes, candidates re-scored exactly."""
    import faiss

    rows = []
    for kind in ("scan", "ivf"):
        index, cost = built(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", kind))
        code_bytes = faiss.serialize_index(index.shards[0]).nbytes / len(x)

        def single(q, index=index):
            return approx_search(index, exact, ids, q[None], 10, "cosine")[0]
        found, cpu, wall = timed_queries(single, queries)
        rows.append(row(f"8-bit codes, {kind} (200 candidates)", found, truth, cpu, wall,
                        float("nan"), bytes_per_vector=code_bytes, build_s=cost["build_s"]))
    unit = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True))
    # unit rows, queries as they are: L2 to unit rows ranks as cosine for any query length
    nlist = int(np.sqrt(len(x)))
    # 40 points per list and at least 10,240 (FAISS asks 39 per centroid, 256 per PQ part)
    sample = unit[np.random.default_rng(0).choice(len(x), min(len(x), max(40 * nlist, 10_240)),
                                                  False)]
    for m in (64, 128):
        def make(m=m):
            index = faiss.IndexIVFPQ(faiss.IndexFlatL2(x.shape[1]), x.shape[1], nlist, m, 8)
            index.cp.niter = 10
            index.pq.cp.niter = 10
            index.train(sample)
            index.add(unit)
            return index
        index, cost = built(make)
        code_bytes = faiss.serialize_index(index).nbytes / len(x)
        for nprobe, candidates in ((32, 100), (32, 200), (64, 200)):
            index.nprobe = nprobe
            def single(q, index=index, candidates=candidates):
                found = index.search(q[None], candidates)[1][0]
                found = np.sort(found[found >= 0])  # ascending: kind to a memory map
                scores = exact.exact_scores(q, found, "cosine")
                return found[np.lexsort((found, scores))[:10]]
            found, cpu, wall = timed_queries(single, queries)
            rows.append(row(f"IVF-PQ {m} bytes, nprobe {nprobe}, {candidates} re-scored", found,
                            truth, cpu, wall, float("nan"), bytes_per_vector=code_bytes,
                            build_s=cost["build_s"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--skip", default="", help="graphs and/or codes")
    parser.add_argument("--storages", default=",".join(GRAPH_STORAGES),
                        help="the graph storages to build (float32 also gives FAISS's own "
                             "search of its graph); at 1M each build takes minutes")
    args = parser.parse_args()
    machine = print_machine()
    base = real_vectors()
    n = args.rows
    x = mixtures(base, n, seed=n)
    queries = mixtures(base, args.queries, seed=1).astype(np.float64)
    ids = np.arange(n, dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    exact._int8_wanted = True  # the float32 pass alone
    truth = [exact.search(q, 10, "cosine")[0] for q in queries]
    print(f"{n:,} rows x {x.shape[1]}, {len(queries)} queries", flush=True)
    result: dict = {"machine": machine, "rows": n, "dim": int(x.shape[1])}
    if "graphs" not in args.skip:
        result["graphs"] = graph_storage(x, queries, truth, ids, hashes, exact,
                                         tuple(args.storages.split(",")))
    if "codes" not in args.skip:
        result["codes"] = codes(x, queries, truth, ids, hashes, exact)
    OUT.mkdir(exist_ok=True)
    (OUT / "search_storage.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
