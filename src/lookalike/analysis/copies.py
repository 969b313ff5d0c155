"""PLACEHOLDER of engineer X (issue 13), replaced at merge by engineer Y's strict copy check.

Same signatures as the real module: `same_pixels(a, b)` and `copy_check(a, b) -> CopyVerdict`,
pure functions of two images' bytes. This stand-in compares a DCT perceptual hash (and its
mirror) so that duplicates.py can be built and tested before the real check lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from ..ingest.decode import decode

#: Hash bits that may differ between an image and its copy (of 63).
MAX_BITS = 10


@dataclass(frozen=True)
class CopyVerdict:
    is_copy: bool
    score: float
    reason: str


def same_pixels(a: bytes, b: bytes) -> bool:
    """Whether the two images decode to the same upright 8-bit RGB pixels."""
    pa, pb = decode(a).pixels, decode(b).pixels
    return pa.shape == pb.shape and bool(np.array_equal(pa, pb))


def copy_check(a: bytes, b: bytes) -> CopyVerdict:
    ha, hb = _phash(a), _phash(b)
    bits = min(int(np.count_nonzero(ha != hb)), int(np.count_nonzero(_phash(a, True) != hb)))
    return CopyVerdict(bits <= MAX_BITS, 1 - bits / 63, f"{bits} of 63 hash bits differ")


@lru_cache(maxsize=1)
def _dct_matrix(n: int = 32) -> np.ndarray:
    k = np.arange(n)[:, None]
    return np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))


def _phash(data: bytes, mirrored: bool = False) -> np.ndarray:
    grey = Image.fromarray(decode(data).pixels).convert("L").resize((32, 32), Image.Resampling.BOX)
    values = np.asarray(grey, np.float64)
    if mirrored:
        values = values[:, ::-1]
    d = _dct_matrix()
    low = (d @ values @ d.T)[:8, :8].ravel()[1:]
    return low > np.median(low)
