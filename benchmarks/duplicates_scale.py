"""Duplicate grouping at scale: 100k and 1M images from stored vectors, no image files.

    .venv/bin/python benchmarks/duplicates_scale.py [--sizes 100000,1000000]
        [--threshold 0.01] [--dir /tmp] [--baseline-max 200000] [--sample 1000]

Vectors: the mixtures of benchmarks/search.py (real EfficientNet-Lite0 embeddings expanded
by convex mixtures of three), written chunk by chunk to a float32 .npy memory map under
--dir, as the catalogue keeps its matrix. 1% of the images get 1-5 planted copies each, at
a cosine distance drawn from 0.0005-0.005 (clipped at zero like the features). Each size is
grouped by `find_duplicates(vectors, hashes, ..., tier="similar", threshold=...)` in a child
process of its own, with the 16-byte content hash dictionary the API builds.

Per size: the time of the candidate graph (search/knn_graph.py) and of the grouping; peak
extra memory, the high-water mark of the child's anonymous memory (RssAnon, sampled every
20 ms) over what it held after mapping the matrix (the matrix's pages are the page cache's,
shared and not counted; its size is printed beside); the recall of the planted pairs (both
ends in one group) and of the true 16 nearest neighbours of a sample (against an exact
search of the sample). Up to --baseline-max rows the old way runs in the same run as the
baseline: the exact blockwise product of all rows with all rows and a dict per pair
(lookalike before the candidate graph). Results: stdout and benchmarks/out/duplicates_scale.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from machine import print_machine  # noqa: E402

OUT = Path(__file__).parent / "out"
K = 16


def base_vectors() -> np.ndarray:
    cached = OUT / "search-base-vectors.npy"
    if not cached.is_file():
        from search import real_vectors

        OUT.mkdir(parents=True, exist_ok=True)
        np.save(cached, real_vectors())
    return np.load(cached)


def build_matrix(n: int, folder: Path, seed: int = 7) -> tuple[Path, Path]:
    """The .npy of n mixture rows with planted copies, and an .npz of the planted groups."""
    from search import mixtures

    matrix_file, groups_file = folder / f"dup-scale-{n}.npy", folder / f"dup-scale-{n}.groups.npz"
    if matrix_file.is_file() and groups_file.is_file():
        return matrix_file, groups_file
    base = base_vectors()
    out = np.lib.format.open_memmap(matrix_file, "w+", np.float32, (n, base.shape[1]))
    chunk = 50_000
    for start in range(0, n, chunk):
        out[start:start + chunk] = mixtures(base, min(chunk, n - start), seed=n + start)
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n // 100)
    chosen = rng.permutation(n)[:len(counts) + counts.sum()]
    originals, slots = chosen[:len(counts)], chosen[len(counts):]
    copy_of = np.repeat(originals, counts)
    for start in range(0, len(slots), chunk):
        src = np.asarray(out[copy_of[start:start + chunk]], np.float64)
        noise = rng.normal(0, 1, src.shape)
        along = np.einsum("ij,ij->i", noise, src) / np.einsum("ij,ij->i", src, src)
        noise -= along[:, None] * src  # perpendicular to the original
        target = rng.uniform(0.0005, 0.005, len(src))  # cosine distance ~ |e|^2 / 2|v|^2
        scale = np.linalg.norm(src, axis=1) * np.sqrt(2 * target) / np.linalg.norm(noise, axis=1)
        out[slots[start:start + chunk]] = np.maximum(src + noise * scale[:, None], 0)
    out.flush()
    del out
    np.savez(groups_file, originals=originals, counts=counts, slots=slots)
    return matrix_file, groups_file


# -- the child: one grouping, measured --------------------------------------------------------

def rss_anon_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """The high-water mark of RssAnon, sampled every 20 ms on a thread."""

    def __init__(self):
        self.peak, self.running = rss_anon_kb(), True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while self.running:
            self.peak = max(self.peak, rss_anon_kb())
            time.sleep(0.02)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return max(self.peak, rss_anon_kb())


def old_neighbour_pairs(queries, among, k, lo, hi):
    """lookalike's neighbour search before search/knn_graph.py (the baseline): every row of
    `queries` times every row of `among`, in blocks of 2^24 products, a dict entry per pair."""
    pairs: dict[tuple[int, int], float] = {}
    n = len(among.ids)
    inv_q, inv_a = queries.inverse_norms(), among.inverse_norms()
    take = min(k + 1, n)
    block = max(1, (1 << 24) // n)
    for start in range(0, len(queries.ids), block):
        rows = np.asarray(queries.matrix[start:start + block], np.float32)
        sims = (rows @ np.asarray(among.matrix).T) * inv_q[start:start + block, None] * inv_a
        best = np.argpartition(-sims, take - 1, axis=1)[:, :take]
        for r, cols in enumerate(best):
            qid = int(queries.ids[start + r])
            for c in cols:
                aid = int(among.ids[c])
                d = max(0.0, 1.0 - float(sims[r, c]))
                if aid == qid or not lo <= d <= hi:
                    continue
                pairs[(min(qid, aid), max(qid, aid))] = d
    return pairs


def child(matrix_file: Path, groups_file: Path, way: str, threshold: float, sample: int) -> dict:
    from lookalike.analysis import duplicates as dup
    from lookalike.search import knn_graph

    matrix = np.load(matrix_file, mmap_mode="r")
    n = len(matrix)
    vectors = dup.Vectors(np.arange(n, dtype=np.int64), matrix)
    before = rss_anon_kb()
    watch = PeakMemory()
    hashes = {i: i.to_bytes(16, "little") for i in range(n)}  # as Collection.duplicates has
    picked = np.sort(np.random.default_rng(3).choice(n, sample, replace=False))
    times: dict[str, float] = {}
    kept: dict[str, np.ndarray] = {}
    started = time.perf_counter()
    if way == "new":
        def timed_kneighbors(*args, **kwargs):
            t = time.perf_counter()
            dist, rows = knn_graph.kneighbors(*args, **kwargs)
            times["graph_s"] = time.perf_counter() - t
            kept["rows"] = rows[picked].copy()
            return dist, rows

        dup.kneighbors = timed_kneighbors
        groups = dup.find_duplicates(vectors, hashes, bytes, tier="similar",
                                     threshold=threshold)
    else:
        t = time.perf_counter()
        pairs = old_neighbour_pairs(vectors, vectors, dup.NEIGHBOURS, 0.0, threshold)
        times["graph_s"] = time.perf_counter() - t
        check = dup.PairCheck("similar", bytes, 0.0, threshold, vectors, hashes)
        verified = {p: d for p, d in sorted(pairs.items()) if check(*p, d)}
        groups = sorted(dup.complete_groups(verified, check, transitive=False),
                        key=lambda g: (-len(g[0]), g[0][0]))
    total = time.perf_counter() - started
    peak = watch.stop()
    result = {"rows": n, "way": way, "graph_s": times["graph_s"],
              "grouping_s": total - times["graph_s"], "total_s": total,
              "peak_extra_mb": (peak - before) / 1024, "matrix_mb": matrix.nbytes / 2**20,
              "groups": len(groups), "grouped_images": sum(len(g) for g, _ in groups)}
    result["planted_pair_recall"] = planted_recall(groups, np.load(groups_file))
    if "rows" in kept:
        truth = knn_graph.kneighbors(matrix[picked], matrix, K + 1, method="exact")[1]
        truth = [[r for r in row if r != p][:K] for row, p in zip(truth, picked)]
        result["knn_recall"] = float(np.mean(
            [len(set(f) & set(t)) / K for f, t in zip(kept["rows"], truth)]))
    return result


def planted_recall(groups, planted) -> float:
    group_of: dict[int, int] = {}
    for number, (members, _) in enumerate(groups):
        for m in members:
            group_of[m] = number
    found = total = 0
    start = 0
    for original, count in zip(planted["originals"].tolist(), planted["counts"].tolist()):
        members = [original, *planted["slots"][start:start + count].tolist()]
        start += count
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                total += 1
                found += a in group_of and group_of.get(b) == group_of[a]
    return found / max(total, 1)


# -- the parent -----------------------------------------------------------------------------

def run_child(matrix_file: Path, groups_file: Path, way: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", str(matrix_file), str(groups_file), way,
           "--threshold", str(args.threshold), "--sample", str(args.sample)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{way} at {matrix_file}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(r: dict) -> None:
    recall = f"  kNN recall@{K} {r['knn_recall']:.3f}" if "knn_recall" in r else ""
    print(f"  {r['way']:<4} graph {r['graph_s']:7.1f} s  grouping {r['grouping_s']:6.1f} s  "
          f"total {r['total_s']:7.1f} s  peak extra {r['peak_extra_mb']:6.0f} MB  "
          f"{r['groups']:,} groups  planted pairs found {r['planted_pair_recall']:.3f}{recall}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--threshold", type=float, default=0.01)
    parser.add_argument("--dir", default="/tmp", help="where the matrices are written")
    parser.add_argument("--baseline-max", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=1000, help="rows for the kNN recall")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), args.child[2],
                               args.threshold, args.sample)))
        return
    results: dict = {"machine": print_machine(), "threshold": args.threshold, "sizes": []}
    for n in (int(s) for s in args.sizes.split(",")):
        matrix_file, groups_file = build_matrix(n, Path(args.dir))
        print(f"\n{n:,} images x 1280 (matrix {n * 1280 * 4 / 2**20:,.0f} MB, memory-mapped), "
              f"similar tier, threshold {args.threshold}", flush=True)
        row = {"rows": n, "new": run_child(matrix_file, groups_file, "new", args)}
        show(row["new"])
        if n <= args.baseline_max:
            row["old"] = run_child(matrix_file, groups_file, "old", args)
            show(row["old"])
        results["sizes"].append(row)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "duplicates_scale.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
