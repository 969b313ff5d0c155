"""An explained match drawn as a PNG (lookalike explain -o): the two images side by side, each
with its heat overlaid (where it matches the other), and the distance in the caption."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: The heat's colours from cold to hot: transparent blue, then yellow, then red.
_RAMP = np.array([[40, 80, 255], [255, 220, 0], [230, 20, 20]], np.float64)
_STRENGTH = 0.6  # how far the hottest cell's colour covers the image


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """(h, w, 3) float RGB colours of a heat map in [0, 1] along the ramp."""
    position = np.clip(heat, 0, 1) * (len(_RAMP) - 1)
    low = np.minimum(position.astype(int), len(_RAMP) - 2)
    t = (position - low)[..., None]
    return _RAMP[low] * (1 - t) + _RAMP[low + 1] * t


def overlay(pixels: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """uint8 RGB ``pixels`` with ``heat`` (same height and width) blended over them, the
    hotter the stronger."""
    alpha = (_STRENGTH * np.clip(heat, 0, 1))[..., None]
    blended = pixels.astype(np.float64) * (1 - alpha) + heat_colours(heat) * alpha
    return np.clip(blended, 0, 255).astype(np.uint8)


def draw_explanation(explanation, size: int = 384) -> bytes:
    """The PNG bytes of `explanation` (`analysis.explain.Explanation`), each image scaled to a
    longer side of `size` pixels."""
    panels = []
    for side, image in enumerate(explanation.images):
        pixels = image.picture(size)
        heat = explanation.heat_at(side, pixels.shape[1], pixels.shape[0])
        panels.append(Image.fromarray(overlay(pixels, heat)))
    gap, caption = 12, 48
    width = sum(p.width for p in panels) + 3 * gap
    height = max(p.height for p in panels) + 2 * gap + caption
    picture = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    x = gap
    for panel, image in zip(panels, explanation.images):
        picture.paste(panel, (x, gap))
        pen.text((x, gap + panel.height + 6), _shorten(image.name, panel.width // 6),
                 fill="black", font=font)
        x += panel.width + gap
    pen.text((gap, height - 20), f"distance {explanation.distance:.4f} "
             f"({explanation.metric}, {explanation.model}); red: where each matches the other",
             fill="black", font=font)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(max(1, width - 1)):]


__all__ = ["draw_explanation", "heat_colours", "overlay"]
