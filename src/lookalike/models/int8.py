"""Int8 versions of the built-in models: onnxruntime's static quantisation of the float graph,
calibrated on pictures drawn here (and Twemoji PNGs for SqueezeNet).

Measured on a 2-core AVX-512 VNNI CPU (benchmarks/int8.py): static QDQ quantisation, int8
per-channel weights and uint8 activations, runs 1.4-2.3 times as fast as the float graph;
dynamic quantisation (ConvInteger) ran 2-6 times *slower* than float, and drifted further
except on SqueezeNet, so it is not offered. The uint8-to-float preprocessing stays in float,
so an int8 model takes the same input and gives the same outputs (``features``, ``logits``)
as its float model.

Two choices per model, in :data:`RECIPES`, both measured on 80 photos and crops (the images
of benchmarks/int8.py):

* The stem and the first block stay float. Quantised, they moved the features most: with
  them in float the worst cosine to float rose from 0.931 to 0.985 (Lite0), 0.877 to 0.986
  (Lite1) and 0.894 to 0.957 (MobileNetV2), and the int8 model ran 2-18% faster
  (benchmarks/int8.py --all-quantised).
* What the activation ranges are calibrated on. Procedural pictures drawn here with a fixed
  seed: a "dead leaves" pattern of overlapping shapes and colour 1/f noise, both with the edge
  and spectrum statistics of photos. SqueezeNet also needs Twemoji PNGs, half of its set:
  without them its features drift two to three times as far (cosine on the cat and coffee
  photos 0.997-0.998 against 0.999) and the coffee's top class moves from espresso to mug or
  candle. MobileNetV2 needs them *not*: with a quarter of emoji its mean cosine fell from
  0.985-0.991 to 0.981-0.985. Both held over several calibration seeds. EfficientNet-Lite
  does not care.

Every calibration image passes through :func:`lookalike.ingest.decode.decode` exactly as the indexer
passes a file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFilter

from ..datasets import twemoji_entries
from ..ingest.decode import decode
from . import cpu

# Part of every int8 model's cache name: bump it when a change here alters the graphs built.
QUANTISER_VERSION = "1"

CALIBRATION_IMAGES = 64
CALIBRATION_SEED = 20240611
_BATCH = 8
# Procedural pictures are drawn at a photo's 4:3 shape, then squashed like any photo.
_DRAW_SIZE = (400, 300)


@dataclass(frozen=True)
class Recipe:
    """How one model is quantised."""

    float_convolutions: int = 3   # leading convolutions kept float: the stem and first block
    emoji: int = 0                # Twemoji PNGs among the calibration images


RECIPES = {"squeezenet": Recipe(float_convolutions=4, emoji=32)}  # conv1 and fire2


def recipe_for(name: str) -> Recipe:
    """The recipe for the float model called ``name``."""
    return RECIPES.get(name.removesuffix("-gem"), Recipe())


@functools.lru_cache(maxsize=1)
def weights_need_reduced_range() -> bool:
    """True on an x86 CPU without VNNI, where onnxruntime multiplies uint8 by int8 with an
    instruction (VPMADDUBSW) whose 16-bit pair sums can saturate; 7-bit weights cannot.

    With VNNI (and on ARM) nothing saturates and full 8-bit weights are kept: 7-bit ones
    triple the drift (EfficientNet-Lite0, 80 photos and crops: mean cosine to float 0.985
    against 0.995). Outside Linux an x86 CPU is assumed to lack VNNI. The answer is part of
    the cache file name, so a cache folder shared between machines stays right.
    """
    if not cpu.is_x86():
        return False
    return not cpu.has_vnni(cpu.cpu_flags())


def cache_version(float_version: str) -> str:
    """The int8 model's version for its cache file name: the float graph's version, this
    module's, the onnxruntime that quantised it, and whether weights are 7-bit."""
    import onnxruntime

    bits = "w7" if weights_need_reduced_range() else "w8"
    return f"{float_version}.q{QUANTISER_VERSION}-ort{onnxruntime.__version__}-{bits}"


# -- calibration images -----------------------------------------------------------------------

