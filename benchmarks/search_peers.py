"""The graph indexes a user could pick instead of lookalike's, measured in the same run as
lookalike's own paths (benchmarks/search.py): FAISS HNSW (M=32, float32), hnswlib and usearch
(bf16), each with an efSearch sweep and the efConstruction of EF_CONSTRUCTION; and
lookalike's own paths (exact float32, exact with the 8-bit pass, IVF, the graph) for single
queries and for 20 simultaneous ones.

Per row: build time, memory (resident memory the build added), p50/p95 of single queries,
the wall time of 20 queries at once (the library's batch call; lookalike's from 20 threads,
as a server's requests arrive) and recall@10 against the exact answer.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from lookalike.search.approximate import GRAPH_EF_CONSTRUCTION

M = 32
#: Each library's efConstruction: FAISS's graph as lookalike builds its own; hnswlib and
#: usearch at their own defaults (200, 128), without which they stayed under recall@10 0.97
#: even at ef 256 at 100k (with 40), so that every row is compared at matched recall.
EF_CONSTRUCTION = {"faiss": GRAPH_EF_CONSTRUCTION, "hnswlib": 200, "usearch": 128}
EF_SWEEP = (32, 64, 128, 256)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(name: str, single, batch, queries: np.ndarray, truth: list[np.ndarray],
            extra: dict | None = None) -> dict:
    """Times `single(q) -> top-10 rows` query by query and `batch(q20)` five times, after
    one untimed pass over the queries: every method meets them in a warm cache (before, a
    peer's efSearch sweep met them warm from its previous efSearch, lookalike's graph cold)."""
    for q in queries:
        single(q)
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(np.asarray(single(q))[:10])
        times.append(time.perf_counter() - start)
    batches = []
    for _ in range(5):
        start = time.perf_counter()
        batch(queries[:20])
        batches.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    row = {"method": name, "p50_ms": float(np.percentile(ms, 50)),
           "p95_ms": float(np.percentile(ms, 95)), "batch20_ms": float(np.median(batches)) * 1000,
           "recall_at_10": float(np.mean([len(set(f) & set(t[:10])) / 10
                                          for f, t in zip(found, truth)])), **(extra or {})}
    print(f"  {name:<34} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f}  20 at once "
          f"{row['batch20_ms']:7.1f} ms  recall@10 {row['recall_at_10']:.3f}"
          + (f"  built {extra['build_s']:.0f} s, {extra['memory_mb']:.0f} MB" if extra and
             "build_s" in extra else ""), flush=True)
    return row


#: The threads that make lookalike's simultaneous searches: started once, as a server's
#: worker threads are (a pool started per batch added the start of 20 threads to each batch:
#: 48 against 28 ms for 20 graph searches, in one run on the busy development machine).
POOL = ThreadPoolExecutor(20)


def threads(fn):
    """fn over 20 queries from 20 threads at once (simultaneous requests)."""
    def run(qs):
        list(POOL.map(fn, qs))
    return run


def built(make):
    before, start = rss_mb(), time.perf_counter()
    index = make()
    return index, {"build_s": time.perf_counter() - start, "memory_mb": rss_mb() - before}


def lookalike_rows(x, queries, truth, ids, hashes) -> list[dict]:
    from lookalike.search.approximate import ApproximateIndex, search as approx_search
    from lookalike.search.exact import ExactIndex

    rows = []
    exact = ExactIndex(x)
    exact._int8_wanted = True  # the float32 pass alone
    exact.search(queries[:1], 10, "cosine")

    def one(index):
        return lambda q: index.search(q, 10, "cosine")[0]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)  # the floor ranks by cosine too
    rows.append(measure("floor: X @ q (numpy)", lambda q: np.argpartition(-(unit @ q), 10)[:10],
                        lambda qs: unit @ qs.T, queries, truth))  # 20 at once: one product
    rows.append(measure("lookalike exact, float32", one(exact), threads(one(exact)), queries,
                        truth))
    eight = ExactIndex(x)
    eight.start_int8(wait=True)
    eight.search(queries[:1], 10, "cosine")
    rows.append(measure(f"lookalike exact, 8-bit ({eight.int8_choice and 'chosen' or 'off'})",
                        one(eight), threads(one(eight)), queries, truth))
    ivf, cost = built(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", "ivf"))

    def ivf_search(q):
        return approx_search(ivf, exact, ids, q[None], 10, "cosine")[0]
    rows.append(measure("lookalike IVF, nprobe 32", ivf_search, threads(ivf_search), queries,
                        truth, cost))
    rows += graph_rows(x, queries, truth, ids, hashes, exact)
    return rows


def graph_rows(x, queries, truth, ids, hashes, exact) -> list[dict]:
    """lookalike's graph as `Collection.nearest` searches it (single queries through the
    engine's GraphRequests), 20 queries as one batch call (`search_each`) and from 20 threads
    at once (merged by GraphRequests)."""
    from lookalike.search.approximate import ApproximateIndex
    from lookalike.search.graph_search import GraphRequests, search_each

    graph, cost = built(lambda: ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw"))
    requests = GraphRequests()

    def single(q):
        return requests.search(graph, exact, ids, q, 10, "cosine")[0]

    def batch(qs):
        search_each(graph, exact, ids, qs, 10, "cosine")
    rows = []
    for ef in (graph.ef_search, 64, 256):
        graph.ef_search = ef
        rows.append(measure(f"lookalike hnsw, ef {ef} (20 at once: batch call)", single, batch,
                            queries, truth, cost if ef != 64 and ef != 256 else None))
        rows.append(measure(f"lookalike hnsw, ef {ef} (20 at once: 20 threads)", single,
                            threads(single), queries, truth))
    return rows


def faiss_rows(x, queries, truth) -> list[dict]:
    import faiss

    unit = np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True))
    uq = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True))

    def make():
        index = faiss.IndexHNSWFlat(x.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION["faiss"]
        index.add(unit)
        return index
    index, cost = built(make)
    rows = []
    for ef in EF_SWEEP:
        index.hnsw.efSearch = ef

        def single(q):
            faiss.omp_set_num_threads(1)
            try:
                return index.search(q[None], 10)[1][0]
            finally:
                faiss.omp_set_num_threads(os.cpu_count() or 1)
        name = f"FAISS HNSW (M=32, efC {EF_CONSTRUCTION['faiss']}), efSearch {ef}"
        rows.append(measure(name, lambda q: single(
            q / np.linalg.norm(q)), lambda qs: index.search(uq[:len(qs)], 10), uq, truth,
            cost if ef == EF_SWEEP[0] else None))
    return rows


def hnswlib_rows(x, queries, truth) -> list[dict]:
    import hnswlib

    def make():
        index = hnswlib.Index(space="cosine", dim=x.shape[1])
        index.init_index(max_elements=len(x), M=M, ef_construction=EF_CONSTRUCTION["hnswlib"])
        index.add_items(x, np.arange(len(x)))
        return index
    index, cost = built(make)
    rows = []
    for ef in EF_SWEEP:
        index.set_ef(ef)
        name = f"hnswlib (efC {EF_CONSTRUCTION['hnswlib']}), ef {ef}"
        rows.append(measure(name, lambda q: index.knn_query(q, 10, num_threads=1)[0][0],
                            lambda qs: index.knn_query(qs, 10), queries, truth,
                            cost if ef == EF_SWEEP[0] else None))
    return rows


def usearch_rows(x, queries, truth) -> list[dict]:
    from usearch.index import Index

    def make():
        index = Index(ndim=x.shape[1], metric="cos", dtype="bf16", connectivity=M,
                      expansion_add=EF_CONSTRUCTION["usearch"])
        index.add(np.arange(len(x)), x)
        return index
    index, cost = built(make)
    rows = []
    for ef in EF_SWEEP:
        index.expansion_search = ef
        name = f"usearch bf16 (efC {EF_CONSTRUCTION['usearch']}), ef {ef}"
        rows.append(measure(name, lambda q: index.search(q, 10, threads=1).keys,
                            lambda qs: index.search(qs, 10), queries, truth,
                            cost if ef == EF_SWEEP[0] else None))
    return rows


def compare(x, queries, truth, ids, hashes) -> dict:
    """Every row, and the ratio of lookalike's graph to the fastest peer at recall >= 0.99."""
    print("  -- graph indexes, in the same run --", flush=True)
    rows = lookalike_rows(x, queries, truth, ids, hashes)
    for peer in (faiss_rows, hnswlib_rows, usearch_rows):
        try:
            rows += peer(x, queries, truth)
        except ImportError as exc:  # pip install -e .[bench]
            print(f"  {peer.__name__}: not installed ({exc})")
    good = [r for r in rows if r["recall_at_10"] >= 0.99]
    ours = [r for r in good if r["method"].startswith("lookalike hnsw")]
    peers = [r for r in good if not r["method"].startswith(("lookalike", "floor"))]
    out: dict = {"rows": rows}
    if ours and peers:
        for what in ("p50_ms", "batch20_ms"):
            mine, best = min(r[what] for r in ours), min(peers, key=lambda r: r[what])
            out[f"ratio_{what}"] = mine / best[what]
            print(f"  lookalike hnsw / fastest peer at recall@10 >= 0.99, {what}: "
                  f"{mine / best[what]:.2f}x ({best['method']})")
    return out
