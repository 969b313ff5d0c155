"""Groups of copies in a collection: candidate pairs from each image's nearest neighbours
under a generous cosine distance, the tier's check on each pair, then groups in which every
two members passed the check (complete linkage: an edit of an edit never drags an unrelated
image into a group whose keeper it is not a copy of).

The catalogue pieces are handed in (ids, vectors, content hashes, a reader of image bytes);
nothing here opens a database. Never an all-pairs matrix: each image looks at its
NEIGHBOURS nearest only, in blocks of bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import LookalikeError
from ..ingest.decode import ImageSkipped
from . import copies

#: What counts as a copy, from strictest to loosest: the same bytes (the stored content hash),
#: the same decoded pixels, an edited copy (the strict copy check), a look-alike (the cosine
#: distance alone, under the user's threshold).
TIERS = ("exact", "pixels", "near", "similar")
DEFAULT_TIER = "near"

#: Candidate pairs per tier: cosine distances up to this go to the tier's check. Edited copies
#: (crops, thumbnails, rotations) came as far apart as 0.5 (DESIGN.md §6), so `near` looks
#: wide and lets the copy check decide; the same pixels give the same vector.
CANDIDATE_DISTANCE = {"pixels": 0.01, "near": 0.6, "similar": 0.1}
#: Cosine distances lie in [0, 2].
MAX_DISTANCE = 2.0
#: Nearest neighbours each image looks at: groups larger than this are still found, through
#: the neighbours' own neighbours.
NEIGHBOURS = 16
#: Cells (rows x images) of one block of the neighbour search: 64 MiB of float32 products.
BLOCK_CELLS = 1 << 24


@dataclass
class DuplicateGroup:
    """One group of copies: `ids[0]` is its representative (the member with most verified
    links), the others follow by `distances` to it (cosine); `keep` is the suggested keeper
    (see `choose_keeper`); `rows` the members' catalogue rows, in the order of `ids`."""

    number: int
    ids: list[int]
    distances: list[float]
    keep: int
    rows: list[dict] = field(default_factory=list)

    @property
    def representative(self) -> int:
        return self.ids[0]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Vectors:
    """Sorted image ids and their vectors (row i of `matrix` is image `ids[i]`)."""

    ids: np.ndarray
    matrix: np.ndarray

    def rows_of(self, image_ids: Sequence[int]) -> np.ndarray:
        return np.searchsorted(self.ids, np.asarray(image_ids, np.int64))

    def inverse_norms(self) -> np.ndarray:
        norms = np.sqrt(np.einsum("ij,ij->i", self.matrix, self.matrix, dtype=np.float64))
        return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)

    def distance(self, a: int, b: int) -> float:
        va, vb = self.matrix[self.rows_of([a, b])].astype(np.float64)
        denom = np.linalg.norm(va) * np.linalg.norm(vb)
        return max(0.0, float(1.0 - va @ vb / denom)) if denom > 0 else 1.0


def check_window(tier: str, threshold: float | None,
                 window: tuple[float, float] | None) -> tuple[float, float]:
    """The (lowest, highest) cosine distance of candidate pairs for `tier`; errors name the
    bad argument."""
    if tier not in TIERS:
        raise LookalikeError(f"unknown tier {tier!r}; the tiers are {', '.join(TIERS)}")
    if threshold is not None and window is not None:
        raise LookalikeError("give a threshold or a range, not both")
    lo, hi = (0.0, threshold) if threshold is not None else (
        window if window is not None else (0.0, CANDIDATE_DISTANCE.get(tier, 0.0)))
    for value in (lo, hi):
        if not (isinstance(value, (int, float)) and 0 <= value <= MAX_DISTANCE):
            raise LookalikeError(f"a distance threshold must be between 0 and {MAX_DISTANCE:g} "
                                 f"(cosine distance), not {value!r}")
    if lo > hi:
        raise LookalikeError(f"the range's low end {lo:g} is above its high end {hi:g}")
    return float(lo), float(hi)


