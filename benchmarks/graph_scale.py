"""Graph indexes at a million rows: how long a walk each needs for recall@10 0.99, what
calibration chooses, and the peers that reach it, on benchmarks/search.py's mixtures.

    nice .venv/bin/python benchmarks/graph_scale.py [--rows 1000000]
        [--parts sweep,calibration,peers] [--ef-construction 128]

Parts (each builds what it needs; at a million rows a graph takes 5-15 minutes on 2 cores):
- sweep: lookalike's graph (fp16, M=32, `--ef-construction`) at efSearch 64-1024, recall@10
  after exact re-scoring of 20 and of 40 candidates, for 200 fresh queries and for 200 rows
  of the matrix as queries (each left out of its own answer, as `calibrate` measures);
- calibration: that graph and a fresh IVF calibrated as the product does (search/calibration.py:
  300 rows held out of each until measured on them, then added), with the time each took, then
  the graph timed at its calibrated efSearch and a few others (single queries as `nearest`
  runs them, 20 from threads through GraphRequests);
- peers: lookalike's IVF at nprobe 16 and at its calibrated nprobe beside hnswlib (efC 200)
  and usearch (bf16, efC 128) at ef 64-512 (benchmarks/search_peers.py's measure).
Prints the machine line first; results to benchmarks/out/graph_scale.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import lookalike.search.approximate as approximate  # noqa: E402
import search_peers  # noqa: E402
from lookalike.search.approximate import ApproximateIndex, search as approx_search  # noqa: E402
from lookalike.search.calibration import calibrate, held_out_rows  # noqa: E402
from lookalike.search.exact import ExactIndex  # noqa: E402
from lookalike.search.graph_search import GraphRequests, search_each  # noqa: E402
from machine import print_machine  # noqa: E402
from search import OUT, mixtures, real_vectors  # noqa: E402

POOL = ThreadPoolExecutor(20)


def recall(found, truth) -> float:
    return float(np.mean([len(set(np.asarray(f)[:10]) & set(t[:10])) / 10
                          for f, t in zip(found, truth)]))


def sweep(graph, exact, ids, fresh, truth_fresh, rows, truth_rows) -> dict:
    out = {}
    original = approximate.GRAPH_MIN_CANDIDATES
    try:
        for candidates in (20, 40):
            approximate.GRAPH_MIN_CANDIDATES = candidates
            for ef in (64, 128, 256, 512, 1024):
                graph.ef_search = ef
                start = time.perf_counter()
                found = [r for r, _, _ in search_each(graph, exact, ids, fresh, 10, "cosine",
                                                      threads=1)]
                ms = (time.perf_counter() - start) / len(fresh) * 1000
                own = [r for r, _, _ in search_each(
                    graph, exact, ids, exact.rows(rows), 10, "cosine",
                    excludes=[np.array([r]) for r in rows], threads=1)]
                out[f"{candidates}/{ef}"] = {"fresh": recall(found, truth_fresh),
                                             "rows": recall(own, truth_rows), "ms": ms}
                print(f"  {candidates} candidates, efSearch {ef:<4}: recall@10 fresh "
                      f"{out[f'{candidates}/{ef}']['fresh']:.3f}, rows "
                      f"{out[f'{candidates}/{ef}']['rows']:.3f}, {ms:.2f} ms a query",
                      flush=True)
    finally:
        approximate.GRAPH_MIN_CANDIDATES = original
    return out


def calibrated(graph, held, exact, ids, hashes, queries, truth) -> dict:
    """The graph (built without the `held` rows) calibrated on them as the product does,
    then given them; timed at its calibrated efSearch and others; then IVF likewise."""
    out: dict = {}
    start = time.perf_counter()
    measured = calibrate(graph, exact, ids, held_out=held)
    if held is not None:
        graph.add_rows(ids, hashes, exact, held)
    out["graph"] = {"seconds": time.perf_counter() - start, **measured.to_dict()}
    print(f"  graph calibrated in {out['graph']['seconds']:.0f} s: {measured.describe('hnsw')}",
          flush=True)
    requests = GraphRequests()
    rows = []
    for ef in sorted({256, 384, 512, measured.reach}):
        graph.ef_search = ef
        rows.append(search_peers.measure(
            f"lookalike hnsw, efSearch {ef}",
            lambda q: search_each(graph, exact, ids, q[None], 10, "cosine", threads=1)[0][0],
            lambda qs: list(POOL.map(lambda q: requests.search(graph, exact, ids, q[None], 10,
                                                               "cosine"), qs)),
            queries, truth))
    out["graph_rows"] = rows
    start = time.perf_counter()
    ivf = ApproximateIndex.build(ids, hashes, exact, "cosine", "ivf", hold_out=held)
    built = time.perf_counter() - start
    start = time.perf_counter()
    measured = calibrate(ivf, exact, ids, held_out=held)
    out["ivf"] = {"build_s": built, "seconds": time.perf_counter() - start, **measured.to_dict()}
    print(f"  IVF built in {built:.0f} s, calibrated in {out['ivf']['seconds']:.0f} s: "
          f"{measured.describe('ivf')}", flush=True)
    return out


def peers(exact, ids, hashes, x, queries, truth) -> list[dict]:
    start = time.perf_counter()
    ivf = ApproximateIndex.build(ids, hashes, exact, "cosine", "ivf")
    cost = {"build_s": time.perf_counter() - start, "memory_mb": 0.0}
    reach = calibrate(ivf, exact, ids).reach
    rows = []
    for nprobe in sorted({16, reach}):
        ivf.nprobe = nprobe

        def one(q):
            return approx_search(ivf, exact, ids, q[None], 10, "cosine")[0]
        rows.append(search_peers.measure(f"lookalike IVF, nprobe {nprobe}", one,
                                         search_peers.threads(one), queries, truth, cost))
    search_peers.EF_SWEEP = (64, 128, 256, 512)
    for peer in (search_peers.hnswlib_rows, search_peers.usearch_rows):
        try:
            rows += peer(x, queries, truth)
        except ImportError as exc:  # pip install -e .[bench]
            print(f"  {peer.__name__}: not installed ({exc})")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", default="sweep,calibration,peers")
    parser.add_argument("--ef-construction", type=int, default=None,
                        help="the graph's (default: lookalike's for that many rows)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print_machine()
    base = real_vectors()
    n = args.rows
    x = mixtures(base, n, seed=n)
    fresh = mixtures(base, 200, seed=1)
    queries = fresh[:100]
    rows = np.sort(np.random.default_rng(5).choice(n, 200, replace=False))
    ids = np.arange(n, dtype=np.int64)
    hashes = np.array([int(i).to_bytes(8, "little") for i in ids], dtype="S16")
    exact = ExactIndex(x)
    exact._int8_wanted = True  # the float32 pass alone
    truth = [exact.search(q, 10, "cosine")[0] for q in fresh]
    own = [exact.search(x[r], 11, "cosine")[0] for r in rows]
    truth_rows = [t[t != r][:10] for t, r in zip(own, rows)]
    if args.ef_construction is not None:
        approximate.GRAPH_EF_CONSTRUCTION = args.ef_construction
        approximate.GRAPH_EF_CONSTRUCTION_LARGE = args.ef_construction
    efc = approximate.graph_ef_construction(n)
    result: dict = {"rows": n, "ef_construction": efc}
    if parts & {"sweep", "calibration"}:
        held = held_out_rows(np.arange(n))  # as the product builds an index to calibrate
        start = time.perf_counter()
        graph = ApproximateIndex.build(ids, hashes, exact, "cosine", "hnsw", hold_out=held)
        result["graph_build_s"] = time.perf_counter() - start
        print(f"graph (fp16, M={approximate.GRAPH_M}, efConstruction {efc}) "
              f"built in {result['graph_build_s']:.0f} s", flush=True)
        if "calibration" in parts:
            result["calibration"] = calibrated(graph, held, exact, ids, hashes, queries,
                                               truth[:100])
        elif held is not None:
            graph.add_rows(ids, hashes, exact, held)
        if "sweep" in parts:
            result["sweep"] = sweep(graph, exact, ids, fresh, truth, rows, truth_rows)
        del graph
    if "peers" in parts:
        result["peers"] = peers(exact, ids, hashes, x, queries, truth[:100])
    OUT.mkdir(exist_ok=True)
    (OUT / "graph_scale.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
