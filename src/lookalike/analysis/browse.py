"""The grid's sorts and filters that read what analysis found: "most unusual first", one
cluster, one quality flag, a chosen set of images, and tag words, turned into the
catalogue's `Browse` (which pages through them in SQL)."""

from __future__ import annotations

from collections.abc import Sequence

from ..catalogue.store import Browse
from ..errors import LookalikeError
from . import quality, tags
from .analyze import current_settings

#: The orders `Collection.images` pages in: by id, or highest outlier score first.
SORTS = ("id", "outlier")

#: At most this many ids in an `ids` filter (a lasso on the map of a large collection).
MAX_IDS = 1_000_000


def browse_filter(store, *, category: str | None = None, name: str | None = None,
                  sort: str = "id", cluster: int | None = None, flag: str | None = None,
                  ids: Sequence[int] | None = None, model: str | None = None,
                  tag: str | None = None, tag_model: str | None = None) -> Browse:
    """The Browse these arguments ask for, checked: a sort or flag that does not exist, a
    sort or cluster without an analysis of `model` for the catalogue as it is now, and tag
    words that name no ImageNet class or a `tag_model` without tags are errors that say
    what to do."""
    if sort not in SORTS:
        raise LookalikeError(f"no sort {sort!r}; use one of: {', '.join(SORTS)}")
    if flag is not None and flag not in quality.FLAGS:
        raise LookalikeError(f"no quality flag {flag!r}; use one of: {', '.join(quality.FLAGS)}")
    if ids is not None and len(ids) > MAX_IDS:
        raise LookalikeError(f"ids: {len(ids):,} images; give at most {MAX_IDS:,}")
    needs_analysis = sort == "outlier" or cluster is not None
    if needs_analysis and (model is None or current_settings(store, model) is None):
        raise LookalikeError(f"{store.path}: no analysis of {model} vectors for the collection "
                             "as it is now; run `lookalike analyze` (or Collection.analyze) "
                             "first")
    rule = quality.flag_rule(flag, store.median_area()) if flag is not None else None
    classes = None
    if tag is not None and tag.strip():
        classes = frozenset().union(*(t.classes for t in tags.match_words([tag])))
        tags.tags_needed(store, str(tag_model))
    return Browse(category=category, name=name or None,
                  ids=tuple(sorted({int(i) for i in ids})) if ids is not None else None,
                  flag=rule, model=model if needs_analysis else None,
                  cluster=None if cluster is None else int(cluster), sort=sort,
                  tag_model=tag_model if classes is not None else None,
                  tag_classes=tuple(sorted(classes)) if classes is not None else None)


__all__ = ["MAX_IDS", "SORTS", "browse_filter"]
