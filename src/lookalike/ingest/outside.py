"""Images from outside the collection (a reference file, an uploaded image, a text) embedded
as the collection's own were: read with its reading options, by the network that made the
stored vectors, each network loaded once and kept."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import BadReferenceError, LookalikeError
from ..locators import is_store_url, is_url
from . import decode as images, omezarr
from .channels import reading_model
from .folders import display_path
from .pipeline import embed_files
from .reading import ReadingOptions, base_model


class OutsideEmbedder:
    """Embeds images and texts into the space of the vectors stored under a key (a model's
    name, or MODEL~HASH8 for images read with other options: `ReadingOptions.vector_key`).
    `reading` gives the collection's reading options as they are now."""

    def __init__(self, reading: Callable[[], ReadingOptions]):
        self._reading = reading
        self._loaded: dict[str, Any] = {}  # networks loaded, by key ("text:NAME" for texts)

    def embed_file(self, ref: str | os.PathLike, model: str) -> np.ndarray:
        """The vector of an image file outside the collection."""
        shown = display_path(os.fspath(ref))
        if isinstance(ref, str) and (is_url(ref) or is_store_url(ref)):
            raise BadReferenceError(f"{shown}: not an image of the collection; a reference "
                                    "URL must be indexed first (or give a local file)")
        if not os.path.exists(ref):
            raise BadReferenceError(f"{shown}: no such file, and not in the collection")
        if os.path.isdir(ref) and not omezarr.is_zarr_folder(ref):
            raise BadReferenceError(f"{shown}: is a folder; give image files (or OME-Zarr "
                                    "folders) as references")
        try:
            return embed_files([ref], base_model(model), embedder=self.embedder(model),
                               reading=self.reading_of(model))[0]
        except images.ImageSkipped as exc:
            raise BadReferenceError(f"{shown}: {exc.reason}") from None

    def embed_bytes(self, data: bytes, model: str, shown: str) -> np.ndarray:
        """The vector of an encoded image (the bytes of an image file)."""
        from ..models import get_model_info

        embedder = self.embedder(model)  # first: an imported model cannot embed
        try:
            pixels = images.decode(data, get_model_info(base_model(model)).input_size,
                                   reading=self.reading_of(model)).for_model
        except images.ImageSkipped as exc:
            raise BadReferenceError(f"{shown}: {exc.reason}") from None
        return embedder.embed(pixels[None])[0]

    def embed_texts(self, texts: list[str], model: str) -> np.ndarray:
        """The vectors of `texts` by the text tower paired with `model` (the network itself:
        reading options change the pixels it saw, not the space its vectors are in)."""
        from ..models import load_text_model

        if self.per_channel(model):
            raise LookalikeError(f"{model}: vectors of each channel apart (--per-channel) are "
                                 "not in the text tower's space; search texts in a collection "
                                 "indexed without --per-channel")
        key = f"text:{base_model(model)}"
        if key not in self._loaded:
            self._loaded[key] = load_text_model(base_model(model))
        return self._loaded[key].embed(texts)

    def per_channel(self, key: str) -> bool:
        """Whether the vectors under `key` join each channel's (the collection's options)."""
        reading = self._reading()
        return reading.per_channel and reading.vector_key(base_model(key)) == key

    def reading_of(self, key: str) -> ReadingOptions:
        """How the images whose vectors are stored under `key` were read."""
        reading = self._reading()
        if reading.vector_key(base_model(key)) == key:
            return reading
        if base_model(key) == key:
            return ReadingOptions()
        raise BadReferenceError(
            f"{key}: vectors of images read with other options than the collection's "
            f"({reading.describe()}), so other images cannot be embedded like them; give images "
            "of the collection as references, or index again")

    def embedder(self, model: str):
        """The network that embeds other images as the vectors under `model` were."""
        from ..models import UnknownModelError, load_model

        if model not in self._loaded:
            try:
                self._loaded[model] = reading_model(
                    load_model, base_model(model), self.reading_of(model))(model)
            except UnknownModelError:
                from ..models import own

                found = own.find(model)
                if found is not None and found[1] and found[0].key != model:
                    raise BadReferenceError(
                        f"{model}: vectors of an earlier file of your model {found[0].name!r} "
                        "(it has changed since), which can no longer embed other images; give "
                        f"images of the collection as references, or use --model "
                        f"{found[0].name}") from None
                raise BadReferenceError(
                    f"{model}: vectors imported from elsewhere, so lookalike cannot embed "
                    "other images with it; give images of the collection (or vectors) as "
                    "references") from None
        return self._loaded[model]
