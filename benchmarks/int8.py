"""Float against int8, per model: speed, closeness of features, and ImageNet top-1.

    .venv/bin/python benchmarks/int8.py [--models squeezenet,efficientnet-lite0] [--repeat 3]
                                        [--dynamic] [--all-quantised] [--no-retrieval]
                                        [--cache DIR]

For each model X and its int8 version X-int8, in one run:
  * build: seconds to build X and to quantise X-int8, into a fresh cache folder (unless
    --cache names one; then cached files are reused and build times are not measured);
  * speed: images/s of ``embed`` on a batch of 32 photos already squashed to the input size,
    onnxruntime with 2 threads, model only (no decoding); best of --repeat (3) runs of 3
    batches, float and int8 taking turns so that both see the same machine load;
  * cosine similarity of int8 to float features on six photos (scikit-image chelsea, coffee,
    astronaut, rocket; scikit-learn china, flower), squashed to the input size with LANCZOS;
  * the same on a wider set, 80 images: 20 bundled with scikit-image and scikit-learn (grey
    ones, textures, a logo and text among them) and 3 random crops of each (fixed seed). The
    int8 settings were chosen on this set (the six photos among it), so neither is a
    held-out test;
  * ImageNet top-1 of both on chelsea (a cat: 281-287) and coffee (espresso 967, cup 968,
    mug 504), and whether they agree;
  * retrieval on the Twemoji set: leave-one-out cosine precision@10 by subcategory for float
    and int8, and the share of each emoji's 10 nearest neighbours that int8 and float have in
    common (skip with --no-retrieval);
  * with --dynamic, also onnxruntime's dynamic quantisation (ConvInteger, per-channel uint8
    weights), and with --all-quantised, our static quantisation with the stem and first block
    quantised too: the two choices not kept, measured alike.
Results go to stdout and to benchmarks/out/int8.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).parent / "out"
THREADS = 2
BATCH = 32
CATS = set(range(281, 288))
COFFEE = {967, 968, 504}


def photos(size: int) -> tuple[list[str], np.ndarray]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    names = ["chelsea", "coffee", "astronaut", "rocket"]
    arrays = [getattr(data, n)() for n in names]
    sample = load_sample_images()
    names += [Path(f).stem for f in sample.filenames]
    arrays += list(sample.images)
    squashed = [np.asarray(Image.fromarray(a).convert("RGB").resize((size, size), Image.LANCZOS))
                for a in arrays]
    return names, np.stack(squashed)


WIDER_SET = ["astronaut", "camera", "chelsea", "clock", "coffee", "coins", "hubble_deep_field",
             "immunohistochemistry", "moon", "retina", "rocket", "brick", "grass", "gravel",
             "page", "logo", "colorwheel", "text"]


def wider_set(size: int, crops: int = 3, seed: int = 0) -> np.ndarray:
    from skimage import data
    from sklearn.datasets import load_sample_images

    from lookalike.ingest.decode import to_rgb

    sources = [Image.fromarray(getattr(data, n)()) for n in WIDER_SET]
    sources += [Image.fromarray(a) for a in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = []
    for im in map(to_rgb, sources):
        w, h = im.size
        out.append(im.resize((size, size), Image.LANCZOS))
        for _ in range(crops):
            cw, ch = int(w * rng.uniform(0.4, 0.8)), int(h * rng.uniform(0.4, 0.8))
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            out.append(im.crop((x, y, x + cw, y + ch)).resize((size, size), Image.LANCZOS))
    return np.stack([np.asarray(im) for im in out])


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rate(model, batch: np.ndarray, runs: int = 3) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        model.embed(batch)
    return runs * len(batch) / (time.perf_counter() - start)


def best_rates(models: list, batch: np.ndarray, repeat: int) -> list[float]:
    for m in models:
        m.embed(batch)  # warm-up: onnxruntime allocates on the first run
    best = [0.0] * len(models)
    for _ in range(repeat):
        for i, m in enumerate(models):
            best[i] = max(best[i], rate(m, batch))
    return best


def twemoji(size: int) -> tuple[np.ndarray, np.ndarray]:
    from lookalike.datasets import twemoji_entries
    from lookalike.ingest.decode import decode

    entries = [(sub, png) for _, sub, _, png in twemoji_entries()]
    labels = np.array([sub for sub, _ in entries])
    pixels = np.stack([decode(png.read_bytes(), size).pixels for _, png in entries])
    return pixels, labels


def embed_all(model, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([model.embed(pixels[i:i + BATCH]) for i in range(0, len(pixels), BATCH)])


def neighbours(features: np.ndarray, k: int = 10) -> np.ndarray:
    sims = unit(features) @ unit(features).T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def retrieval(float_features: np.ndarray, int8_features: np.ndarray,
              labels: np.ndarray) -> dict:
    nf, nq = neighbours(float_features), neighbours(int8_features)
    shared = [len(set(a) & set(b)) / nf.shape[1] for a, b in zip(nf, nq)]
    return {"images": len(labels),
            "precision_at_10_float": float((labels[nf] == labels[:, None]).mean()),
            "precision_at_10_int8": float((labels[nq] == labels[:, None]).mean()),
            "shared_neighbours_at_10": float(np.mean(shared))}


def dynamic_variant(float_path: Path, workdir: str):
    """onnxruntime's dynamic quantisation of the same float graph, preprocessing kept float."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from lookalike.models import int8, make_session

    out = os.path.join(workdir, f"{float_path.stem}-dynamic.onnx")
    logging.disable(logging.WARNING)  # its advice to pre-process, printed for every model
    try:
        quantize_dynamic(os.fspath(float_path), out, per_channel=True,
                         weight_type=QuantType.QUInt8,
                         nodes_to_exclude=int8.float_head(onnx.load(float_path), 0))
    finally:
        logging.disable(logging.NOTSET)
    return make_session(out, THREADS)


