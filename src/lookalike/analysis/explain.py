"""Why two images look alike: heat maps of where each one matches the other, from the last
convolutional feature map of the network that embedded them (one run of the model, no
gradients), and the :class:`Explanation` that carries them.

The heat of image A at cell i is how much A's local feature there agrees with B's pooled
vector (and the other way round); ``benchmarks/explain.py`` compares this with a best
cell-to-cell match and with a slow occlusion map (README, "Why do these two look alike?").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import LookalikeError
from ..ingest.decode import DEFAULT_READING, decode
from ..ingest.reading import ReadingOptions
from ..search.metrics import DEFAULT_METRIC, distances

#: How a cell's heat is measured: "pooled" (the cosine of the cell's feature with the other
#: image's pooled vector), "contribution" (the cell's part in the pooled cosine similarity:
#: its feature projected on the other image's unit vector) or "cells" (the cosine with the
#: best matching cell of the other image's map). "pooled" agreed best with occlusion
#: (benchmarks/explain.py, default model, 15 pairs: Spearman 0.41, against 0.39 and 0.28).
HEAT_METHODS = ("pooled", "contribution", "cells")
DEFAULT_HEAT_METHOD = "pooled"


class CannotExplain(LookalikeError):
    """The model has no feature map to explain a match with."""


@dataclass(frozen=True)
class ExplainedImage:
    """One image of an explained pair: how it is named, its id in the collection (None for a
    file outside it), its own upright size, the pixels the network saw (squashed to the
    model's input size) and how they were read (the collection's reading options)."""

    name: str
    id: int | None
    width: int
    height: int
    pixels: np.ndarray = field(repr=False)
    data: bytes = field(repr=False)
    reading: ReadingOptions = field(default=DEFAULT_READING, repr=False)

    def picture(self, max_side: int = 512) -> np.ndarray:
        """The image, uint8 RGB, upright, its aspect kept, its longer side ``max_side`` at
        most (a decode of its bytes, read as the network saw it)."""
        scale = min(1.0, max_side / max(self.width, self.height))
        w, h = max(1, round(self.width * scale)), max(1, round(self.height * scale))
        square = decode(self.data, max(w, h), reading=self.reading).pixels
        return np.asarray(Image.fromarray(square).resize((w, h), Image.Resampling.BILINEAR))


@dataclass(frozen=True)
class Explanation:
    """Why two images look alike (`Collection.explain`).

    ``heat[0]`` lies on the first image: where it matches the second; ``heat[1]`` the other
    way round. Each is float32 in [0, 1] on the model's feature grid (rows top to bottom),
    0 at its weakest cell and 1 at its strongest (all zeros when no cell stands out).
    ``distance`` is the pair's ``metric`` distance (the collection's stored vectors where the
    images are indexed, so the same as a search shows).
    """

    images: tuple[ExplainedImage, ExplainedImage]
    heat: tuple[np.ndarray, np.ndarray]
    distance: float
    model: str
    metric: str = DEFAULT_METRIC

    def heat_at(self, side: int, width: int | None = None,
                height: int | None = None) -> np.ndarray:
        """``heat[side]`` upsampled (bilinear, cell centres on cell centres) to ``width`` x
        ``height`` pixels, by default the image's own size: float32 (height, width)."""
        image = self.images[side]
        size = (width or image.width, height or image.height)
        grid = Image.fromarray(np.ascontiguousarray(self.heat[side], np.float32), "F")
        return np.clip(np.asarray(grid.resize(size, Image.Resampling.BILINEAR)), 0.0, 1.0)

    def peaks(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Where each image matches the other most: the centre of its hottest cell as
        (x, y) fractions of its width and height."""
        return (_peak(self.heat[0]), _peak(self.heat[1]))

    def to_dict(self) -> dict:
        """The explanation as JSON-ready values: the images, distance and the two grids."""
        return {
            "model": self.model, "metric": self.metric, "distance": self.distance,
            "images": [{"name": im.name, "id": im.id, "width": im.width, "height": im.height,
                        "heat": np.round(h.astype(np.float64), 4).tolist(),
                        "peak": list(p)}
                       for im, h, p in zip(self.images, self.heat, self.peaks())],
        }


def _peak(heat: np.ndarray) -> tuple[float, float]:
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return ((col + 0.5) / heat.shape[1], (row + 0.5) / heat.shape[0])


def check_model(model) -> None:
    """CannotExplain, in one line, for a model without a feature map."""
    if not model.has_feature_map:
        raise CannotExplain(f"model {model.info.name}: gives only its vectors, no feature map "
                            "(a model of your own), so it cannot explain a match; explain "
                            "with a built-in model (--model)")


def heat_maps(model, pixels: np.ndarray,
              method: str = DEFAULT_HEAT_METHOD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heat on the first image, heat on the second, their two vectors) for a uint8 pair
    (2, S, S, 3), from one run of ``model``."""
    check_model(model)
    vectors, maps = model.embed_with_maps(pixels)
    first, second = raw_heat(maps[0], maps[1], vectors[0], vectors[1], method)
    return normalised(first), normalised(second), vectors


def raw_heat(map_a: np.ndarray, map_b: np.ndarray, vector_a: np.ndarray, vector_b: np.ndarray,
             method: str = DEFAULT_HEAT_METHOD) -> tuple[np.ndarray, np.ndarray]:
    """The heat scores of each cell (C, h, w) before clipping and scaling, for both images."""
    if method not in HEAT_METHODS:
        raise ValueError(f"method must be one of {', '.join(HEAT_METHODS)}, not {method!r}")
    cells_a, cells_b = _cells(map_a), _cells(map_b)
    if method == "cells":
        sim = _unit(cells_a) @ _unit(cells_b).T
        return (sim.max(axis=1).reshape(map_a.shape[1:]),
                sim.max(axis=0).reshape(map_b.shape[1:]))
    unit_a, unit_b = _unit(vector_a[None])[0], _unit(vector_b[None])[0]
    if method == "pooled":
        cells_a, cells_b = _unit(cells_a), _unit(cells_b)
    return ((cells_a @ unit_b).reshape(map_a.shape[1:]),
            (cells_b @ unit_a).reshape(map_b.shape[1:]))


def normalised(scores: np.ndarray) -> np.ndarray:
    """The positive part of ``scores`` stretched to [0, 1], its weakest cell 0 and its
    strongest 1 (all zeros when no cell is positive or all are equal): the features are
    non-negative, so every cell's cosine is, and scaling by the maximum alone left maps whose
    weakest cells still read 0.3-0.5."""
    positive = np.maximum(np.asarray(scores, np.float64), 0.0)
    low, top = positive.min(), positive.max()
    return ((positive - low) / (top - low) if top > low else np.zeros_like(positive)
            ).astype(np.float32)


def pair_distance(vector_a: np.ndarray, vector_b: np.ndarray,
                  metric: str = DEFAULT_METRIC) -> float:
    return float(distances(vector_a[None], vector_b[None], metric)[0, 0])


def _cells(feature_map: np.ndarray) -> np.ndarray:
    """(h * w, C): one row per cell, row-major."""
    return feature_map.reshape(feature_map.shape[0], -1).T.astype(np.float64)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


__all__ = ["DEFAULT_HEAT_METHOD", "HEAT_METHODS", "CannotExplain", "ExplainedImage",
           "Explanation", "check_model", "heat_maps", "normalised", "pair_distance", "raw_heat"]
