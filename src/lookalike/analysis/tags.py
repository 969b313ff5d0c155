"""Tags: the ImageNet classes a built-in model's classifier sees in an image, kept while
indexing, and the search of images by tag words (a class's synonyms, or a word for the
classes below it in WordNet: "dog" for every breed). This is not CLIP: only the 1,000
ImageNet classes can be found, each by its names.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import LookalikeError
from ..ingest.reading import READING_SETTING, ReadingOptions, base_model

__all__ = ["FLOOR", "TOP", "TagTerm", "UnknownTagWord", "class_name", "image_tags",
           "match_words", "normalised", "rank_tagged", "tagged_images", "tags_from_logits",
           "tags_needed", "vocabulary"]

#: Each image keeps its TOP most likely classes whose probability is FLOOR or more, and its
#: most likely class always: a photo of one thing puts most of its probability on 1-3
#: classes (chelsea: tabby 0.46, tiger cat 0.20, Egyptian cat 0.10 with the default model).
TOP = 5
FLOOR = 0.05

#: A phrase of at most this many words is looked up as one name ("german shepherd dog").
_LONGEST_NAME = 6


def class_words():
    """ImageNet's class words (models/imagenet_classes.py), imported when first asked for: the
    indexing pipeline imports this module for `tags_from_logits`, and importing the models
    package loads onnx and onnxruntime (0.11 s of every `lookalike` command's start)."""
    from ..models.imagenet_classes import class_words as words

    return words()


class UnknownTagWord(LookalikeError, ValueError):
    """A tag word that names no ImageNet class."""


def tags_from_logits(logits: np.ndarray) -> list[list[tuple[int, float]]]:
    """(class, probability) of each image's tags, most likely first, from classifier logits
    (N, 1000)."""
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probability = shifted / shifted.sum(axis=1, keepdims=True)
    top = np.argsort(-probability, axis=1, kind="stable")[:, :TOP]
    return [[(int(c), float(p[c])) for n, c in enumerate(row) if n == 0 or p[c] >= FLOOR]
            for p, row in zip(probability, top)]


@dataclass(frozen=True)
class TagTerm:
    """One name looked up: the words as typed, and the classes it names (its own, and those
    below it in WordNet)."""

    text: str
    classes: frozenset[int]


def normalised(text: str) -> str:
    """Lower case, every run of other characters than letters and digits one space."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


@functools.cache
def vocabulary() -> dict[str, frozenset[int]]:
    """Every name, normalised, with the classes it names."""
    words = class_words()
    found: dict[str, set[int]] = {}
    for c, (own, above) in enumerate(zip(words.names, words.above)):
        for name in (*own, *above):
            found.setdefault(normalised(name), set()).add(c)
    return {name: frozenset(classes) for name, classes in found.items() if name}


def _singulars(phrase: str) -> list[str]:
    """`phrase` and what it is with its last word made singular: WordNet's irregular plurals
    ("mice"), then the regular endings ("puppies", "boxes", "cats")."""
    head, _, last = phrase.rpartition(" ")
    prefix = head + " " if head else ""
    forms = [phrase]
    irregular = class_words().plurals.get(last)
    if irregular:
        forms.append(prefix + irregular)
    if last.endswith("ies") and len(last) > 4:
        forms.append(prefix + last[:-3] + "y")
    if last.endswith("es") and len(last) > 3:
        forms.append(prefix + last[:-2])
    if last.endswith("s") and not last.endswith("ss") and len(last) > 2:
        forms.append(prefix + last[:-1])
    return forms


def _lookup(phrase: str) -> frozenset[int] | None:
    known = vocabulary()
    for form in _singulars(phrase):
        if form in known:
            return known[form]
    return None


def match_words(words: Sequence[str]) -> list[TagTerm]:
    """The names in `words`, read left to right, the longest known name first ("golden
    retriever" is one name, "cat dog" two); case and plurals aside. A word that is part of
    no name raises UnknownTagWord, naming the nearest names."""
    tokens = normalised(" ".join(words)).split()
    if not tokens:
        raise UnknownTagWord("give a word to look for, e.g. cat, dog or coffee")
    terms: list[TagTerm] = []
    at = 0
    while at < len(tokens):
        for end in range(min(len(tokens), at + _LONGEST_NAME), at, -1):
            phrase = " ".join(tokens[at:end])
            classes = _lookup(phrase)
            if classes is not None:
                terms.append(TagTerm(phrase, classes))
                at = end
                break
        else:
            raise UnknownTagWord(_unknown(tokens[at]))
    return terms


def _unknown(word: str) -> str:
    near = difflib.get_close_matches(word, list(vocabulary()), n=4, cutoff=0.7)
    hint = ("the nearest names are " + ", ".join(repr(n) for n in near)) if near else \
        "tags are the 1,000 ImageNet classes and the WordNet nouns above them"
    return f"no ImageNet class is called {word!r}; {hint}"


def rank_tagged(hits: Iterable[tuple[int, int, float]], terms: Sequence[TagTerm],
                k: int | None = None) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """(image id, score, its matching tags) from the store's (image id, class, probability)
    of images with a class of one of `terms`, highest score first (then by id): the score
    is the probability of the classes matched, summed (a tabby that is also possibly a
    tiger cat is more surely a cat)."""
    wanted = frozenset().union(*(t.classes for t in terms)) if terms else frozenset()
    found: dict[int, list[tuple[int, float]]] = {}
    for image_id, c, p in hits:
        if c in wanted:
            found.setdefault(int(image_id), []).append((int(c), float(p)))
    ranked = sorted(((i, sum(p for _, p in tags), sorted(tags, key=lambda t: -t[1]))
                     for i, tags in found.items()), key=lambda r: (-r[1], r[0]))
    return ranked if k is None else ranked[:k]


def class_name(c: int) -> str:
    """The usual name of ImageNet class `c`."""
    return class_words().name(c)


def tags_needed(store, model: str) -> None:
    """Raises LookalikeError, saying what to do, when no image has tags of `model`."""
    if store.count_tagged(model):
        return
    from ..models import get_model_info

    reading = ReadingOptions.from_json(store.get_setting(READING_SETTING))
    if reading.per_channel and reading.vector_key(base_model(model)) == model:
        raise LookalikeError(f"{store.path}: images read each channel apart (--per-channel) "
                             "have no tags (the classifier sees whole pictures); index without "
                             "--per-channel to have them")
    try:
        own_model = bool(get_model_info(base_model(model)).file)
    except LookalikeError:  # vectors imported under a name no model has
        own_model = True
    if own_model:
        raise LookalikeError(f"{store.path}: {model} has no ImageNet classifier, so its images "
                             "have no tags; index with a built-in model (e.g. --model "
                             "efficientnet-lite0-gem) to have them")
    raise LookalikeError(f"{store.path}: no image has tags of {model}; run `lookalike index "
                         "--retag` on its folders to add them (images indexed before tags were "
                         "kept are read once more)")


def tagged_images(store, model: str, words: Sequence[str], k: int | None = None
                  ) -> list[dict]:
    """The catalogue rows of the images tagged with `words` (see `match_words`), best
    first, each with its `score` and the `tags` that matched ({"name", "score"})."""
    terms = match_words(words)
    tags_needed(store, model)
    classes = frozenset().union(*(t.classes for t in terms))
    ranked = rank_tagged(store.tagged(model, sorted(classes)), terms, k)
    rows = {r["id"]: r for r in store.rows([i for i, _, _ in ranked])}
    return [dict(rows[i], score=score, tags=_named(tags)) for i, score, tags in ranked
            if i in rows]


def image_tags(store, image_id: int, model: str) -> list[dict]:
    """One image's tags ({"name", "synonyms", "score"}), most likely first."""
    return _named(store.tags_of(image_id, model))


def _named(tags: Iterable[tuple[int, float]]) -> list[dict]:
    words = class_words()
    return [{"name": words.name(c), "synonyms": list(words.names[c][1:]), "score": round(p, 4)}
            for c, p in tags]
