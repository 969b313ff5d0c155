"""Can an image's ImageNet tags be computed from its stored vector, without its pixels?

The classifiers are linear on pooled features, but the default model stores GeM-pooled,
root-normalised features, (mean x^3)^(1/6), while its head reads the average. This compares,
on the photos bundled with scikit-image (each whole, mirrored, its four quarters and its
centre), the head applied to the stored vector f (as it is, and squared: GeM with p=3) with
``classify`` on the pixels.

    PYTHONPATH=src python tools/tags_from_vectors.py

Measured on 2026-11-30 (onnxruntime 1.32.0, 182 images):

    W.f + b   (stored vector as is)  top-1 agreement 0.626, top-5 overlap 0.702
    W.f^2 + b (GeM, p=3)             top-1 agreement 0.747, top-5 overlap 0.805

A quarter of the images would get another first tag than the classifier gives them, so tags
are computed from the pixels while embedding (one run gives both: ``embed_and_classify``).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import skimage.data
import skimage.io
from onnx import numpy_helper
from PIL import Image

from lookalike import models

MODEL = "efficientnet-lite0-gem"


def squash(a: np.ndarray, size: int) -> np.ndarray:
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = (255 * (a - a.min()) / (np.ptp(a) + 1e-9)).astype(np.uint8)
    return np.asarray(Image.fromarray(a).resize((size, size), Image.BILINEAR))


def photos(size: int) -> np.ndarray:
    folder = os.path.dirname(skimage.data.__file__)
    out = []
    for path in sorted(glob.glob(folder + "/*.png") + glob.glob(folder + "/*.jpg")):
        a = skimage.io.imread(path)
        if a.ndim < 2 or min(a.shape[:2]) < 64:
            continue
        h, w = a.shape[:2]
        views = [a, a[:, ::-1], a[:h // 2, :w // 2], a[h // 2:, w // 2:], a[:h // 2, w // 2:],
                 a[h // 2:, :w // 2], a[h // 6:5 * h // 6, w // 6:5 * w // 6]]
        out += [squash(v, size) for v in views]
    return np.stack(out)


def main() -> None:
    model = models.load_model(MODEL)
    graph = onnx.load(str(models.model_path(MODEL)))
    weights = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    head = next(n for n in graph.graph.node if n.op_type == "Gemm")
    w, b = weights[head.input[1]], weights[head.input[2]]
    batch = photos(model.info.input_size)
    features, logits = model.embed_and_classify(batch)
    assert logits is not None
    for name, guess in [("W.f + b   (stored vector as is)", features @ w.T + b),
                        ("W.f^2 + b (GeM, p=3)", (features ** 2) @ w.T + b)]:
        top1 = np.mean(guess.argmax(1) == logits.argmax(1))
        top5 = np.mean([len(set(np.argsort(-g)[:5]) & set(np.argsort(-t)[:5])) / 5
                        for g, t in zip(guess, logits)])
        print(f"{name}  top-1 agreement {top1:.3f}, top-5 overlap {top5:.3f}")
    print(f"({len(batch)} images)")


if __name__ == "__main__":
    main()
