"""The groups of copies the Duplicates view reviews: computed in a worker thread on a Collection
of its own (which shares what the viewer's has loaded), one computation at a time and never
under the viewer's lock, and kept per (query, catalogue generation, not-duplicates marks), so
that coming back to the view is instant and a request for groups being computed waits for
them instead of computing them again. A server's worker processes share them (kept_groups.py):
one computes while the others wait, then they read what it kept, so every process answers the
same groups and none computes what another has."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..analysis.duplicates import DuplicateGroup, check_window
from ..api import Collection
from ..locks import held
from .kept_groups import KeptGroups, Stamp


@dataclass(frozen=True)
class GroupsQuery:
    """What groups are asked for: a tier, the cosine window of its candidate pairs, a model."""

    tier: str
    lo: float
    hi: float
    model: str | None

    @classmethod
    def of(cls, tier: str, threshold: float | None, window: tuple[float, float] | None,
           model: str | None) -> GroupsQuery:
        """Checked at once, so that a bad argument is refused before any work."""
        lo, hi = check_window(tier, threshold, window)
        return cls(tier, lo, hi, model or None)


class DuplicateReviews:
    """One app's groups of copies, cached (the last KEEP answers)."""

    KEEP = 8

    def __init__(self, collection: Collection):
        self.collection = collection
        self.computations = 0   # how many times groups were computed (not taken from the cache)
        self._progress: tuple[int, int] | None = None
        self._waiting = False   # for another process's computation
        self._guard = threading.Lock()
        self._answers: OrderedDict[tuple, Future[list[DuplicateGroup]]] = OrderedDict()
        self._stamps: dict[tuple, Stamp] = {}  # of the kept groups each answer was read as
        self._kept = KeptGroups(collection.store.path, collection.store.rows)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="lookalike-duplicates")
        self._side: Collection | None = None

    def groups(self, query: GroupsQuery, fresh: bool = False) -> list[DuplicateGroup]:
        """The groups `query` asks for: cached, being computed (waited for), or computed now
        (`fresh`: computed again whatever is cached)."""
        key = self._key(query)
        with self._guard:
            future = self._answers.get(key)
            failed = future is not None and future.done() and future.exception() is not None
            if future is None or failed or (fresh and future.done()) or self._outdated(key):
                future = self._worker.submit(self._compute, query, key, fresh)
                self._answers[key] = future
            self._answers.move_to_end(key)
            self._evict()
        return future.result()

    @property
    def progress(self) -> tuple[int, int] | None:
        """(pairs checked, pairs to check) of the computation under way, in this process or
        another of the server's; None when there is none."""
        local = self._progress
        if local is not None and not self._waiting:
            return local
        return self._kept.progress()

    def ready(self, query: GroupsQuery, start: bool = False) -> list[DuplicateGroup] | None:
        """The groups `query` asks for if they are cached, else None (`start`: and have them
        computed meanwhile, as `groups` would): what the Map view colours by, without waiting."""
        key = self._key(query)
        with self._guard:
            future = self._answers.get(key)
            failed = future is not None and future.done() and future.exception() is not None
            if (future is None or failed or self._outdated(key)) and start:
                future = self._worker.submit(self._compute, query, key, False)
                self._answers[key] = future
                self._evict()
        if future is None or not future.done():
            return None
        return future.result()  # an error of the computation is the request's

    def mark_not_duplicates(self, ids: list[int], marked: bool = True) -> int:
        """`Collection.mark_not_duplicates`; cached groups of the marks before become, without
        a computation, those groups less any group of which two members are now marked (when
        every such group lies within `ids`: the view marks a whole group at a time)."""
        before = self._marks()
        changed = self.collection.mark_not_duplicates(ids, not_duplicates=marked)
        after = self._marks()
        if not marked or before == after:
            return changed  # an undo finds the answer before the marks still cached
        chosen = set(ids)
        with self._guard:
            for key, future in list(self._answers.items()):
                if key[-1] != before or not future.done() or future.exception() is not None:
                    continue
                kept: list[DuplicateGroup] = []
                dropped: list[DuplicateGroup] = []
                for g in future.result():
                    (dropped if len(chosen.intersection(g.ids)) >= 2 else kept).append(g)
                if all(chosen.issuperset(g.ids) for g in dropped):
                    derived: Future[list[DuplicateGroup]] = Future()
                    derived.set_result(kept)
                    new_key = key[:-1] + (after,)
                    self._answers[new_key] = derived
                    # kept for the other processes too, unless one kept them first
                    self._stamps[new_key] = self._kept.write(new_key, kept, replace=False)
            self._evict()
        return changed

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._side is not None:
            self._side.close()

    # -- inside ------------------------------------------------------------------------------

    def _key(self, query: GroupsQuery) -> tuple:
        store = self.collection.store
        return (query, store.generation, self._marks())

    def _marks(self) -> str:
        """A digest of every not-duplicates mark (they are few: pairs a person marked)."""
        digest = hashlib.sha256()
        for a, b in self.collection.store.not_duplicates():
            digest.update(a + b"/" + b)
        return digest.hexdigest()

    def _outdated(self, key: tuple) -> bool:
        """Whether another process has kept other groups for `key` since this one's answer
        (computed again with `fresh`): then this process reads them rather than answer its
        own."""
        future = self._answers.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return False
        return self._kept.stamp(key) != self._stamps.get(key)

    def _compute(self, query: GroupsQuery, key: tuple, fresh: bool) -> list[DuplicateGroup]:
        def waiting() -> None:
            self._waiting = True
        self._progress = (0, 0)
        try:
            with held(self._kept.lock, on_wait=waiting):
                self._waiting = False
                kept = None if fresh else self._kept.read(key)
                if kept is not None:
                    self._stamps[key] = kept[1]
                    return kept[0]
                groups = self._computed(query)
                self._stamps[key] = self._kept.write(key, groups)
                return groups
        finally:
            self._progress = None
            self._waiting = False

    def _computed(self, query: GroupsQuery) -> list[DuplicateGroup]:
        if self._side is None:
            self._side = Collection.open(self.collection.store.path, share_with=self.collection)
        self.computations += 1

        def report(checked: int, total: int) -> None:
            self._progress = (checked, total)
            self._kept.report(checked, total)

        try:
            return self._side.duplicates(query.tier, range=(query.lo, query.hi),
                                         model=query.model, progress=report)
        finally:
            self._kept.finished()

    def _evict(self) -> None:
        while len(self._answers) > self.KEEP:
            oldest = next(iter(self._answers))
            if not self._answers[oldest].done():
                break
            del self._answers[oldest]
