"""From chosen channel planes to 8-bit pixels: each channel windowed by its own percentiles
(16-bit and float samples; 8-bit ones are shown as they are), then blended into one RGB picture
(a colour per channel), or kept apart as grey images for per-channel vectors, which
`JoinedChannels` embeds one channel at a time and joins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from .reading import ReadingOptions
from .stacks import WINDOW_SAMPLES, Planes


def window_to_8bit(values: np.ndarray, window: tuple[float, float],
                   source: np.dtype | None = None,
                   limits: tuple[float, float] | None = None) -> np.ndarray:
    """Samples to uint8: 8-bit samples as they are, booleans as 0/255, anything else by
    the `window` percentiles (low, high) of its finite samples (or the `limits` given)."""
    source = np.dtype(source or values.dtype)
    if source == np.uint8:
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if source == np.bool_:
        return (values > 0).astype(np.uint8) * 255
    values = values.astype(np.float32, copy=False)
    low, high = limits or window_limits(values, window)
    if not high > low:
        return np.zeros(values.shape, np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def window_limits(values: np.ndarray, window: tuple[float, float]) -> tuple[float, float]:
    """The sample values at the `window` percentiles, from an even stride of the samples."""
    flat = values.reshape(-1)
    sample = flat[:: max(1, flat.size // WINDOW_SAMPLES)]
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0, 0.0
    low, high = np.percentile(sample, window)
    return float(low), float(high)


def compose(planes: Planes, reading: ReadingOptions) -> np.ndarray:
    """The chosen channels as one (Y, X, 3) uint8 picture: one channel grey, up to three red,
    green and blue, or each in its colour (added, clipped)."""
    greys = _greys(planes, reading)
    if reading.channels is None:
        colours = [(1.0, 1.0, 1.0)] if len(greys) == 1 else \
            [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)][:len(greys)]
    else:
        colours = list(reading.shown_colours())
    rgb = np.zeros((*greys[0].shape, 3), np.float32)
    for grey, colour in zip(greys, colours):
        if any(colour):
            rgb += grey[..., None].astype(np.float32) * np.asarray(colour, np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _greys(planes: Planes, reading: ReadingOptions) -> list[np.ndarray]:
    """Each channel windowed to uint8: colour samples by one window over all, others each by
    its own."""
    limits = window_limits(planes.values, reading.window) if planes.joint else None
    return [window_to_8bit(p, reading.window, planes.dtype, limits) for p in planes.values]


def channel_pictures(planes: Planes, reading: ReadingOptions, size: int,
                     resample: int) -> np.ndarray:
    """Each channel as a grey RGB picture of size x size: (C, size, size, 3) uint8."""
    out = np.empty((len(planes.values), size, size, 3), np.uint8)
    for i, plane in enumerate(_greys(planes, reading)):
        grey = Image.fromarray(plane, "L")
        out[i] = np.asarray(grey.resize((size, size), resample, reducing_gap=3.0))[..., None]
    return out


class JoinedChannels:
    """A model that embeds (N, C, S, S, 3) batches, each channel on its own, and joins the C
    vectors of an image into one (N, C * dim)."""

    def __init__(self, model) -> None:
        self.model = model

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        n, c = pixels.shape[:2]
        vectors = self.model.embed(pixels.reshape(n * c, *pixels.shape[2:]))
        return vectors.reshape(n, -1)


def reading_model(load: Callable, model: str, reading: ReadingOptions) -> Callable:
    """A loader (name, threads) of `model` that embeds images read the `reading` way (per
    channel: each channel apart, the vectors joined)."""
    def loaded(_key: str, threads: int | None = None):
        embedder = load(model, threads=threads)
        return JoinedChannels(embedder) if reading.per_channel else embedder
    return loaded


__all__ = ["JoinedChannels", "channel_pictures", "compose", "reading_model", "window_limits",
           "window_to_8bit"]
