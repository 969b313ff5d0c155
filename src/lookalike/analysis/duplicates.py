"""Groups of copies in a collection: candidate pairs from each image's nearest neighbours
under a generous cosine distance, the tier's check on each pair, then groups in which every
two members passed the check (complete linkage: an edit of an edit never drags an unrelated
image into a group whose keeper it is not a copy of).

The catalogue pieces are handed in (ids, vectors, content hashes, a reader of image bytes);
nothing here opens a database. Never an all-pairs matrix: each image looks at its
NEIGHBOURS nearest only (search/knn_graph.py), and pairs and groups are built from arrays, so
that millions of candidate pairs cost no Python object each.
"""

from __future__ import annotations

import heapq
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from ..errors import LookalikeError
from ..ingest.decode import ImageSkipped
from ..search.knn_graph import kneighbors
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
#: Pairs whose distances are computed at once (two float64 gathers of this many rows).
DISTANCE_BLOCK = 1 << 14


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

    def rows_of(self, image_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ids, np.asarray(image_ids, np.int64))

    def inverse_norms(self) -> np.ndarray:
        norms = np.sqrt(np.einsum("ij,ij->i", self.matrix, self.matrix, dtype=np.float64))
        return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)

    def distance(self, a: int, b: int) -> float:
        va, vb = self.matrix[self.rows_of([a, b])].astype(np.float64)
        denom = np.linalg.norm(va) * np.linalg.norm(vb)
        return max(0.0, float(1.0 - va @ vb / denom)) if denom > 0 else 1.0

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine distances of the pairs (a[i], b[i]) of ids, in float64 as `distance`."""
        out = np.empty(len(a))
        for start in range(0, len(a), DISTANCE_BLOCK):
            part = slice(start, start + DISTANCE_BLOCK)
            va = np.asarray(self.matrix[self.rows_of(a[part])], np.float64)
            vb = np.asarray(self.matrix[self.rows_of(b[part])], np.float64)
            denom = np.linalg.norm(va, axis=1) * np.linalg.norm(vb, axis=1)
            cos = np.einsum("ij,ij->i", va, vb) / np.where(denom > 0, denom, 1.0)
            out[part] = np.where(denom > 0, np.maximum(0.0, 1.0 - cos), 1.0)
        return out


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


@dataclass(frozen=True)
class Pairs:
    """Pairs of image ids as arrays, not a Python object per pair: `a[i]` and `b[i]` at
    cosine distance `d[i]` (float64)."""

    a: np.ndarray
    b: np.ndarray
    d: np.ndarray

    @classmethod
    def of(cls, pairs: Mapping[tuple[int, int], float]) -> Pairs:
        keys = np.array(list(pairs), np.int64).reshape(-1, 2)
        return cls(keys[:, 0], keys[:, 1], np.array(list(pairs.values()), np.float64))

    def __len__(self) -> int:
        return len(self.a)

    def where(self, keep: np.ndarray) -> Pairs:
        return Pairs(self.a[keep], self.b[keep], self.d[keep])


def neighbour_pairs(queries: Vectors, among: Vectors, k: int, lo: float, hi: float,
                    same: bool = True, method: str = "auto") -> Pairs:
    """Each query's k nearest images of `among` (search/knn_graph.py: exact, or an inverted
    file for large collections) whose cosine distance lies in [lo, hi], sorted by ids; with
    `same` (both are one collection) an image is not its own neighbour and each pair appears
    once, smaller id first."""
    if len(among.ids) == 0 or len(queries.ids) == 0:
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    dist, rows = kneighbors(queries.matrix, None if same else among.matrix, k, method)
    q, col = np.nonzero((rows >= 0) & (dist >= lo) & (dist <= hi))
    r, d = rows[q, col], dist[q, col]
    del dist, rows, col
    if same:  # a pair found from both ends is kept once
        q, r = np.minimum(q, r), np.maximum(q, r)
        _, first = np.unique(q * len(among.ids) + r, return_index=True)
        q, r, d = q[first], r[first], d[first]
    else:
        order = np.lexsort((r, q))
        q, r, d = q[order], r[order], d[order]
    return Pairs(queries.ids[q], among.ids[r], d.astype(np.float64))


def exact_pairs(hashes: Mapping[int, bytes]) -> Pairs:
    """Pairs of images with the same content hash: each to the smallest id of its hash."""
    first: dict[bytes, int] = {}
    a: list[int] = []
    b: list[int] = []
    for image_id in sorted(hashes):
        h = hashes[image_id]
        if h in first:
            a.append(first[h])
            b.append(image_id)
        else:
            first[h] = image_id
    return Pairs(np.array(a, np.int64), np.array(b, np.int64), np.zeros(len(a)))


class PairCheck:
    """The tier's check of one pair of images, each image read and prepared once however many
    pairs it is in (the last CACHE images are kept: their features for `near`, their bytes for
    `pixels`); false for pairs whose content hashes a person said are not copies (`refused`,
    pairs of hashes, smaller first). `verify` checks pairs in `workers` threads (OpenCV and
    NumPy release the GIL; default: the cores, at most MAX_WORKERS); `read` is called in the
    caller's thread only (it may use a database connection)."""

    CACHE = 512
    #: Pairs handed to the threads at a time, their images read and prepared first.
    CHUNK = 128
    MAX_WORKERS = 8

    def __init__(self, tier: str, read: Callable[[int], bytes], lo: float, hi: float,
                 vectors: Vectors, hashes: Mapping[int, bytes],
                 refused: Iterable[tuple[bytes, bytes]] = (), workers: int | None = None):
        self.tier, self.lo, self.hi, self.vectors, self.hashes = tier, lo, hi, vectors, hashes
        self.refused = {(min(a, b), max(a, b)) for a, b in refused}
        self.read = read
        self.workers = max(1, workers or min(os.cpu_count() or 1, self.MAX_WORKERS))
        # An image is in many candidate pairs: decode it and find its features once (11 ms),
        # then compare pairs, instead of decoding both images for every pair.
        self._prepared: OrderedDict[int, object] = OrderedDict()
        self.checked = 0

    def __call__(self, a: int, b: int, d: float | None = None) -> bool:
        if not self._allowed(a, b, d):
            return False
        if self.tier in ("exact", "similar"):
            return self.tier == "similar" or self.hashes.get(a, b"") == self.hashes.get(b, b"")
        self.checked += 1
        prepared = self._prepare([a, b], map)
        return self._judge(prepared[a], prepared[b])

    def _allowed(self, a: int, b: int, d: float | None) -> bool:
        """Not refused by a person, and (but for `exact`) within the distance window."""
        ha, hb = self.hashes.get(a, b""), self.hashes.get(b, b"")
        if (min(ha, hb), max(ha, hb)) in self.refused:
            return False
        if self.tier == "exact":
            return True
        d = self.vectors.distance(a, b) if d is None else d
        return self.lo <= d <= self.hi

    def _prepare(self, ids: Iterable[int], run: Callable) -> dict[int, object]:
        """Each image's prepared form (None: unreadable), from the cache or made now: bytes
        read here, features found by `run` (map, or a thread pool's map)."""
        wanted = list(dict.fromkeys(ids))
        blobs: dict[int, bytes] = {}
        for i in wanted:
            if i in self._prepared:
                self._prepared.move_to_end(i)
            else:
                try:
                    blobs[i] = self.read(i)
                except OSError:  # a file gone or changed since indexing is no copy to report
                    self._prepared[i] = None
        for i, made in zip(blobs, run(self._prepare_one, blobs.values())):
            self._prepared[i] = made
        while len(self._prepared) > max(self.CACHE, len(wanted)):
            self._prepared.popitem(last=False)
        return {i: self._prepared[i] for i in wanted}

    def _prepare_one(self, data: bytes) -> object:
        if self.tier == "pixels":
            return data
        try:
            return copies.copy_features(data)
        except ImageSkipped:
            return None

    def _judge(self, a: object, b: object) -> bool:
        if a is None or b is None:
            return False
        if self.tier == "pixels":
            try:
                return copies.same_pixels(cast(bytes, a), cast(bytes, b))
            except ImageSkipped:
                return False
        return copies.compare(cast(copies.CopyFeatures, a),
                              cast(copies.CopyFeatures, b)).is_copy

    def verify(self, pairs: Pairs, progress: Callable[[int, int], None] | None = None) -> Pairs:
        """The pairs that pass the check. The `exact` and `similar` tiers decide on arrays
        (equal hashes and the distance window, which the candidates met already, and the
        refused pairs); the others check each pair, CHUNK pairs at a time in the threads.
        `progress(done, total)` is called after each chunk."""
        if self.tier in ("exact", "similar"):
            return pairs.where(self._verify_arrays(pairs))
        keep = np.zeros(len(pairs), bool)
        a, b, d = pairs.a.tolist(), pairs.b.tolist(), pairs.d.tolist()
        pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        try:
            for start in range(0, len(pairs), self.CHUNK):
                todo = [i for i in range(start, min(start + self.CHUNK, len(pairs)))
                        if self._allowed(a[i], b[i], d[i])]
                run = pool.map if pool is not None else map
                prepared = self._prepare((x for i in todo for x in (a[i], b[i])), run)
                keep[todo] = list(run(self._judge, [prepared[a[i]] for i in todo],
                                      [prepared[b[i]] for i in todo]))
                self.checked += len(todo)
                if progress is not None:
                    progress(min(start + self.CHUNK, len(pairs)), len(pairs))
        finally:
            if pool is not None:
                pool.shutdown()
        return pairs.where(keep)

    def _verify_arrays(self, pairs: Pairs) -> np.ndarray:
        keep = np.ones(len(pairs), bool)
        if self.tier == "similar":
            keep &= (pairs.d >= self.lo) & (pairs.d <= self.hi)
        if self.refused:  # a person's decisions are few: look at the pairs they touch
            marked = {h for pair in self.refused for h in pair}
            flagged = np.array([i for i, h in self.hashes.items() if h in marked], np.int64)
            for i in np.flatnonzero(np.isin(pairs.a, flagged) & np.isin(pairs.b, flagged)):
                ha, hb = self.hashes[int(pairs.a[i])], self.hashes[int(pairs.b[i])]
                keep[i] &= (min(ha, hb), max(ha, hb)) not in self.refused
        return keep


