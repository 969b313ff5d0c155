"""Image quality flags, as cleanvision raises them: blurry, dark, bright, low information,
greyscale, odd size, odd aspect.

The pixel measures come from the pixels indexing decodes anyway for the network (a few
hundred microseconds an image), stored per content; the flags are thresholds on them, so a
changed threshold needs no re-indexing. Odd size and aspect need only the catalogue's width
and height, and are judged against the collection's own median.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

#: The measures, in the order they are stored (catalogue.store.QUALITY_COLUMNS).
MEASURES = ("sharpness", "darkest", "brightest", "entropy", "colour")

#: Measured on a grey image of this size, whatever the model's input size, so that the
#: sharpness threshold means the same for every model.
GREY_SIZE = 128

#: The flags, in the order every output lists them.
FLAGS = ("blurry", "dark", "bright", "low_information", "greyscale", "odd_size", "odd_aspect")

# Thresholds, chosen by measuring generated images and the sample collections
# (tests/test_analyze.py, README "Clusters, outliers and quality flags"): a Gaussian blur of
# radius 3 brings the Laplacian variance of photos and emoji (300-8,000) below 40; the
# 1,903 Twemoji, the 26 scikit-image photos and Fashion-MNIST stay above it except flat
# shapes, which are low information first.
BLURRY_BELOW = 25.0          # variance of the Laplacian of the 128x128 grey image
DARK_BELOW = 0.2             # the 99th percentile of grey (0..1): nothing in it is bright
BRIGHT_ABOVE = 0.7           # the 1st percentile of grey: nothing in it is dark
LOW_INFORMATION_BELOW = 1.5  # bits of entropy of the grey histogram (a flat image has 0)
GREYSCALE_BELOW = 2.0        # mean (max - min) of R, G, B in levels of 0..255
ODD_SIZE_FACTOR = 8.0        # pixels over 8x, or under 1/8 of, the collection's median
ODD_ASPECT_ABOVE = 3.0       # long side over short side


def measure(pixels: np.ndarray) -> tuple[float, float, float, float, float]:
    """The MEASURES of one decoded RGB image (uint8, height x width x 3)."""
    small = Image.fromarray(np.asarray(pixels), "RGB").resize((GREY_SIZE, GREY_SIZE),
                                                               Image.Resampling.BILINEAR)
    rgb = np.asarray(small)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # channel by channel: 10x max(axis=2)
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # no wrap: >= 0
    colour = float(spread.mean())
    levels = np.asarray(small.convert("L"))
    grey = levels.astype(np.float32)
    laplacian = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
                 - 4 * grey[1:-1, 1:-1])
    counts = np.bincount(levels.ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    cumulative = np.cumsum(counts) / counts.sum()
    darkest = int(np.searchsorted(cumulative, 0.01)) / 255.0     # 1st percentile
    brightest = int(np.searchsorted(cumulative, 0.99)) / 255.0   # 99th percentile
    return float(laplacian.var()), darkest, brightest, entropy, colour


def flags(measures: np.ndarray, width: Sequence[float], height: Sequence[float]
          ) -> dict[str, np.ndarray]:
    """Each flag as a boolean column, from MEASURES rows (NaN where not measured: no flag)
    and each image's width and height."""
    m = np.asarray(measures, np.float64).reshape(-1, len(MEASURES))
    sharp, darkest, brightest, entropy, colour = m.T
    with np.errstate(invalid="ignore"):
        low = entropy < LOW_INFORMATION_BELOW
        out = {"blurry": (sharp < BLURRY_BELOW) & ~low,  # a flat image is not "blurry"
               "dark": brightest < DARK_BELOW,
               "bright": darkest > BRIGHT_ABOVE,
               "low_information": low,
               "greyscale": colour < GREYSCALE_BELOW}
    out.update(_shape_flags(np.asarray(width, np.float64), np.asarray(height, np.float64)))
    return {name: out[name] for name in FLAGS}


#: A flag as a catalogue filter: alternatives (any may hold), each a list of conditions (all
#: must hold) on a measure, the image's area in pixels ("area") or its long side over its short
#: side ("aspect"); the same thresholds as `flags`, so that the grid's filter and the export
#: agree. "odd_size" compares the area with the collection's median (see `flag_rule`).
Rule = tuple[tuple[tuple[str, str, float], ...], ...]


def flag_rule(flag: str, median_area: float) -> Rule:
    """The Rule of one of FLAGS (the catalogue filters by it in SQL); `median_area`: the
    collection's median width x height."""
    rules: dict[str, Rule] = {
        "blurry": ((("sharpness", "<", BLURRY_BELOW), ("entropy", ">=", LOW_INFORMATION_BELOW)),),
        "dark": ((("brightest", "<", DARK_BELOW),),),
        "bright": ((("darkest", ">", BRIGHT_ABOVE),),),
        "low_information": ((("entropy", "<", LOW_INFORMATION_BELOW),),),
        "greyscale": ((("colour", "<", GREYSCALE_BELOW),),),
        "odd_size": ((("area", ">", median_area * ODD_SIZE_FACTOR),),
                     (("area", "<", median_area / ODD_SIZE_FACTOR),)),
        "odd_aspect": ((("aspect", ">", ODD_ASPECT_ABOVE),),),
    }
    return rules[flag]


def _shape_flags(width: np.ndarray, height: np.ndarray) -> dict[str, np.ndarray]:
    known = (width > 0) & (height > 0)
    if not known.any():
        return {"odd_size": np.zeros(len(width), bool), "odd_aspect": np.zeros(len(width), bool)}
    w, h = np.where(known, width, 1.0), np.where(known, height, 1.0)
    area = w * h
    median = float(np.median(area[known]))
    odd_size = known & ((area > median * ODD_SIZE_FACTOR) | (area < median / ODD_SIZE_FACTOR))
    odd_aspect = known & (np.maximum(w, h) / np.minimum(w, h) > ODD_ASPECT_ABOVE)
    return {"odd_size": odd_size, "odd_aspect": odd_aspect}
