"""Answers read from the catalogue, kept until it changes: the store's generation counter
moves with every write, and a cache tagged with it is never stale. The collection's counts
and the search engine's loaded matrices are kept this way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ByGeneration:
    """A cache of answers valid for one catalogue generation; a new generation empties it.

    Safe to share between threads and between Collections open on the same database: an
    answer another thread is computing is waited for rather than computed twice (a count reads
    every row, 10-20 ms at 100,000 images; a search matrix loads in seconds).
    """

    def __init__(self, limit: int = 1024):
        self.limit = limit  # many different keys (name filters of the web grid): start again
        self._lock = threading.Lock()
        self._generation = -1
        self._values: dict[Hashable, Any] = {}
        self._computing: dict[Hashable, threading.Event] = {}

    def get(self, generation: int, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer for `key` at `generation`, computed by `compute()` if not known yet."""
        while True:
            with self._lock:
                if generation != self._generation:
                    self._generation, self._values = generation, {}
                    self._computing = {}
                if key in self._values:
                    return self._values[key]
                busy = self._computing.get(key)
                if busy is None:
                    mine = self._computing[key] = threading.Event()
                    values = self._values
                    break
            busy.wait()  # then look again: done, or failed (and this thread tries)
        try:
            value = compute()
            with self._lock:
                if values is self._values:  # not a newer generation meanwhile
                    if len(values) >= self.limit:
                        values.clear()
                    values[key] = value
            return value
        finally:
            with self._lock:
                if self._computing.get(key) is mine:
                    del self._computing[key]
            mine.set()

    def peek(self, generation: int, key: Hashable) -> Any:
        """The answer for `key` at `generation` if it is known, else None (nothing computed,
        nothing waited for)."""
        with self._lock:
            if generation != self._generation:
                return None
            return self._values.get(key)

    def clear(self) -> None:
        """Forget every answer (they would be recomputed at the next generation anyway)."""
        with self._lock:
            self._values = {}
            self._generation = -1


__all__ = ["ByGeneration"]
