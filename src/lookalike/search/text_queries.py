"""Text queries: what a text (from a CLIP-style text tower) searches with, alone or with
reference images.

A text alone is one reference, like an image (several texts: an image's distance is to the
nearest of them). With reference images the text steers each image: the query of image i is
unit(image i) + unit(mean of the unit text vectors), the sum with which CLIP-style models
compose an image with a text (each image searched so; an image's distance is to the nearest
steered query). Text and image vectors of a CLIP pair lie apart (a text is never as close to
an image as a similar image is), so keeping the texts as references of their own beside
images would leave them outranked: hence the sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import LookalikeError

#: The longest text taken: CLIP reads 77 tokens, a few hundred characters at most.
MAX_TEXT_CHARS = 1000


def checked_texts(text: str | Sequence[str]) -> list[str]:
    """`text` as a list of non-blank texts; one clear line for anything else."""
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise LookalikeError("text: give a non-empty text to search with, e.g. "
                             "--text \"a cell in mitosis\"")
    long = [t for t in texts if len(t) > MAX_TEXT_CHARS]
    if long:
        raise LookalikeError(f"text: {len(long[0]):,} characters is too long to search with "
                             f"(at most {MAX_TEXT_CHARS:,}; CLIP reads 77 tokens)")
    return [t.strip() for t in texts]


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def steered(images: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Each image vector steered by the texts: unit(image) + unit(mean of unit texts)."""
    direction = _unit(_unit(np.asarray(texts, np.float64)).mean(axis=0, keepdims=True))
    return (_unit(np.asarray(images, np.float64)) + direction).astype(np.float32)


def text_names(texts: list[str]) -> list[str]:
    """How a text query is named among the references: text "..."."""
    return [f'text "{t}"' for t in texts]
