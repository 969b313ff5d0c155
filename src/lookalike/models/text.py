"""A CLIP-style text tower in onnxruntime: texts -> vectors in its image model's space.

The ONNX model takes one row of token ids per text (batch x context length, int64 or int32;
an ``attention_mask`` input, as Hugging Face exports have, is given too) and gives one vector
per text; :mod:`.tokenizer` makes the rows. A tower is checked once, when it is added, on
sample texts: it must run, alone and in a batch, and give finite vectors as long as its image
model's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from .runtime import ModelSettingError, make_session
from .tokenizer import ClipTokenizer, load_tokenizer

#: CLIP's and OpenCLIP's context: 77 tokens, start and end included.
DEFAULT_CONTEXT_LENGTH = 77
SAMPLE_TEXTS = ("a photo of a cat", "a cell in mitosis, stained in green")
_INT_TYPES = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32}


class TextModel:
    """A loaded text tower: ``embed(["a red cell"])`` -> float32 (1, dim)."""

    def __init__(self, session, tokenizer: ClipTokenizer, context_length: int, output: str,
                 ids_input: str, ids_type: type, mask_input: str | None, one_at_a_time: bool,
                 name: str = ""):
        self.session = session
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.name = name
        self._output = output
        self._ids, self._ids_type, self._mask = ids_input, ids_type, mask_input
        self._one_at_a_time = one_at_a_time

    def _feeds(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {self._ids: rows.astype(self._ids_type)}
        if self._mask is not None:  # every position up to the end token
            last = np.argmax(rows == self.tokenizer.end, axis=1)
            mask = np.arange(rows.shape[1])[None, :] <= last[:, None]
            feeds[self._mask] = mask.astype(self._ids_type)
        return feeds

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 vector per text, (N, dim)."""
        rows = self.tokenizer.encode(list(texts), self.context_length)
        if len(rows) == 0:
            return np.zeros((0, 0), np.float32)
        if self._one_at_a_time:
            parts = [self.session.run([self._output], self._feeds(rows[i:i + 1]))[0]
                     for i in range(len(rows))]
            out = np.concatenate(parts)
        else:
            out = self.session.run([self._output], self._feeds(rows))[0]
        return np.asarray(out, np.float32).reshape(len(rows), -1)


def load_text_onnx(path: str | os.PathLike, tokenizer: str | os.PathLike,
                   context_length: int = DEFAULT_CONTEXT_LENGTH, output: str | None = None,
                   threads: int | None = None, name: str = "") -> TextModel:
    """Your ONNX text tower with its tokenizer file (see :func:`.tokenizer.load_tokenizer`).
    Bad settings raise :class:`ModelSettingError` naming the one at fault."""
    source = Path(path)
    if not source.is_file():
        raise ModelSettingError(f"path: no ONNX file at {source}")
    if isinstance(context_length, bool) or not isinstance(context_length, int) \
            or context_length < 3:
        raise ModelSettingError(f"context_length must be a whole number of at least 3 (CLIP's "
                                f"is {DEFAULT_CONTEXT_LENGTH}), not {context_length!r}")
    words = load_tokenizer(tokenizer)
    try:
        graph = onnx.load(os.fspath(source), load_external_data=False).graph
    except Exception as exc:
        raise ModelSettingError(f"path: {source} is not a readable ONNX model ({exc})") from None
    ids, ids_type, mask, batch_one = _token_inputs(graph, source, context_length)
    names = [o.name for o in graph.output]
    if output is not None and output not in names:
        raise ModelSettingError(f"output: the model has no output {output!r}; it has {names}")
    session = make_session(source, threads)
    return TextModel(session, words, context_length, output or names[0], ids, ids_type, mask,
                     batch_one, name=name or source.stem)


def _token_inputs(graph: onnx.GraphProto, source: Path, context_length: int
                  ) -> tuple[str, type, str | None, bool]:
    """(the token ids input, its integer type, the attention mask input or None, whether the
    batch is fixed at 1), checked against ``context_length``."""
    initialisers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    masks = [i for i in inputs if "mask" in i.name.lower()]
    others = [i for i in inputs if i not in masks]
    if len(others) != 1 or len(masks) > 1:
        raise ModelSettingError(f"{source}: not a text tower: it must take one input of token "
                                f"ids (and at most an attention mask); it takes "
                                f"{[i.name for i in inputs]}")
    tokens = others[0]
    elem = tokens.type.tensor_type.elem_type
    if elem not in _INT_TYPES:
        raise ModelSettingError(f"{source}: not a text tower: its input {tokens.name!r} is "
                                "not integer token ids (an image model? add it with "
                                "`lookalike models add`)")
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in tokens.type.tensor_type.shape.dim]
    if dims and len(dims) != 2:
        raise ModelSettingError(f"{source}: not a text tower: its input has {len(dims)} "
                                "dimensions, expected 2 (texts x tokens)")
    if len(dims) == 2 and dims[1] is not None and dims[1] != context_length:
        raise ModelSettingError(f"context_length: the model takes {dims[1]} tokens per text; "
                                f"give --context-length {dims[1]}")
    return (tokens.name, _INT_TYPES[elem], masks[0].name if masks else None,
            bool(dims) and dims[0] == 1)


def check_text_runs(model: TextModel, source: Path, dim: int, image_model: str) -> None:
    """Refuse a tower that fails on sample texts, gives non-finite vectors, vectors of another
    length than its image model's ``dim``, or other vectors in a batch than alone."""
    try:
        alone = [model.embed([t]) for t in SAMPLE_TEXTS]
        together = model.embed(list(SAMPLE_TEXTS))
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else type(exc).__name__
        raise ModelSettingError(f"{source}: the text model fails on a sample text ({first}); "
                                "check --context-length, --tokenizer and --output") from None
    if together.shape != (len(SAMPLE_TEXTS), alone[0].shape[1]):
        raise ModelSettingError(f"{source}: the text model's output is not one vector per text "
                                f"(shape {together.shape} for two); choose another --output")
    if together.shape[1] != dim:
        raise ModelSettingError(f"{source}: the text model gives {together.shape[1]}-d vectors "
                                f"and {image_model}'s are {dim}-d: it does not pair with it; "
                                "give the text tower exported with that image model")
    if not np.isfinite(together).all():
        raise ModelSettingError(f"{source}: the text model gives NaN or infinite values on a "
                                "sample text; export it again")
    if not np.allclose(together, np.concatenate(alone), rtol=1e-3, atol=1e-4):
        raise ModelSettingError(f"{source}: the text model gives other vectors for a text in a "
                                "batch than alone; export it in inference (eval) mode")