def _dead_leaves(rng: np.random.Generator) -> Image.Image:
    """Opaque ellipses and rectangles of random colours, a few large and many small, painted
    over each other, sometimes blurred and with sensor-like noise."""
    w, h = _DRAW_SIZE
    im = Image.new("RGB", _DRAW_SIZE, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(300):
        radius = 0.5 * w * rng.uniform(0.02, 1.0) ** 2.5
        x, y = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        box = [x - radius, y - radius * rng.uniform(0.4, 1.0), x + radius, y + radius]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    pixels = np.asarray(im, np.float32) + rng.normal(0, rng.uniform(0, 8), (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _colour_noise(rng: np.random.Generator) -> Image.Image:
    """1/f^a noise (a near 1, as in photos), its three channels mixed so colours correlate."""
    w, h = _DRAW_SIZE
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))
        channels.append(np.real(np.fft.ifft2(spectrum / radius ** rng.uniform(0.9, 1.3))))
    pixels = np.stack(channels, -1) @ (np.eye(3) + 0.4 * rng.normal(size=(3, 3)))
    pixels = (pixels - pixels.mean()) / (pixels.std() + 1e-9)
    pixels = pixels * rng.uniform(30, 70) + rng.uniform(60, 190, 3)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _png(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def calibration_images(size: int, count: int = CALIBRATION_IMAGES, emoji: int = 0,
                       seed: int = CALIBRATION_SEED) -> np.ndarray:
    """uint8 (count, size, size, 3): ``emoji`` Twemoji PNGs, then dead leaves and colour noise
    in turn, in a shuffled order, each decoded and squashed to ``size`` by the indexer's own
    code. Fixed by ``seed``, so a rebuild gives the same model."""
    rng = np.random.default_rng(seed)
    pngs = sorted({png for *_, png in twemoji_entries()}) if emoji else []
    sources = [pngs[i].read_bytes() for i in sorted(rng.choice(len(pngs), emoji, replace=False))]
    sources += [_png(_dead_leaves(rng) if i % 2 == 0 else _colour_noise(rng))
                for i in range(count - emoji)]
    # Shuffled, so that every calibration batch holds both kinds.
    return np.stack([decode(sources[i], size).pixels for i in rng.permutation(len(sources))])


# -- quantisation -----------------------------------------------------------------------------

def float_head(model: onnx.ModelProto, convolutions: int) -> list[str]:
    """Names of the nodes before the graph's convolution number ``convolutions`` + 1: the
    uint8-to-float preprocessing, then that many convolutions with what lies between them."""
    convs = [i for i, node in enumerate(model.graph.node) if node.op_type == "Conv"]
    end = convs[convolutions] if convolutions < len(convs) else len(model.graph.node)
    return [node.name for node in model.graph.node[:end]]


def quantise(float_model: Path, input_size: int, recipe: Recipe = Recipe()) -> onnx.ModelProto:
    """The int8 (QDQ, per-channel) version of the float ONNX model at ``float_model``.

    Each activation's range is the mean over the calibration batches of each batch's minimum
    and maximum. onnxruntime's default, the extremes over all batches, put MobileNetV2's
    features further from float (mean cosine on 80 photos and crops 0.976 against 0.985) and
    moved the others' by less than 0.0005; its "entropy" ranges came out as the extremes, in
    three times the time.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = calibration_images(input_size, emoji=recipe.emoji)

    class Batches(CalibrationDataReader):
        def __init__(self, input_name: str):
            self._batches = iter([{input_name: images[i:i + _BATCH]}
                                  for i in range(0, len(images), _BATCH)])

        def get_next(self):
            return next(self._batches, None)

    # The quantiser prints its progress; lookalike's stdout may be JSON for another program.
    with tempfile.TemporaryDirectory(prefix="lookalike-int8-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):
        prepared, quantised = os.path.join(tmp, "prepared.onnx"), os.path.join(tmp, "int8.onnx")
        # Shape inference and onnxruntime's basic graph clean-up, as the quantiser asks;
        # symbolic shape inference needs sympy and our shapes are all static anyway.
        quant_pre_process(os.fspath(float_model), prepared, skip_symbolic_shape=True)
        model = onnx.load(prepared)
        quantize_static(
            prepared, quantised, Batches(model.graph.input[0].name),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            reduce_range=weights_need_reduced_range(),
            nodes_to_exclude=float_head(model, recipe.float_convolutions),
            calibrate_method=CalibrationMethod.MinMax,
            # Not CalibMaxIntermediateOutputs: in onnxruntime 1.32 it drops the batches it
            # should merge. MinMax keeps only each tensor's per-batch extremes anyway.
            extra_options={"CalibMovingAverage": True})
        return onnx.load(quantised)
