"""Slow computations the viewer asks for (a map, an analysis): run in a worker thread on a
Collection of its own (sharing what the viewer's has loaded), one at a time and never under
the viewer's lock. A request waits a little for its answer; past that it is told "computing",
with what is being done and for how long, and asks again (the page polls) rather than hang
for the two minutes a first UMAP of 100,000 images takes.

Across a server's worker processes (a poll may reach any of them), a computation holds a lock
that they share (`lock_path`): one computes, the others wait for it and then find the answer
where it left it (a map in `<db>.maps/`, an analysis in the catalogue), so no two compute the
same thing."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as WaitedLong
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import Collection
from ..catalogue.paths import viewer_folder
from ..locks import held


@dataclass
class Job:
    future: Future
    what: str           # what is being computed, for a person
    started: float
    elsewhere: bool = False  # waiting for another process that computes it


def lock_path(db: Path, name: str) -> Path:
    """The lock file that one of a server's processes holds while it computes `name`."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return viewer_folder(db) / "locks" / f"{digest}.lock"


class Jobs:
    """One app's slow computations, by key: a request joins the one in flight for its key."""

    def __init__(self, collection: Collection):
        self.collection = collection
        self._guard = threading.Lock()
        self._jobs: dict[Any, Job] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="lookalike-jobs")
        self._side: Collection | None = None

    def answer(self, key: Any, what: str, compute: Callable[[Collection], Any],
               wait: float, *, lock: str) -> tuple[bool, Any]:
        """(True, the answer of `compute(side collection)`) once it is there within `wait`
        seconds, else (False, a line that says what is being computed and for how long).
        An error of `compute` is raised to the request that takes the answer. `lock`: the
        name of what `compute` computes and keeps (a map of a model by a method, say): while
        one process computes it, the others wait (`lock_path`), then compute again, finding
        it kept."""
        with self._guard:
            job = self._jobs.get(key)
            if job is None:
                job = Job(Future(), what, time.monotonic())
                job.future = self._worker.submit(self._run, compute, job, lock)
                self._jobs[key] = job
        try:
            result = job.future.result(timeout=max(0.0, wait))
        except WaitedLong:
            return False, self._progress(job)
        except BaseException:
            self._forget(key, job)
            raise
        self._forget(key, job)  # kept by the collection's own caches, not here
        return True, result

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        if self._side is not None:
            self._side.close()

    def _run(self, compute: Callable[[Collection], Any], job: Job, lock: str) -> Any:
        if self._side is None:
            self._side = Collection.open(self.collection.store.path, share_with=self.collection)

        def waiting() -> None:
            job.elsewhere = True
        with held(lock_path(self.collection.store.path, lock), on_wait=waiting):
            job.elsewhere = False
            return compute(self._side)

    def _forget(self, key: Any, job: Job) -> None:
        with self._guard:
            if self._jobs.get(key) is job:
                del self._jobs[key]

    def _progress(self, job: Job) -> str:
        waiting = sum(1 for j in self._jobs.values() if not j.future.running()
                      and not j.future.done())
        seconds = time.monotonic() - job.started
        if not job.future.running():
            return f"{job.what}: waiting for {waiting} other computation(s) to finish"
        if job.elsewhere:
            return f"{job.what}: {seconds:.0f} s so far (in another of the server's processes)"
        return f"{job.what}: {seconds:.0f} s so far"
