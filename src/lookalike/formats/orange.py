"""Orange's .tab header, read and written: the third row's flags and attributes as Orange's
reader parses them, its rule for clashing names, and the `origin` and values of its `image`
column. The table reader and the exporter both use it, so reading does not depend on writing."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Sequence
from typing import Any

from ..errors import LookalikeError
from ..locators import url_scheme


def unique_name(name: str, taken: set[str]) -> str:
    # Orange's own rule for a clashing name: "name (1)", "name (2)", ...
    if name not in taken:
        return name
    i = 1
    while f"{name} ({i})" in taken:
        i += 1
    return f"{name} ({i})"


# A relative path that Qt's QUrl (in Orange's Image Viewer) reads as something else, checked
# with QUrl itself: '#' starts a fragment, '?' a query, '%' an escape, ':' a scheme. Tabs,
# newlines, quotes, brackets, backslashes and unicode resolve fine. A leading space would be
# stripped by Orange's reader; the absolute form starts with the folder.
_URL_UNSAFE = re.compile(r"[#?%:]|^\s")


def orange_origin(paths: Sequence[str], roots: Sequence[str | None]) -> str | None:
    """The `origin` of Orange's `image` column: the indexed folder when all the images share
    one, else the deepest folder holding them all; None when no image is a local file."""
    bases = []
    for path, root in zip(paths, roots):
        if url_scheme(path):
            continue
        if root and path.startswith(root.rstrip(os.sep) + os.sep):
            bases.append(root)
        else:
            bases.append(os.path.dirname(path))
    if not bases:
        return None
    try:
        return os.path.commonpath(bases)
    except ValueError:  # e.g. different drives on Windows
        return None


def orange_image_value(path: str, origin: str | None) -> str:
    """A value of Orange's `image` column: the path relative to `origin`, as Import Images
    writes it, except where Orange's Image Viewer would misread the relative form (then the
    absolute path, which it opens directly); URLs as they are."""
    if origin is None or url_scheme(path):
        return path
    rel = os.path.relpath(path, origin)
    if rel.startswith(os.pardir) or _URL_UNSAFE.search(rel):
        return path
    return rel


def parse_orange_flags(cell: str) -> tuple[set[str], dict[str, Any]] | None:
    """What Orange's reader makes of a cell of the third header row: (flags, attributes), or
    None where Orange would fail or warn. Follows Orange.data.io_base.Flags: split on spaces
    not escaped by a backslash, then `\\ ` becomes a space; an attribute value is kept as
    text when it starts with a letter or "_", else passed to ast.literal_eval (kept as text if
    that is a SyntaxError; any other error breaks Orange's reader)."""
    flags: set[str] = set()
    attributes: dict[str, Any] = {}
    for part in re.split(r"(?<!\\) ", cell):
        part = part.replace("\\ ", " ").strip()
        if not part:
            continue
        if "\n" in part or "\r" in part:
            return None
        if "=" not in part:
            if part not in ("class", "c", "meta", "m", "ignore", "i", "weight", "w"):
                return None
            flags.add(part)
            continue
        key, value = part.split("=", 1)
        if not key:
            return None
        if not re.match(r"^[a-zA-Z_]", value):
            try:
                value = ast.literal_eval(value)
            except SyntaxError:
                pass
            except Exception:
                return None
        if value in ("True", "False"):
            value = value == "True"
        attributes[key] = value
    return flags, attributes


def orange_flags(flags: Sequence[str], attributes: dict[str, str]) -> str:
    """A third-header-row cell that Orange reads back as exactly these flags and attributes.

    An attribute is written as Orange writes it (`origin=/photos/my\\ cats`) where that reads
    back unchanged, else as a Python string literal, which Orange's reader evaluates
    (`origin='/photos/tab\\there'`)."""
    parts = list(flags)
    for key, value in attributes.items():
        raw = f"{key}={value.replace(' ', chr(92) + ' ')}"
        quoted = f"{key}={repr(value).replace(' ', chr(92) + ' ')}"
        for candidate in (raw, quoted):
            parsed = parse_orange_flags(" ".join(parts + [candidate]))
            if parsed is not None and parsed[1].get(key) == value:
                parts.append(candidate)
                break
        else:  # pragma: no cover - repr() always reads back
            raise LookalikeError(f"cannot write {key}={value!r} in an Orange .tab header")
    cell = " ".join(parts)
    expected = (set(flags), dict(attributes))
    if parse_orange_flags(cell) != expected:  # pragma: no cover - a bug, not a user error
        raise AssertionError(f"Orange would read {cell!r} differently from {expected}")
    return cell


__all__ = ["orange_flags", "orange_image_value", "orange_origin", "parse_orange_flags",
           "unique_name"]