def complete_groups(verified: Pairs | Mapping[tuple[int, int], float], check: PairCheck,
                    transitive: bool) -> list[tuple[list[int], list[float]]]:
    """Groups in which every two members passed `check`: in each connected component of the
    verified pairs the member with most verified links (ties: smallest id) is the
    representative; the others join it nearest first if they pass the check with every member
    already in (pairs not verified yet are checked now; `transitive` checks, such as equal
    bytes or pixels, need no more). Left-over members form groups of their own the same way.
    Components come in order of their smallest id."""
    pairs = verified if isinstance(verified, Pairs) else Pairs.of(verified)
    graph = _Graph(pairs)
    groups: list[tuple[list[int], list[float]]] = []
    for component in graph.components():
        if len(component) == 2:  # most components: one pair, its smaller id first
            groups.append(([int(graph.ids[component[0]]), int(graph.ids[component[1]])],
                           [0.0, float(graph.dist[graph.start[component[0]]])]))
        else:
            groups.extend(graph.split(component, check, transitive))
    return groups


class _Graph:
    """Verified pairs as an adjacency in arrays (compressed rows: node i's neighbours are
    `nbr[start[i]:start[i + 1]]`, ascending, at distances `dist[...]`); nodes are the
    positions of `ids`, the sorted ids that occur in a pair."""

    def __init__(self, pairs: Pairs):
        a, b = np.minimum(pairs.a, pairs.b), np.maximum(pairs.a, pairs.b)
        proper = a != b
        a, b, d = a[proper], b[proper], pairs.d[proper]
        self.ids = np.unique(np.concatenate([a, b]))
        ia, ib = np.searchsorted(self.ids, a), np.searchsorted(self.ids, b)
        _, first = np.unique(ia * len(self.ids) + ib, return_index=True)  # each pair once
        self.ia, self.ib, d = ia[first], ib[first], d[first]
        src, dst = np.concatenate([self.ia, self.ib]), np.concatenate([self.ib, self.ia])
        order = np.lexsort((dst, src))
        self.nbr, self.dist = dst[order], np.concatenate([d, d])[order]
        self.start = np.zeros(len(self.ids) + 1, np.int64)
        np.cumsum(np.bincount(src, minlength=len(self.ids)), out=self.start[1:])
        # Grouping state, shared by the components (which never touch each other's nodes):
        # nodes not yet in a group, and each one's links to those.
        self.remaining = np.ones(len(self.ids), bool)
        self.degree = np.diff(self.start)

    def neighbours(self, node: int) -> np.ndarray:
        return self.nbr[self.start[node]:self.start[node + 1]]

    def components(self) -> Iterable[np.ndarray]:
        """Each connected component's nodes (ascending), in order of its smallest node."""
        if not len(self.ids):
            return []
        root = np.arange(len(self.ids))
        while True:  # hook each root under the smallest root it is linked to, then flatten
            ra, rb = root[self.ia], root[self.ib]
            apart = ra != rb
            if not apart.any():
                break
            np.minimum.at(root, np.maximum(ra, rb)[apart], np.minimum(ra, rb)[apart])
            while not np.array_equal(root[root], root):
                root = root[root]
        order = np.argsort(root, kind="stable")
        bounds = np.flatnonzero(np.diff(root[order])) + 1
        components = np.split(order, bounds)
        return sorted(components, key=lambda c: int(c[0]))

    def split(self, component: np.ndarray, check: PairCheck,
              transitive: bool) -> list[tuple[list[int], list[float]]]:
        """complete_groups' rule inside one component, the representative found by a heap of
        (links to the remaining members, node): each round costs the links it removes."""
        remaining, degree = self.remaining, self.degree
        heap = [(-int(degree[i]), int(i)) for i in component]
        heapq.heapify(heap)
        groups = []
        while heap:
            links, rep = heapq.heappop(heap)
            if not remaining[rep] or -links != degree[rep]:
                continue  # an outdated entry
            if links == 0:
                break
            members, distances = self._group(rep, remaining, check, transitive)
            groups.append(([int(self.ids[m]) for m in members], distances))
            remaining[members] = False
            touched = np.concatenate([self.neighbours(m) for m in members])
            touched = touched[remaining[touched]]
            np.subtract.at(degree, touched, 1)
            for node in np.unique(touched).tolist():
                heapq.heappush(heap, (-int(degree[node]), node))
        return groups

    def _group(self, rep: int, remaining: np.ndarray, check: PairCheck,
               transitive: bool) -> tuple[list[int], list[float]]:
        span = slice(self.start[rep], self.start[rep + 1])
        near, dist = self.nbr[span], self.dist[span]
        keep = remaining[near]
        near, dist = near[keep], dist[keep]
        order = np.lexsort((near, dist))
        members, distances = [rep], [0.0]
        for j, d in zip(near[order].tolist(), dist[order].tolist()):
            if not transitive and len(members) > 1:
                linked = set(self.neighbours(j).tolist())
                if not all(m in linked or check(int(self.ids[j]), int(self.ids[m]))
                           for m in members[1:]):
                    continue
            members.append(j)
            distances.append(d)
        return members, distances