def neighbour_pairs(queries: Vectors, among: Vectors, k: int, lo: float, hi: float,
                    same: bool = True) -> dict[tuple[int, int], float]:
    """{(query id, image id): cosine distance} for each query's k nearest images of `among`
    whose distance lies in [lo, hi]; with `same` (both are one collection) an image is not its
    own neighbour and each pair appears once, smaller id first."""
    pairs: dict[tuple[int, int], float] = {}
    n = len(among.ids)
    if n == 0 or len(queries.ids) == 0:
        return pairs
    inv_q, inv_a = queries.inverse_norms(), among.inverse_norms()
    take = min(k + same, n)
    block = max(1, BLOCK_CELLS // n)
    for start in range(0, len(queries.ids), block):
        rows = np.asarray(queries.matrix[start:start + block], np.float32)
        sims = (rows @ np.asarray(among.matrix).T) * inv_q[start:start + block, None] * inv_a
        best = np.argpartition(-sims, take - 1, axis=1)[:, :take] if take < n else \
            np.broadcast_to(np.arange(n), (len(rows), n))
        for r, cols in enumerate(best):
            qid = int(queries.ids[start + r])
            for c in cols:
                aid = int(among.ids[c])
                d = max(0.0, 1.0 - float(sims[r, c]))
                if (same and aid == qid) or not lo <= d <= hi:
                    continue
                pairs[(min(qid, aid), max(qid, aid)) if same else (qid, aid)] = d
    return pairs


def exact_pairs(hashes: Mapping[int, bytes]) -> dict[tuple[int, int], float]:
    """Pairs of images with the same content hash: each to the smallest id of its hash."""
    first: dict[bytes, int] = {}
    pairs: dict[tuple[int, int], float] = {}
    for image_id in sorted(hashes):
        h = hashes[image_id]
        if h in first:
            pairs[(first[h], image_id)] = 0.0
        else:
            first[h] = image_id
    return pairs


class PairCheck:
    """The tier's check of one pair of images, each read once however many pairs it is in
    (the last READ_CACHE images read are kept); false for pairs whose content hashes a person
    said are not copies (`refused`, pairs of hashes, smaller first)."""

    READ_CACHE = 256

    def __init__(self, tier: str, read: Callable[[int], bytes], lo: float, hi: float,
                 vectors: Vectors, hashes: Mapping[int, bytes],
                 refused: Iterable[tuple[bytes, bytes]] = ()):
        self.tier, self.lo, self.hi, self.vectors, self.hashes = tier, lo, hi, vectors, hashes
        self.refused = {(min(a, b), max(a, b)) for a, b in refused}
        self.read = lru_cache(maxsize=self.READ_CACHE)(read)
        # An image is in many candidate pairs: decode it and find its features once (9 ms),
        # then compare pairs (6 ms), instead of 26 ms a pair from the bytes.
        self.features = lru_cache(maxsize=self.READ_CACHE)(
            lambda image_id: copies.copy_features(self.read(image_id)))
        self.checked = 0

    def __call__(self, a: int, b: int, d: float | None = None) -> bool:
        ha, hb = self.hashes.get(a, b""), self.hashes.get(b, b"")
        if (min(ha, hb), max(ha, hb)) in self.refused:
            return False
        if self.tier == "exact":
            return ha == hb
        d = self.vectors.distance(a, b) if d is None else d
        if not self.lo <= d <= self.hi:
            return False
        if self.tier == "similar":
            return True
        self.checked += 1
        try:
            if self.tier == "pixels":
                return copies.same_pixels(self.read(a), self.read(b))
            return copies.compare(self.features(a), self.features(b)).is_copy
        except (OSError, ImageSkipped):
            return False  # a file gone or spoilt since indexing is no copy to report


def complete_groups(verified: Mapping[tuple[int, int], float], check: PairCheck,
                    transitive: bool) -> list[tuple[list[int], list[float]]]:
    """Groups in which every two members passed `check`: in each connected component of the
    verified pairs the member with most verified links (ties: smallest id) is the
    representative; the others join it nearest first if they pass the check with every member
    already in (pairs not verified yet are checked now; `transitive` checks, such as equal
    bytes or pixels, need no more). Left-over members form groups of their own the same way."""
    links: dict[int, dict[int, float]] = {}
    for (a, b), d in verified.items():
        links.setdefault(a, {})[b] = d
        links.setdefault(b, {})[a] = d
    groups = []
    for component in _components(links):
        remaining = set(component)
        while len(remaining) > 1:
            rep = max(remaining, key=lambda i: (len(links[i].keys() & remaining), -i))
            near = sorted((d, j) for j, d in links[rep].items() if j in remaining)
            if not near:
                break
            members, distances = [rep], [0.0]
            for d, j in near:
                if transitive or all(_linked(links, check, j, m) for m in members[1:]):
                    members.append(j)
                    distances.append(d)
            groups.append((members, distances))
            remaining -= set(members)
    return groups


def _linked(links: dict[int, dict[int, float]], check: PairCheck, a: int, b: int) -> bool:
    if b in links[a]:
        return True
    ok = check(a, b)
    if ok:  # remembered, so that a later group does not check it again
        links[a][b] = links[b][a] = check.vectors.distance(a, b)
    return ok


def _components(links: Mapping[int, Mapping[int, float]]) -> Iterable[list[int]]:
    seen: set[int] = set()
    for start in sorted(links):
        if start in seen:
            continue
        seen.add(start)
        stack, component = [start], []
        while stack:
            node = stack.pop()
            component.append(node)
            for other in links[node]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        yield sorted(component)


def find_duplicates(vectors: Vectors, hashes: Mapping[int, bytes], read: Callable[[int], bytes],
                    tier: str = DEFAULT_TIER, threshold: float | None = None,
                    window: tuple[float, float] | None = None,
                    not_duplicates: Iterable[tuple[bytes, bytes]] = (),
                    k: int = NEIGHBOURS) -> list[tuple[list[int], list[float]]]:
    """Groups of copies as (member ids, cosine distances to the representative), largest
    first: the representative first, the others nearest first.

    `hashes`: each image's content hash (the `exact` tier's pairs, and the key of
    `not_duplicates`: pairs of hashes a person said are not copies, smaller first); `read`:
    the bytes of an image by id (the `pixels` and `near` tiers' checks); `threshold` or
    `window` (lowest, highest): the cosine distances of candidate pairs (for `similar`, of
    the pairs themselves)."""
    lo, hi = check_window(tier, threshold, window)
    check = PairCheck(tier, read, lo, hi, vectors, hashes, not_duplicates)
    pairs = (exact_pairs(hashes) if tier == "exact"
             else neighbour_pairs(vectors, vectors, k, lo, hi))
    verified = {(a, b): vectors.distance(a, b) if tier == "exact" else d
                for (a, b), d in sorted(pairs.items()) if check(a, b, d)}
    groups = complete_groups(verified, check, transitive=tier in ("exact", "pixels"))
    return sorted(groups, key=lambda g: (-len(g[0]), g[0][0]))


def find_copies_across(queries: Vectors, among: Vectors, check_pair: Callable[[int, int], bool],
                       k: int = NEIGHBOURS, lo: float = 0.0,
                       hi: float = CANDIDATE_DISTANCE["near"]) -> list[tuple[int, list[int],
                                                                            list[float]]]:
    """For each image of `queries` that has copies in `among` (another collection): (its id,
    the ids of its copies there, nearest first, their cosine distances). `check_pair(q, a)`
    is the tier's check of a query image and an image of `among`."""
    pairs = neighbour_pairs(queries, among, k, lo, hi, same=False)
    found: dict[int, list[tuple[float, int]]] = {}
    for (q, a), d in sorted(pairs.items()):
        if check_pair(q, a):
            found.setdefault(q, []).append((d, a))
    return [(q, [a for _, a in sorted(hits)], [d for d, _ in sorted(hits)])
            for q, hits in sorted(found.items())]


def choose_keeper(rows: Sequence[dict], priority: Sequence[str] = ()) -> int:
    """The id of the member to keep: the most pixels, then the largest file, then the oldest
    modification time, then the earliest folder of `priority` the path is in (then the
    smallest id)."""
    def rank(row: dict) -> tuple:
        pixels = (row.get("width") or 0) * (row.get("height") or 0)
        mtime = row.get("mtime_ns")
        folder = next((i for i, f in enumerate(priority) if _inside(row["path"], f)),
                      len(priority))
        return (-pixels, -(row.get("size") or 0), mtime if mtime is not None else 1 << 62,
                folder, row["id"])
    return min(rows, key=rank)["id"]


def _inside(path: str, folder: str) -> bool:
    import os

    folder = os.path.abspath(folder).rstrip(os.sep) + os.sep
    return path.startswith(folder)


__all__ = ["CANDIDATE_DISTANCE", "DEFAULT_TIER", "NEIGHBOURS", "TIERS", "DuplicateGroup",
           "Vectors", "check_window", "choose_keeper", "find_copies_across", "find_duplicates"]
