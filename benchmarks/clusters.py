"""How well `analyze` clusters, against labels, and how fast it is at 100,000 images.

    .venv/bin/python benchmarks/clusters.py [--fashion-per-class 200] [--sizes 100000]

Quality: adjusted Rand index and NMI (scikit-learn) of the clusters against the labels of
Twemoji (its 100 subcategories, e.g. "Animals & Nature/animal-bird") and of Fashion-MNIST's
test split (its 10 classes; the first N images of each), in the same run for:
- lookalike auto: `Collection.analyze()` (HDBSCAN; its noise counts as one more label, which
  is what a user sees) and with the true number of clusters (`clusters=K`, k-means);
- Orange's way, as in the paper's workflow: Orange's SqueezeNet embedding (lookalike's
  `squeezenet` model, the same network and weights), Euclidean distances and hierarchical
  clustering with average linkage (the defaults of Orange's Distances and Hierarchical
  Clustering widgets), and with Ward linkage (the widget's other common choice), cut at the
  true number of classes;
- k-means (scikit-learn) on raw pixels (32x32 RGB), at the true number of classes.
Speed: `Collection.analyze(sample=100)` from stored vectors, 1280-d mixtures of real
EfficientNet-Lite0 vectors of Twemoji (as benchmarks/search.py makes them).
Results: stdout and benchmarks/out/clusters.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import lookalike  # noqa: E402
from lookalike import datasets  # noqa: E402
from lookalike.catalogue.store import ImageRow, Store  # noqa: E402
from machine import print_machine  # noqa: E402
from search import mixtures  # noqa: E402

OUT = Path(__file__).parent / "out"


def scores(truth: np.ndarray, found: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    kept = found >= 0  # HDBSCAN's noise: scored as one more label, and also left out
    return {"ari": round(float(adjusted_rand_score(truth, found)), 3),
            "nmi": round(float(normalized_mutual_info_score(truth, found)), 3),
            "ari_clustered": round(float(adjusted_rand_score(truth[kept], found[kept])), 3),
            "nmi_clustered": round(float(normalized_mutual_info_score(truth[kept], found[kept])),
                                   3),
            "clusters": int(len(set(found.tolist()) - {-1})),
            "noise": round(float(np.mean(found == -1)), 3)}


def orange_hierarchical(vectors: np.ndarray, k: int, method: str = "average") -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    return fcluster(linkage(vectors.astype(np.float64), method, metric="euclidean"), k,
                    "maxclust")


def raw_pixels(paths: list[str]) -> np.ndarray:
    from PIL import Image

    def pixels(path: str) -> np.ndarray:
        with Image.open(path) as im:
            rgb = im.convert("RGBA")
            white = Image.new("RGBA", rgb.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgb).convert("RGB").resize((32, 32)),
                              np.float32).ravel() / 255
    return np.stack([pixels(p) for p in paths])


def quality_on(name: str, folder: Path) -> dict:
    """The four ways on one labelled folder (labels: the category, i.e. the sub-folder)."""
    from sklearn.cluster import KMeans

    out: dict = {}
    for model in ("efficientnet-lite0-gem", "squeezenet"):
        col = lookalike.Collection.index([folder], db=OUT / f"clusters-{name}.db", model=model)
        ids, vectors = col.vectors(model)
        rows = col.store.rows(ids)
        truth = np.unique([r["category"] for r in rows], return_inverse=True)[1]
        k = int(truth.max()) + 1
        if model == "squeezenet":
            for linkage in ("average", "ward"):  # the widget's default, and its Ward choice
                started = time.perf_counter()
                out[f"orange squeezenet + hierarchical ({linkage}) at K"] = {
                    **scores(truth, orange_hierarchical(vectors, k, linkage)),
                    "seconds": round(time.perf_counter() - started, 2)}
            pixels = raw_pixels([r["path"] for r in rows])
            labels = KMeans(k, n_init=3, random_state=0).fit_predict(pixels)
            out["k-means on raw pixels at K"] = scores(truth, labels)
            continue
        for label, clusters in (("lookalike auto (hdbscan)", "auto"),
                                ("lookalike k-means at K", k)):
            started = time.perf_counter()
            a = col.analyze(model, clusters=clusters)
            out[label] = {**scores(truth, a.cluster),
                          "seconds": round(time.perf_counter() - started, 2)}
        col.close()
    print(f"\n{name} ({len(truth):,} images, {k} labels)")
    for way, s in out.items():
        print(f"  {way:<48} ARI {s['ari']:.3f}  NMI {s['nmi']:.3f}  clusters {s['clusters']:>4}"
              f"  noise {s['noise']:.0%} (without it: ARI {s['ari_clustered']:.3f}, "
              f"NMI {s['nmi_clustered']:.3f})")
    return out


def speed(n: int, base: np.ndarray) -> dict:
    """analyze from stored vectors at n images (a database written here, no image files)."""
    db = OUT / f"clusters-speed-{n}.db"
    if db.exists():
        db.unlink()
    vectors = mixtures(base, n, seed=n)
    model = "efficientnet-lite0-gem"
    with Store(db) as store:
        for start in range(0, n, 10_000):
            rows = [ImageRow(f"/synthetic/{i}.png".encode(), f"/synthetic/{i}.png", "/synthetic",
                             str(i), "", 1, 1, 224, 224, i.to_bytes(16, "big"))
                    for i in range(start, min(n, start + 10_000))]
            store.write(rows, [(r.content_hash, model, v)
                               for r, v in zip(rows, vectors[start:start + 10_000])],
                        [(r.content_hash, (500.0, 0.1, 0.9, 6.0, 40.0)) for r in rows])
    col = lookalike.Collection.open(db)
    col.vectors(model)  # the matrix loaded, as a second call finds it
    started = time.perf_counter()
    a = col.analyze(model, sample=100)
    seconds = time.perf_counter() - started
    again = time.perf_counter()
    col.analyze(model, sample=100)
    reused = time.perf_counter() - again
    col.close()
    print(f"\nanalyze {n:,} x {vectors.shape[1]}: {seconds:.1f} s ({a.method}, "
          f"{int(a.cluster.max()) + 1} clusters, sample of 100); stored, read again: "
          f"{reused:.1f} s")
    return {"n": n, "seconds": round(seconds, 1), "method": a.method, "reused_seconds":
            round(reused, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fashion-per-class", type=int, default=200)
    parser.add_argument("--sizes", default="100000", help="speed at these sizes; '' for none")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    results: dict = {"machine": print_machine()}
    twemoji = OUT / "twemoji"
    if not (twemoji / "ATTRIBUTION.txt").exists():
        datasets.get("twemoji", twemoji)
    results["twemoji"] = quality_on("twemoji", twemoji)
    fashion = OUT / f"fashion-{args.fashion_per_class}"
    datasets.get("fashion-mnist", fashion, split="test", limit=args.fashion_per_class)
    results["fashion-mnist"] = quality_on(f"fashion-mnist-{args.fashion_per_class}", fashion)
    base = lookalike.Collection.open(OUT / "clusters-twemoji.db").vectors(
        "efficientnet-lite0-gem")[1]
    results["speed"] = [speed(int(n), np.array(base)) for n in args.sizes.split(",") if n]
    (OUT / "clusters.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