def find_duplicates(vectors: Vectors, hashes: Mapping[int, bytes], read: Callable[[int], bytes],
                    tier: str = DEFAULT_TIER, threshold: float | None = None,
                    window: tuple[float, float] | None = None,
                    not_duplicates: Iterable[tuple[bytes, bytes]] = (),
                    k: int = NEIGHBOURS, method: str = "auto",
                    progress: Callable[[int, int], None] | None = None,
                    workers: int | None = None) -> list[tuple[list[int], list[float]]]:
    """Groups of copies as (member ids, cosine distances to the representative), largest
    first: the representative first, the others nearest first.

    `hashes`: each image's content hash (the `exact` tier's pairs, and the key of
    `not_duplicates`: pairs of hashes a person said are not copies, smaller first); `read`:
    the bytes of an image by id (the `pixels` and `near` tiers' checks); `threshold` or
    `window` (lowest, highest): the cosine distances of candidate pairs (for `similar`, of
    the pairs themselves); `method`: how the candidates are found (knn_graph.kneighbors);
    `progress(checked, total)`: how many candidate pairs the tier's check has done (`near`
    and `pixels`); `workers`: its threads (PairCheck)."""
    lo, hi = check_window(tier, threshold, window)
    check = PairCheck(tier, read, lo, hi, vectors, hashes, not_duplicates, workers)
    if tier == "exact":
        same_bytes = exact_pairs(hashes)
        pairs = Pairs(same_bytes.a, same_bytes.b, vectors.distances(same_bytes.a, same_bytes.b))
    else:
        pairs = neighbour_pairs(vectors, vectors, k, lo, hi, method=method)
    verified = check.verify(pairs, progress)
    groups = complete_groups(verified, check, transitive=tier in ("exact", "pixels"))
    return sorted(groups, key=lambda g: (-len(g[0]), g[0][0]))


def find_copies_across(queries: Vectors, among: Vectors, check_pair: Callable[[int, int], bool],
                       k: int = NEIGHBOURS, lo: float = 0.0,
                       hi: float = CANDIDATE_DISTANCE["near"], method: str = "auto"
                       ) -> list[tuple[int, list[int], list[float]]]:
    """For each image of `queries` that has copies in `among` (another collection): (its id,
    the ids of its copies there, nearest first, their cosine distances). `check_pair(q, a)`
    is the tier's check of a query image and an image of `among`."""
    pairs = neighbour_pairs(queries, among, k, lo, hi, same=False, method=method)
    found: dict[int, list[tuple[float, int]]] = {}
    for q, a, d in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.d.tolist()):
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
    folder = os.path.abspath(folder).rstrip(os.sep) + os.sep
    return path.startswith(folder)


__all__ = ["CANDIDATE_DISTANCE", "DEFAULT_TIER", "NEIGHBOURS", "TIERS", "DuplicateGroup",
           "Pairs", "Vectors", "check_window", "choose_keeper", "find_copies_across",
           "find_duplicates"]
