"""The arguments of a search checked where they come in, each refused in one line that names
it: k, max_distance, a category (with the nearest names, so that a typing error does not read
as "no look-alikes"), and what a search on a cluster does not offer."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LookalikeError
from .metrics import mahalanobis_note
from .normalise import Normalisation
from .references import is_empty


class UnknownCategory(LookalikeError):
    """A category filter that names no category of the collection."""


def check_k(k) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise LookalikeError(f"k must be a positive whole number or None, not {k!r}")


def check_max_distance(value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value >= 0):
        raise LookalikeError(f"max_distance must be a distance of 0 or more, not {value!r}")


def check_cluster_search(approximate: bool | str | None, unlike: Any,
                         normalisation: Normalisation | None = None) -> None:
    """What a search on a cluster does not offer, refused in one line before connecting (its
    metrics: `distributed.search.check_shardable`)."""
    if normalisation is not None:
        raise LookalikeError("per-plate normalisation (--normalise) is searched on this "
                             "machine; leave out --cluster")
    if approximate not in (None, False):
        raise LookalikeError("a search on a cluster is exact; leave out --approximate")
    if unlike is not None and not is_empty(unlike):
        raise LookalikeError("negative references (--unlike) are searched on this machine; "
                             "leave out --cluster")


def check_category(category: str, categories: dict[str, int], db) -> None:
    """Raises UnknownCategory, naming the nearest existing ones, unless some usable image is
    in `category` or below it (a category filter keeps the sub-folder and its own
    sub-folders)."""
    if category in categories:
        return
    if not categories:
        hint = "its images have no categories (sub-folders or a category column)"
    else:
        near = nearest_names(category, list(categories))
        if near:
            hint = "the nearest are " + ", ".join(repr(name) for name in near)
        else:
            top = [name for name in categories if "/" not in name]
            shown = top[:5]
            more = f" and {len(top) - 5} more" if len(top) > 5 else ""
            hint = "its top categories are " + ", ".join(repr(name) for name in shown) + more
    raise UnknownCategory(f"no category {category!r} in {db}; {hint}")


def nearest_names(typed: str, names: list[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The `n` names most like `typed`, case aside, comparing it with each whole name, each of
    its parts ("cats" finds "animals/cats") and the start of each part ("Smily" finds
    "Smileys & Emotion"); shallower names first among equals."""
    import difflib

    typed = typed.lower()

    def likeness(name: str) -> float:
        best = 0.0
        for part in [name, *name.split("/")]:
            part = part.lower()
            best = max(best, difflib.SequenceMatcher(None, typed, part).ratio(),
                       difflib.SequenceMatcher(None, typed, part[:len(typed)]).ratio())
        return best

    scored = sorted(((likeness(name), name) for name in names),
                    key=lambda pair: (-pair[0], pair[1].count("/"), pair[1]))
    return [name for score, name in scored[:n] if score >= cutoff]


def answer_notes(metric: str, rows: int, dim: int) -> list[str]:
    """What a person should know about an answer in this metric on this collection."""
    note = mahalanobis_note(rows, dim) if metric == "Mahalanobis" else None
    return [note] if note else []