def all_quantised_variant(name: str, float_path: Path, input_size: int):
    """Our static quantisation with the stem and first block quantised too."""
    import dataclasses

    from lookalike.models import int8, make_session

    recipe = dataclasses.replace(int8.recipe_for(name), float_convolutions=0)
    return make_session(int8.quantise(float_path, input_size, recipe).SerializeToString(),
                        THREADS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="", help="float model names, comma-separated "
                        "(default: every installed float model)")
    parser.add_argument("--repeat", type=int, default=3, help="speed runs; the best is kept")
    parser.add_argument("--dynamic", action="store_true",
                        help="also measure onnxruntime's dynamic quantisation")
    parser.add_argument("--all-quantised", action="store_true",
                        help="also measure int8 with the stem and first block quantised too")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the Twemoji test")
    parser.add_argument("--cache", help="model cache folder (default: a fresh temporary one)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="lookalike-int8-bench-")
    os.environ["LOOKALIKE_CACHE_DIR"] = args.cache or workdir
    import onnxruntime

    from lookalike.models import Model, int8, list_models, load_model, model_path
    from machine import print_machine

    machine = print_machine()

    names = [m for m in args.models.split(",") if m] or \
        [m.name for m in list_models() if m.installed and not m.name.endswith("-int8")]
    emoji_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    results = {"machine": machine, "cpu_count": os.cpu_count(),
               "onnxruntime": onnxruntime.__version__, "threads": THREADS, "batch": BATCH,
               "int8_weights": "7-bit" if int8.weights_need_reduced_range() else "8-bit",
               "models": {}}
    for name in names:
        start = time.perf_counter()
        float_path = model_path(name)
        float_build = time.perf_counter() - start
        start = time.perf_counter()
        model_path(f"{name}-int8")
        int8_build = time.perf_counter() - start
        fm, qm = load_model(name, threads=THREADS), load_model(f"{name}-int8", threads=THREADS)
        size = fm.info.input_size
        photo_names, pixels = photos(size)
        batch = np.resize(pixels, (BATCH, size, size, 3))
        wider = wider_set(size)
        float_pixels, float_wider = fm.embed(pixels), embed_all(fm, wider)

        alternatives = {}  # the quantisations not kept, measured alike for comparison
        if args.dynamic:
            alternatives["dynamic"] = Model(dynamic_variant(float_path, workdir), qm.info)
        if args.all_quantised:
            alternatives["all_quantised"] = Model(all_quantised_variant(name, float_path, size),
                                                  qm.info)
        speeds = best_rates([fm, qm, *alternatives.values()], batch, args.repeat)

        def closeness(model) -> tuple[np.ndarray, np.ndarray]:
            return ((unit(float_pixels) * unit(model.embed(pixels))).sum(axis=1),
                    (unit(float_wider) * unit(embed_all(model, wider))).sum(axis=1))

        cos, wc = closeness(qm)
        fl, ql = fm.classify(pixels[:2]).argmax(1), qm.classify(pixels[:2]).argmax(1)
        row = {
            "input_size": size,
            "build_s": {"float": float_build, "int8": int8_build} if args.cache is None
            else None,
            "img_s": {"float": speeds[0], "int8": speeds[1]},
            "speedup": speeds[1] / speeds[0],
            "cosine": {"min": float(cos.min()), "mean": float(cos.mean()),
                       "per_photo": dict(zip(photo_names, map(float, cos)))},
            "cosine_wider_set": {"images": len(wider), "min": float(wc.min()),
                                 "mean": float(wc.mean()),
                                 "p10": float(np.percentile(wc, 10))},
            "top1": {photo: {"float": int(f), "int8": int(q), "agree": bool(f == q),
                             "int8_right": int(q) in expected}
                     for photo, f, q, expected in zip(["chelsea", "coffee"], fl, ql,
                                                      [CATS, COFFEE])},
        }
        for (label, model), speed in zip(alternatives.items(), speeds[2:]):
            c, w = closeness(model)
            row[label] = {"img_s": speed, "cosine_min": float(c.min()),
                          "cosine_mean": float(c.mean()), "cosine_wider_set_min": float(w.min()),
                          "cosine_wider_set_mean": float(w.mean())}
        if not args.no_retrieval:
            if size not in emoji_cache:
                emoji_cache[size] = twemoji(size)
            emoji, labels = emoji_cache[size]
            row["twemoji"] = retrieval(embed_all(fm, emoji), embed_all(qm, emoji), labels)
        results["models"][name] = row
        print(f"{name} done", file=sys.stderr, flush=True)

    shutil.rmtree(workdir, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "int8.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict) -> None:
    print(f"{results['machine']}; onnxruntime "
          f"{results['onnxruntime']}, {results['threads']} threads, batch {results['batch']}; "
          f"int8 weights {results['int8_weights']}")
    header = ["model", "float img/s", "int8 img/s", "speed-up", "cos min", "cos mean",
              "80 imgs: min/mean",
              "cat f/i8", "coffee f/i8", "P@10 f/i8", "shared@10", "build f/i8 s"]
    rows = []
    for name, r in results["models"].items():
        t, tw, b = r["top1"], r.get("twemoji"), r["build_s"]
        rows.append([
            name, f"{r['img_s']['float']:.0f}", f"{r['img_s']['int8']:.0f}",
            f"{r['speedup']:.2f}x", f"{r['cosine']['min']:.4f}", f"{r['cosine']['mean']:.4f}",
            f"{r['cosine_wider_set']['min']:.4f}/{r['cosine_wider_set']['mean']:.4f}",
            *(f"{t[p]['float']}/{t[p]['int8']}{'' if t[p]['agree'] else ' (differ)'}"
              for p in ("chelsea", "coffee")),
            f"{tw['precision_at_10_float']:.3f}/{tw['precision_at_10_int8']:.3f}" if tw else "-",
            f"{tw['shared_neighbours_at_10']:.2f}" if tw else "-",
            f"{b['float']:.1f}/{b['int8']:.1f}" if b else "cached",
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for line in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))
    for label, title in [("dynamic", "dynamic quantisation"),
                         ("all_quantised", "static, stem and first block quantised too")]:
        rows = {n: r[label] for n, r in results["models"].items() if label in r}
        if rows:
            print(f"\n{title} (not kept):")
        for n, d in rows.items():
            kept = results["models"][n]["img_s"]["int8"]
            print(f"  {n}: {d['img_s']:.0f} img/s (int8 as kept: {kept:.0f}), "
                  f"cosine min {d['cosine_min']:.4f}, mean {d['cosine_mean']:.4f}; 80 images: "
                  f"min {d['cosine_wider_set_min']:.4f}, mean {d['cosine_wider_set_mean']:.4f}")


if __name__ == "__main__":
    main()
