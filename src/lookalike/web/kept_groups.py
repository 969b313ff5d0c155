"""The groups of copies as a server's worker processes share them: kept beside the database
(`<db>.viewer/duplicates/`, one JSON file per query, catalogue generation and not-duplicates
marks), computed by one process at a time under a lock they share, which the others wait for
and then read what it kept; and the progress of the computation under way, for a poll that
reaches another process."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..analysis.duplicates import DuplicateGroup
from ..catalogue.paths import viewer_folder
from ..fileio import write_atomically
from ..locks import is_held

#: How many answers are kept on disk (the newest); each process also keeps its last few.
KEEP = 16
#: Progress is written at most this often (seconds).
PROGRESS_EVERY = 0.5

Stamp = tuple[int, int] | None


class KeptGroups:
    """The groups kept beside one database; `rows(ids)` reads catalogue rows in that order."""

    def __init__(self, db: Path, rows: Callable[[list[int]], list[dict]]):
        self.folder = viewer_folder(db) / "duplicates"
        self.lock = viewer_folder(db) / "duplicates.lock"
        self._rows = rows
        self._progress_written = 0.0

    def stamp(self, key: tuple) -> Stamp:
        """(size, modification time) of the groups kept for `key`; None when none are."""
        try:
            found = self._path(key).stat()
        except OSError:
            return None
        return found.st_size, found.st_mtime_ns

    def read(self, key: tuple) -> tuple[list[DuplicateGroup], Stamp] | None:
        """The groups kept for `key`, with their stamp; None when none are (or unreadable)."""
        path = self._path(key)
        try:
            stamp = self.stamp(key)
            kept = json.loads(path.read_text())
            if kept["key"] != repr(key):  # a digest's collision, however unlikely
                return None
            numbers, ids, distances, keepers = zip(*kept["groups"]) if kept["groups"] else \
                ((), (), (), ())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        every = self._rows([i for members in ids for i in members])
        by_id = {row["id"]: row for row in every}
        if len(by_id) != sum(map(len, ids)):  # an image gone since: not the kept state
            return None
        return [DuplicateGroup(n, list(m), list(d), k, [by_id[i] for i in m])
                for n, m, d, k in zip(numbers, ids, distances, keepers)], stamp

    def write(self, key: tuple, groups: Sequence[DuplicateGroup], replace: bool = True
              ) -> Stamp:
        """Keep `groups` for `key` (unless kept already and not `replace`); their stamp."""
        path = self._path(key)
        if replace or not path.is_file():
            text = json.dumps({"key": repr(key), "groups": [
                [g.number, g.ids, g.distances, g.keep] for g in groups]})
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_atomically(path, text.encode(), mode=0o600)
            except OSError:
                return None  # a read-only folder: each process keeps its own
            self._forget_old()
        return self.stamp(key)

    def report(self, checked: int, total: int) -> None:
        """The progress of this process's computation, for the others (now and then)."""
        now = time.monotonic()
        if now - self._progress_written >= PROGRESS_EVERY:
            self._progress_written = now
            try:
                write_atomically(self.folder / "progress.json",
                                 json.dumps([checked, total]).encode())
            except OSError:
                pass

    def finished(self) -> None:
        self._progress_written = 0.0
        try:
            os.unlink(self.folder / "progress.json")
        except OSError:
            pass

    def progress(self) -> tuple[int, int] | None:
        """(pairs checked, pairs to check) of another process's computation; None when none
        is under way."""
        if not is_held(self.lock):
            return None
        try:
            checked, total = json.loads((self.folder / "progress.json").read_text())
            return int(checked), int(total)
        except (OSError, ValueError, TypeError):
            return 0, 0

    def _path(self, key: tuple) -> Path:
        return self.folder / f"{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.json"

    def _forget_old(self) -> None:
        """Remove all but the KEEP newest answers (files this module wrote, nothing else)."""
        try:
            answers = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        except OSError:
            return
        answers = [p for p in answers if p.name != "progress.json"]
        for old in answers[:-KEEP]:
            try:
                old.unlink()
            except OSError:
                pass


__all__ = ["KeptGroups"]
