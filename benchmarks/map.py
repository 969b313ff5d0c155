"""The map's speed and quality: UMAP, t-SNE and PCA (analysis/layout.py) on 1280-d vectors.

    .venv/bin/python benchmarks/map.py [--sizes 10000,100000] [--methods umap,tsne,pca]
                                       [--place 1000]

Quality, on real vectors: the Twemoji sample's EfficientNet-Lite0 embeddings (the base of
benchmarks/search.py, labelled by subcategory; subcategories of 10 or more), per method:
- neighbours kept: the share of each image's 10 nearest others by cosine in 1280-d that are
  also among its 10 nearest on the map;
- kNN label accuracy on the map: the share of images whose label wins the vote of their 10
  nearest on the map (leave-one-out), with the same vote in 1280-d as the ceiling.
Speed, on N x 1280 vectors made as benchmarks/search.py makes them (random mixtures of three
real vectors plus noise): the time to fit each method, then to place `--place` fresh vectors
into the fitted map, and the neighbours kept on a 2,000-image sample. UMAP also unseeded
(parallel) at the smallest size, the choice layout.py's docstring explains. Every fit runs
in this process after a warm-up fit and placement of 5,000 points, so numba's compilation
(30 s and more) is not counted. Results: stdout and benchmarks/out/map.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from lookalike.analysis import layout  # noqa: E402
from machine import print_machine  # noqa: E402
from search import OUT, mixtures, real_vectors  # noqa: E402


def twemoji_labelled() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Twemoji vectors, subcategory labels) of subcategories with 10 or more images, and
    every base vector (Twemoji and photos) for the mixtures."""
    import lookalike

    if not (OUT / "search-base.db").is_file():
        real_vectors()  # index the Twemoji sample and the photos, as benchmarks/search.py does
    with lookalike.Collection.open(OUT / "search-base.db") as col:
        ids, matrix = col.vectors()
        rows = col.store.rows(ids.tolist())
    labels = np.array([r["category"] or "" for r in rows])
    keep = np.array(["/" in c and not c.startswith(("Flags", "Component")) for c in labels])
    names, counts = np.unique(labels[keep], return_counts=True)
    keep &= np.isin(labels, names[counts >= 10])
    return np.asarray(matrix[keep], np.float32), labels[keep], np.array(matrix, np.float32)


def knn(points: np.ndarray, k: int, cosine: bool) -> np.ndarray:
    """Each row's k nearest other rows (exact, in blocks)."""
    x = points / np.linalg.norm(points, axis=1, keepdims=True) if cosine else points
    sq = (x * x).sum(1)
    out = np.empty((len(x), k), np.int64)
    for start in range(0, len(x), 2048):
        block = x[start:start + 2048]
        d = sq[start:start + 2048, None] - 2 * block @ x.T + sq[None, :]
        d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k]
        order = np.take_along_axis(d, part, 1).argsort(1)
        out[start:start + len(block)] = np.take_along_axis(part, order, 1)
    return out


def kept(high: np.ndarray, coords: np.ndarray, k: int = 10) -> float:
    a, b = knn(high, k, cosine=True), knn(coords.astype(np.float64), k, cosine=False)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)]))


def vote(neighbours: np.ndarray, labels: np.ndarray) -> float:
    right = 0
    for i, row in enumerate(neighbours):
        names, counts = np.unique(labels[row], return_counts=True)
        right += names[np.argmax(counts)] == labels[i]
    return right / len(labels)


def quality(vectors: np.ndarray, labels: np.ndarray, methods: list[str]) -> list[dict]:
    ceiling = vote(knn(vectors, 10, cosine=True), labels)
    print(f"\nquality on Twemoji: {len(vectors)} images, {len(set(labels))} subcategories; "
          f"kNN label accuracy in 1280-d {ceiling:.3f}")
    rows = []
    for method in methods:
        start = time.perf_counter()
        coords = layout.fit(vectors, method).coords
        seconds = time.perf_counter() - start
        row = {"method": method, "seconds": seconds, "neighbours_kept": kept(vectors, coords),
               "knn_accuracy_map": vote(knn(coords.astype(np.float64), 10, False), labels),
               "knn_accuracy_1280d": ceiling}
        print(f"  {method:5} neighbours kept {row['neighbours_kept']:.3f}, kNN label accuracy "
              f"{row['knn_accuracy_map']:.3f} ({seconds:.1f} s)", flush=True)
        rows.append(row)
    return rows


def speed(base: np.ndarray, n: int, methods: list[str], place: int,
          unseeded: bool) -> list[dict]:
    x = mixtures(base, n, seed=n)
    fresh = mixtures(base, place, seed=1)
    sample = np.random.default_rng(0).choice(n, min(n, 2000), replace=False)
    rows = []
    for method in methods:
        start = time.perf_counter()
        fitted = layout.fit(x, method)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        layout.place(fitted, fresh)
        place_s = time.perf_counter() - start
        row = {"n": n, "method": method, "fit_s": fit_s, "place_s": place_s, "placed": place,
               "neighbours_kept_sample": kept(x[sample], fitted.coords[sample])}
        print(f"  {n:>9,} {method:5} fit {fit_s:7.1f} s, place {place:,} in {place_s:5.1f} s, "
              f"neighbours kept (2,000 sample) {row['neighbours_kept_sample']:.3f}", flush=True)
        rows.append(row)
    if unseeded and "umap" in methods:
        import umap

        reduced = layout._principal_axes(x, layout.PCA_DIMENSIONS, 0)(x)
        start = time.perf_counter()
        umap.UMAP(n_neighbors=15, min_dist=0.1, low_memory=True).fit_transform(reduced)
        seconds = time.perf_counter() - start
        print(f"  {n:>9,} umap unseeded (parallel): UMAP itself {seconds:.1f} s", flush=True)
        rows.append({"n": n, "method": "umap-unseeded", "fit_s": seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--methods", default="umap,tsne,pca")
    parser.add_argument("--place", type=int, default=1000)
    parser.add_argument("--no-quality", action="store_true")
    args = parser.parse_args()
    machine = print_machine()
    methods = args.methods.split(",")
    vectors, labels, base = twemoji_labelled()
    warm = mixtures(base, 5000, seed=2)  # from 4,096 points UMAP uses NN-descent: compile it too
    for method in methods:  # compile numba's code once, outside the timings
        layout.place(layout.fit(warm, method), warm[:10])
    results: dict = {"machine": machine, "quality": [], "speed": []}
    if not args.no_quality:
        results["quality"] = quality(vectors, labels, methods)
    print("\nspeed (N x 1280 mixtures):")
    for i, n in enumerate(int(s) for s in args.sizes.split(",")):
        results["speed"] += speed(base, n, methods, args.place, unseeded=i == 0)
        OUT.mkdir(exist_ok=True)
        (OUT / "map.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
