"""A collection's map drawn as a PNG with Pillow: every image a dot coloured by its category,
with a legend; a static view for people without the web viewer."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Colours of the first categories (Tableau 10), then the rest in grey; None: light grey.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac"]
OTHERS, NONE = "#7f7f7f", "#d0d0d0"


def draw_map(layout, size: int = 1000) -> bytes:
    """The PNG bytes of `layout` (`analysis.maps.MapLayout`): a `size` x `size` plot and a
    legend of the largest categories to its right; dots shrink as points grow in number."""
    names, counts = np.unique([c or "" for c in layout.categories], return_counts=True)
    ranked = [str(n) for n in names[np.argsort(-counts, kind="stable")] if n]
    colour = {name: PALETTE[i] if i < len(PALETTE) else OTHERS for i, name in enumerate(ranked)}
    legend_width = 260 if ranked else 0
    picture = Image.new("RGB", (size + legend_width, size), "white")
    pen = ImageDraw.Draw(picture)
    margin, radius = 20, max(1, min(6, int(120 / max(1, len(layout)) ** 0.5 * 3)))
    xy = np.column_stack([layout.x, layout.y]).astype(np.float64)
    if len(xy):
        low, span = xy.min(axis=0), np.ptp(xy, axis=0).max() or 1.0
        pixels = margin + (xy - low) / span * (size - 2 * margin)
        pixels[:, 1] = size - pixels[:, 1]  # y grows upwards
        for (px, py), category in zip(pixels, layout.categories):
            pen.ellipse((px - radius, py - radius, px + radius, py + radius),
                        fill=colour.get(category or "", NONE))
    font = ImageFont.load_default()
    shown = ranked[:len(PALETTE)]
    for row, name in enumerate(shown):
        y = margin + row * 22
        pen.rectangle((size + 10, y, size + 24, y + 14), fill=colour[name])
        pen.text((size + 32, y), _shorten(name, 30), fill="black", font=font)
    if len(ranked) > len(shown):
        y = margin + len(shown) * 22
        pen.rectangle((size + 10, y, size + 24, y + 14), fill=OTHERS)
        pen.text((size + 32, y), f"{len(ranked) - len(shown)} more categories", fill="black",
                 font=font)
    pen.text((margin, size - margin + 4), f"{layout.method} of {layout.model} vectors, "
             f"{len(layout):,} images", fill="black", font=font)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


__all__ = ["draw_map"]
