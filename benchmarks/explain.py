"""Explaining a match: which heat map agrees best with occlusion, and how long one takes.

    PYTHONPATH=src .venv/bin/python benchmarks/explain.py [--model M] [--repeat 5]

Pairs: photos bundled with scikit-image and scikit-learn, each with a crop of itself (a fixed
box), with its mirror image, and a few pairs of different photos. For each pair:
  * the heat maps of every method of ``analysis/explain.py`` (HEAT_METHODS);
  * the occlusion map, slow and model-agnostic: each cell's square of two cells' width, centred
    on the cell, painted grey (128) in one image, and the rise of the pair's cosine distance;
  * agreement: Spearman's rank correlation of each method's scores with occlusion's, over the
    cells of both images, averaged over pairs; for crop pairs, how often the photo's hottest
    cell lies inside the crop's box;
  * time: `Collection.explain` of the two files (decode, model, heat; the default method),
    best of --repeat, and the occlusion map's time.
Results go to stdout (the machine line first) and to benchmarks/out/explain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
from lookalike import Collection  # noqa: E402
from lookalike.analysis.explain import DEFAULT_HEAT_METHOD, HEAT_METHODS, raw_heat  # noqa: E402
from lookalike.models import DEFAULT_MODEL, load_model  # noqa: E402
from machine import print_machine  # noqa: E402

OUT = Path(__file__).parent / "out" / "explain.json"
# name -> (photo, crop box as fractions left, top, right, bottom)
CROPS = {
    "chelsea": (0.35, 0.05, 0.80, 0.75),   # the cat's head
    "astronaut": (0.30, 0.00, 0.70, 0.50),  # her face
    "coffee": (0.10, 0.10, 0.55, 0.75),    # the cup's left half and saucer
    "rocket": (0.35, 0.10, 0.65, 0.90),    # the rocket
    "china": (0.00, 0.40, 0.50, 1.00),     # the temple's lower left
    "flower": (0.40, 0.20, 0.90, 0.80),    # the flower
}
DIFFERENT = [("chelsea", "coffee"), ("astronaut", "rocket"), ("china", "flower")]


def photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    out = {name: getattr(skimage.data, name)() for name in ("chelsea", "astronaut", "coffee",
                                                            "rocket")}
    out.update({name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")})
    return out


def crop(image: np.ndarray, box) -> np.ndarray:
    h, w = image.shape[:2]
    left, top, right, bottom = box
    return image[int(top * h):int(bottom * h), int(left * w):int(right * w)]


def squashed(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))


def occlusion_scores(model, a: np.ndarray, b: np.ndarray, grid: int) -> np.ndarray:
    """(grid, grid): the rise in cosine distance to b's vector when each cell of a is greyed."""
    size = a.shape[0]
    cell = size / grid
    target = model.embed(b[None])[0]
    target /= np.linalg.norm(target)
    batch = [a]
    for row in range(grid):
        for col in range(grid):
            y0, x0 = int(max(0, (row - 0.5) * cell)), int(max(0, (col - 0.5) * cell))
            y1, x1 = int(min(size, (row + 1.5) * cell)), int(min(size, (col + 1.5) * cell))
            grey = a.copy()
            grey[y0:y1, x0:x1] = 128
            batch.append(grey)
    vectors = np.concatenate([model.embed(np.stack(batch[i:i + 25]))
                              for i in range(0, len(batch), 25)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = vectors @ target
    return (similarity[0] - similarity[1:]).reshape(grid, grid)


def pairs(images: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray, tuple | None]]:
    out = []
    for name, box in CROPS.items():
        out.append((f"{name} / crop", images[name], crop(images[name], box), box))
    for name in CROPS:
        out.append((f"{name} / mirror", images[name], images[name][:, ::-1], None))
    for x, y in DIFFERENT:
        out.append((f"{x} / {y}", images[x], images[y], None))
    return out


def inside(heat: np.ndarray, box) -> bool:
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    x, y = (col + 0.5) / heat.shape[1], (row + 0.5) / heat.shape[0]
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def explain_time(name: str, a: np.ndarray, b: np.ndarray, model: str, repeat: int,
                 folder: Path, collection: Collection) -> float:
    files = []
    for side, image in (("a", a), ("b", b)):
        path = folder / f"{name.replace(' / ', '-')}-{side}.jpg"
        Image.fromarray(np.ascontiguousarray(image)).save(path, quality=92)
        files.append(path)
    collection.explain(files[0], files[1], model=model)  # the model loaded once
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        collection.explain(files[0], files[1], model=model)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    machine = print_machine()
    model = load_model(args.model, threads=os.cpu_count())
    size = model.info.input_size
    images = photos()
    agreement: dict[str, dict[str, list[float]]] = {m: {} for m in HEAT_METHODS}
    hits: dict[str, list[bool]] = {m: [] for m in HEAT_METHODS}
    rows, times, occlusion_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        Image.fromarray(images["chelsea"]).save(folder / "seed.png")
        collection = Collection.index([folder / "seed.png"], db=folder / "c.db", model=args.model)
        for name, a, b, box in pairs(images):
            pa, pb = squashed(a, size), squashed(b, size)
            vectors, maps = model.embed_with_maps(np.stack([pa, pb]))
            grid = maps.shape[2]
            start = time.perf_counter()
            occluded = [occlusion_scores(model, pa, pb, grid),
                        occlusion_scores(model, pb, pa, grid)]
            occlusion_times.append(time.perf_counter() - start)
            row = {"pair": name}
            for method in HEAT_METHODS:
                heat = raw_heat(maps[0], maps[1], vectors[0], vectors[1], method)
                rho = float(spearmanr(np.concatenate([h.ravel() for h in heat]),
                                      np.concatenate([o.ravel() for o in occluded]))[0])
                kind = name.split(" / ")[1] if box is not None or "mirror" in name \
                    else "different"
                agreement[method].setdefault(kind, []).append(rho)
                agreement[method].setdefault("all", []).append(rho)
                row[method] = round(rho, 3)
                if box is not None:
                    hits[method].append(inside(heat[0], box))
            if box is not None:
                hits.setdefault("occlusion", []).append(inside(occluded[0], box))
            times.append(explain_time(name, a, b, args.model, args.repeat, folder, collection))
            row["explain_ms"] = round(1000 * times[-1], 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
        collection.close()
    summary = {
        "machine": machine, "model": args.model, "default_method": DEFAULT_HEAT_METHOD,
        "spearman_with_occlusion": {m: {kind: round(float(np.mean(v)), 3)
                                        for kind, v in kinds.items()}
                                    for m, kinds in agreement.items()},
        "crop_peak_inside": {m: f"{sum(v)}/{len(v)}" for m, v in hits.items()},
        "explain_ms_median": round(1000 * float(np.median(times)), 1),
        "explain_ms_max": round(1000 * float(np.max(times)), 1),
        "occlusion_ms_median": round(1000 * float(np.median(occlusion_times)), 1),
        "pairs": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "pairs"}, indent=1))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
