"""Answers for people: plain-text tables, and values shortened to fit a column."""

from __future__ import annotations

from ..locators import is_data_url


def text_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def shortened(value, width: int = 24) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def shown_path(path: str) -> str:
    # A data: URL holds the whole image: too long to read in a table.
    return shortened(path, 48) if is_data_url(path) else path


def file_size(size: int | None) -> str:
    """A file size for people: 812 B, 4.5 kB, 12 MB (powers of 1000, as file managers show)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:,.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
