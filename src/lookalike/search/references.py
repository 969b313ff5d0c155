"""What a search is asked with, as query vectors: references (images of the collection by
path or URL, image files and encoded images embedded on the fly, vectors) and texts, alone or
steering the references. Each comes back as a `Queries`: (vectors, ids of the references that
are images of the collection, names for people)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..catalogue.store import Store
from ..errors import BadReferenceError, LookalikeError
from ..ingest.folders import display_path, resolve
from ..ingest.outside import OutsideEmbedder
from . import text_queries
from .normalise import Normalisation

#: (vectors, ids of those that are images of the collection, names).
Queries = tuple[np.ndarray, np.ndarray, list[str]]


def references(store: Store, outside: OutsideEmbedder, refs: Any, model: str, ids: np.ndarray,
               matrix: np.ndarray, name: str | None = None) -> Queries:
    """The `Queries` of `refs` among `model`'s vectors (`ids`, `matrix`); bytes are named
    `name` (default "uploaded image")."""
    if isinstance(refs, np.ndarray) and refs.dtype.kind in "fiu":
        given = np.atleast_2d(refs)
        check_dim(given, matrix)
        return given, np.zeros(0, np.int64), [f"vector {i}" for i in range(len(given))]
    if isinstance(refs, (str, os.PathLike, bytes, bytearray, memoryview)):
        refs = [refs]
    refs = list(refs)
    if not refs:
        raise LookalikeError("give at least one reference image")
    vectors: list[np.ndarray] = []
    ref_ids: list[int] = []
    names: list[str] = []
    for position, ref in enumerate(refs):
        if isinstance(ref, (bytes, bytearray, memoryview)):
            shown = name or "uploaded image"
            vectors.append(outside.embed_bytes(bytes(ref), model, shown))
            names.append(shown)
        elif not isinstance(ref, (str, os.PathLike)):
            v = np.asarray(ref, dtype=np.float32).ravel()
            check_dim(v[None], matrix)
            vectors.append(v)
            names.append(f"vector {position}")
        else:
            row = _indexed_reference(store, ref, ids)
            if row is not None:
                vectors.append(matrix[np.flatnonzero(ids == row["id"])[0]])
                ref_ids.append(row["id"])
                names.append(row["path"])
            else:
                vectors.append(outside.embed_file(ref, model))
                names.append(display_path(os.path.abspath(ref)))
    return np.stack(vectors), np.asarray(ref_ids, np.int64), names


def queries(store: Store, outside: OutsideEmbedder, refs: Any,
            text: str | Sequence[str] | None, model: str, ids: np.ndarray, matrix: np.ndarray,
            name: str | None) -> Queries:
    """`references` of `refs`, the texts' vectors, or the references steered by the texts
    (search/text_queries.py)."""
    if text is None:
        if refs is None:
            raise LookalikeError("give at least one reference image (or a text)")
        return references(store, outside, refs, model, ids, matrix, name)
    texts = text_queries.checked_texts(text)
    vectors = outside.embed_texts(texts, model)
    check_dim(vectors, matrix)
    shown = text_queries.text_names(texts)
    if refs is None or is_empty(refs):
        return vectors, np.zeros(0, np.int64), shown
    images, ref_ids, names = references(store, outside, refs, model, ids, matrix, name)
    joined = " + ".join(shown)
    return (text_queries.steered(images, vectors), ref_ids, [f"{n} + {joined}" for n in names])


def check_inside(store: Store, queries: Queries, how: Normalisation) -> None:
    """With normalisation, every reference must be an image of the collection: the plate of a
    file outside it, or of a vector, is unknown."""
    vectors, ids, names = queries
    if len(ids) < len(vectors):
        inside = {row["path"] for row in store.rows(ids.tolist())}
        outside = next(n for n in names if n not in inside)
        raise BadReferenceError(f"{outside}: not an image of the collection; with "
                                f"{how.describe()}, references must be images of the "
                                "collection (their plate is known)")


def check_apart(positives: Queries, negatives: Queries) -> None:
    """A reference that is both wanted and unwanted (the same image or the same vector)."""
    for vector, shown in zip(negatives[0], negatives[2]):
        if np.any(np.all(positives[0] == vector, axis=1)):
            raise LookalikeError(f"{shown}: is both a reference and unlike one (--unlike); "
                                 "give each image on one side only")


def check_dim(vectors: np.ndarray, matrix: np.ndarray) -> None:
    if vectors.shape[-1] != matrix.shape[1]:
        raise LookalikeError(f"reference vectors have {vectors.shape[-1]} dimensions; the "
                             f"collection's have {matrix.shape[1]}")


def is_empty(refs: Any) -> bool:
    """Whether a `refs` argument gives no reference at all (an empty list or array)."""
    if isinstance(refs, (str, os.PathLike, bytes, bytearray, memoryview)):
        return False
    return len(refs) == 0 if hasattr(refs, "__len__") else False


def _indexed_reference(store: Store, ref: str | os.PathLike, ids: np.ndarray) -> dict | None:
    """The catalogue row of a reference that is an image of the collection with a vector
    (among `ids`), None for one that is not; BadReferenceError for a skipped one."""
    row = store.find(resolve(ref))
    if row is not None and row["skip_reason"] is not None:
        raise BadReferenceError(f"{display_path(os.fspath(ref))}: was skipped when indexed "
                                f"({row['skip_reason']})")
    return row if row is not None and np.any(ids == row["id"]) else None
