"""Progress of long runs on stderr: a tqdm bar in a terminal, plain periodic lines otherwise.

A log file or a CI job reads carriage-return bars and escape codes as noise, so when stderr
is not a terminal each bar becomes a line now and then ("embedding: 400/1,903 images (21%),
102 images/s") and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


def progress_bar(total: int, enabled: bool, desc: str, *, position: int | None = None,
                 leave: bool = True, unit: str = "images"):
    """Something with `update(n=1)` and `close()` (and usable in `with`) that shows how far
    a job of `total` images (or other `unit`s) has got; silent when not `enabled` or when
    there is nothing to do."""
    if not enabled or total <= 0:
        return PlainProgress(total, desc, stream=None, unit=unit)
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, unit="img" if unit == "images" else unit.rstrip("s"),
                    desc=desc, dynamic_ncols=True, smoothing=0.1, mininterval=0.5,
                    position=position, leave=leave)
    return PlainProgress(total, desc, stream=sys.stderr, unit=unit)


class PlainProgress:
    """Prints `desc: done/total images (percent), rate images/s` on its own line when another
    tenth of the job is done, at least `min_seconds` after the last line, or `max_seconds`
    after it whatever the progress; and once at the end. Writes nothing when `stream` is None."""

    def __init__(self, total: int, desc: str, stream: TextIO | None, *,
                 min_seconds: float = 2.0, max_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, unit: str = "images"):
        self.total, self.desc, self.stream, self.unit = total, desc, stream, unit
        self.min_seconds, self.max_seconds, self.clock = min_seconds, max_seconds, clock
        self.n = 0
        self.started = self._last_time = clock()
        self._last_n = 0
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.stream is None:
            return
        now = self.clock()
        since = now - self._last_time
        tenth = self.n - self._last_n >= self.total / 10
        if self.n < self.total and (since >= self.max_seconds
                                    or (tenth and since >= self.min_seconds)):
            self._print(now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.stream is not None and self.n > self._last_n:
            self._print(self.clock())

    def _print(self, now: float) -> None:
        elapsed = now - self.started
        rate = f", {self.n / elapsed:,.0f} {self.unit}/s" if elapsed > 0 else ""
        percent = f" ({100 * self.n // self.total}%)" if self.total else ""
        print(f"{self.desc}: {self.n:,}/{self.total:,} {self.unit}{percent}{rate}",
              file=self.stream, flush=True)
        self._last_time, self._last_n = now, self.n

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CountReporter:
    """A `progress(done, total)` callback drawn as a progress bar (made at the first call,
    when the total is known); `close()` ends it."""

    def __init__(self, desc: str, unit: str):
        self.desc, self.unit, self.done = desc, unit, 0
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, True, self.desc, unit=self.unit)
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
