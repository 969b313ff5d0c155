"""Small helpers for writing ONNX graphs by hand: a graph builder, batch-norm folding,
convolution padding rules, and the uint8-to-normalised-float preprocessing every model starts with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Part of every cached model's version: bump it when a change here alters the graphs built.
HELPERS_VERSION = "1"

# Opset 17 / IR 8 load in every onnxruntime from 1.14 on, older than the one we require.
OPSET = 17
IR_VERSION = 8

INPUT_NAME = "images"
FEATURES_NAME = "features"
LOGITS_NAME = "logits"
#: Each cell of the last convolutional map, (N, C, h, w), in the features' own scale: pooling
#: one cell alone would give that cell's vector (what explaining a match compares).
FEATURE_MAP_NAME = "feature_map"

# ImageNet statistics on the 0..1 scale, as torchvision uses them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: output ceil(size / stride), the odd pixel
    going after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> int:
    return (size + pads[0] + pads[1] - kernel) // stride + 1


def fold_batch_norm(weight: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
                    var: np.ndarray, eps: float, bias: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode batch norm into the convolution (OIHW weight) before it."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b = bias.astype(np.float64) if bias is not None else np.zeros_like(scale)
    b = (b - mean.astype(np.float64)) * scale + beta.astype(np.float64)
    return w.astype(np.float32), b.astype(np.float32)


def preprocess_nodes(x: str, out: str, prefix: str, mean: Sequence[float] | np.ndarray,
                     std: Sequence[float] | np.ndarray, layout: str = "NCHW", bgr: bool = False,
                     to: int = TensorProto.FLOAT
                     ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes taking uint8 NHWC RGB pixels ``x`` to ``out`` = (x - mean) / std in ``layout``.

    ``mean`` and ``std`` are per channel (or one value) on the 0..255 scale, in the output's
    channel order (BGR when ``bgr``). The transpose and channel swap run on the uint8 pixels and
    the arithmetic in NCHW, where each channel is one contiguous run: done on NHWC, with its
    innermost axis of 3, onnxruntime's broadcasting was six times slower.
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    nchw = layout == "NCHW"
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
    shape = (-1, 1, 1) if nchw else (-1,)

    def step(op: str, inputs: list[str], suffix: str, **attrs) -> str:
        name = f"{prefix}_{suffix}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def const(values: Sequence[float] | np.ndarray, suffix: str, dtype=np.float32) -> str:
        name = f"{prefix}_{suffix}"
        inits.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    if nchw:
        x = step("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    if bgr:
        x = step("Gather", [x, const([2, 1, 0], "bgr_index", np.int64)], "bgr",
                 axis=1 if nchw else 3)
    x = step("Cast", [x], "float", to=TensorProto.FLOAT)
    x = step("Sub", [x, const(np.reshape(mean, shape), "mean")], "centred")
    x = step("Div", [x, const(np.reshape(std, shape), "std")], "scaled")
    nodes.append(helper.make_node("Cast", [x], [out], name=f"{prefix}_out", to=to)
                 if to != TensorProto.FLOAT else
                 helper.make_node("Identity", [x], [out], name=f"{prefix}_out"))
    return nodes, inits


class GraphBuilder:
    """Collects nodes and initialisers; tensor names are generated unless given."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._counter = 0

    def fresh(self, hint: str) -> str:
        self._counter += 1
        name = f"{hint}_{self._counter}"
        while name in self._names:
            self._counter += 1
            name = f"{hint}_{self._counter}"
        self._names.add(name)
        return name

    def constant(self, array: np.ndarray, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str | None = None,
           **attrs) -> str:
        out = output or self.fresh(op_type.lower())
        self._names.add(out)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out],
                                           name=self.fresh(f"n_{op_type}"), **attrs))
        return out

    def conv(self, x: str, weight: np.ndarray, bias: np.ndarray, *, stride: int = 1,
             pads: tuple[int, int, int, int] = (0, 0, 0, 0), group: int = 1,
             activation: str | None = None, hint: str = "conv") -> str:
        """Conv with explicit pads (top, left, bottom, right) and an optional "relu" or
        "relu6" after it; onnxruntime fuses Conv+Relu/Clip into one kernel."""
        w = self.constant(weight.astype(np.float32), f"{hint}_w")
        b = self.constant(bias.astype(np.float32), f"{hint}_b")
        kh, kw = weight.shape[2:]
        y = self.op("Conv", [x, w, b], kernel_shape=[kh, kw], strides=[stride, stride],
                    pads=list(pads), group=group, dilations=[1, 1])
        if activation == "relu":
            y = self.op("Relu", [y])
        elif activation == "relu6":
            y = self.op("Clip", [y, self.constant(np.float32(0.0), "zero"),
                                 self.constant(np.float32(6.0), "six")])
        elif activation is not None:
            raise ValueError(f"unknown activation {activation!r}")
        return y

    def global_pool_flat(self, x: str, output: str | None = None) -> str:
        """Global average pooling to (N, C)."""
        pooled = self.op("GlobalAveragePool", [x])
        return self.op("Flatten", [pooled], output, axis=1)

    def gem_root_pool_flat(self, x: str, output: str | None = None, p: float = 3.0) -> str:
        """Generalised-mean pooling of a non-negative map, then the square root of each
        feature: (mean of x^p)^(1/(2p)), to (N, C). Large activations weigh more than in an
        average, and the root evens out the features' scales (benchmarks/quality.py)."""
        cubed = self.op("Pow", [x, self.constant(np.float32(p), "gem_p")])
        pooled = self.op("GlobalAveragePool", [cubed])
        rooted = self.op("Pow", [pooled, self.constant(np.float32(1.0 / (2.0 * p)), "gem_root")])
        return self.op("Flatten", [rooted], output, axis=1)

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray,
               output: str | None = None) -> str:
        """x @ weight.T + bias with a torch-style (out, in) weight."""
        return self.op("Gemm", [x, self.constant(weight.astype(np.float32), "fc_w"),
                                self.constant(bias.astype(np.float32), "fc_b")],
                       output, transB=1)

    def preprocess(self, x: str, mean: Sequence[float], std: Sequence[float]) -> str:
        """uint8 NHWC RGB pixels -> float NCHW (x - mean) / std, per channel, 0..255 scale."""
        out = self.fresh("normalised")
        nodes, inits = preprocess_nodes(x, out, self.fresh("pre"), mean, std)
        self.nodes.extend(nodes)
        self.initializers.extend(inits)
        return out

    def build(self, input_size: int, outputs: dict[str, int], doc: str = "",
              maps: dict[str, tuple[int, int, int]] | None = None) -> onnx.ModelProto:
        """The model with the standard input (N, S, S, 3) uint8, float (N, dim) outputs and
        float (N, C, h, w) ``maps``."""
        inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8,
                                            ["N", input_size, input_size, 3])
        outs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", dim])
                for name, dim in outputs.items()]
        outs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *shape])
                 for name, shape in (maps or {}).items()]
        graph = helper.make_graph(self.nodes, self.name, [inp], outs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="lookalike", doc_string=doc)
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model
