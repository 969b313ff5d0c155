"""Text towers paired with the user's own image models: added (checked on sample texts
against the image model), found for a search, loaded, removed. They are kept in the same
registry as the image models (own.py)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LookalikeError
from . import own
from .runtime import ModelSettingError
from .text import DEFAULT_CONTEXT_LENGTH, TextModel, check_text_runs, load_text_onnx


class NoTextModelError(LookalikeError):
    """A text search with a model that has no (usable) text tower."""


def _add_text_hint(name: str) -> str:
    return (f"`lookalike models add-text TEXT.onnx --pairs-with {name} --tokenizer "
            "tokenizer.json`")


def register_text(path: str | os.PathLike, pairs_with: str, tokenizer: str | os.PathLike,
                  context_length: int = DEFAULT_CONTEXT_LENGTH, output: str | None = None,
                  *, reserved: list[str] | tuple[str, ...] = ()) -> own.OwnTextModel:
    """Check the text tower against the image model ``pairs_with`` and keep it; adding one
    again for the same image model replaces it."""
    models, texts = own.read_registry()
    base = str(pairs_with).strip().partition("@")[0]
    if base.lower() in {r.lower() for r in reserved}:
        raise ModelSettingError(f"pairs_with: {base} is a built-in model, which has no text "
                                "tower; pair the text tower with the image tower exported with "
                                "it (`lookalike models add` first)")
    image = models.get(base.lower())
    if image is None:
        listed = ", ".join(m.name for m in models.values()) or "none"
        raise ModelSettingError(f"pairs_with: no image model of yours is called {base!r} (yours: "
                                f"{listed}); add the image tower first with `lookalike models "
                                "add`")
    own.verify(image, always_hash=True)
    source = Path(path).expanduser().resolve()
    words = Path(tokenizer).expanduser().resolve()
    sha256 = own.file_sha256(source) if source.is_file() else ""
    model = load_text_onnx(source, words, context_length, output, threads=1)
    check_text_runs(model, source, image.dim, image.name)
    stat = source.stat()
    entry = own.OwnTextModel(pairs_with=image.name, image_sha256=image.sha256, path=str(source),
                             sha256=sha256, tokenizer=str(words),
                             tokenizer_sha256=own.file_sha256(words),
                             context_length=context_length, output=output,
                             size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    texts[image.name.lower()] = entry
    own.write_registry(models, texts)
    return entry


def unregister_text(name: str) -> own.OwnTextModel:
    """Forget the text tower of your image model ``name`` (the image model stays)."""
    models, texts = own.read_registry()
    key = str(name).strip().partition("@")[0].lower()
    if key not in texts:
        raise LookalikeError(f"no model of yours called {name!r} has a text tower (with one: "
                             f"{', '.join(t.pairs_with for t in texts.values()) or 'none'})")
    removed = texts.pop(key)
    own.write_registry(models, texts)
    return removed


def find_text(model: str) -> own.OwnTextModel:
    """The text tower that searches the vectors of ``model`` (NAME or NAME@HASH8 of an image
    model of yours); NoTextModelError, in one line saying what to do, when there is none."""
    base, _, tag = str(model).strip().partition("@")
    models, texts = own.read_registry()
    image = models.get(base.lower())
    if image is None:
        raise NoTextModelError(f"model {model} has no text tower: text search needs your own "
                               "CLIP-style pair of image and text models (`lookalike models add` "
                               "and `lookalike models add-text`)")
    text = texts.get(base.lower())
    if text is None:
        raise NoTextModelError(f"model {model} has no text tower; add one with "
                               f"{_add_text_hint(image.name)}")
    wanted = tag.lower() or image.sha256[:8]
    if wanted != text.image_sha256[:8]:
        raise NoTextModelError(f"model {model}: its text tower was added for another file of "
                               f"{image.name} ({text.key}); add it again with "
                               f"{_add_text_hint(image.name)}")
    return text


def load_text(entry: own.OwnTextModel, threads: int | None = None) -> TextModel:
    """The text tower ready to embed texts, once its file and tokenizer are checked to be
    those added."""
    for what, path, sha in (("text model", entry.path, entry.sha256),
                            ("tokenizer", entry.tokenizer, entry.tokenizer_sha256)):
        try:
            same = own.file_sha256(path) == sha
        except OSError:
            raise own.ModelChangedError(
                f"model {entry.pairs_with}: its {what} file {path} is gone; put it back, or "
                f"`lookalike models remove-text {entry.pairs_with}`") from None
        if not same:
            raise own.ModelChangedError(
                f"model {entry.pairs_with}: its {what} {path} has changed since it was added; "
                f"add the text tower again with {_add_text_hint(entry.pairs_with)}")
    return load_text_onnx(entry.path, entry.tokenizer, entry.context_length, entry.output,
                          threads, name=entry.key)
