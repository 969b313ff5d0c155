"""What the web app's request handlers share: the collection, the thumbnail cache, the upload
limit, the warm-up and the lock of upload searches, reached by a route through
`Depends(get_state)`.

Requests run in uvicorn's thread pool and share the collection; each thread reads the catalogue
on its own SQLite connection, so catalogue reads need no lock. The lock keeps one upload search
at a time (it may load a model) and guards the hand-over of the warm-up's search matrices.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..api import Collection
from .files import ThumbnailCache
from .jobs import Jobs
from .reviews import DuplicateReviews
from .warmup import WarmUp


class FairLock:
    """A lock granted in order of arrival: under load every request waits about as long as
    the others (threading.Lock favours whoever asks last, which doubles the slowest waits)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._busy = False
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._busy:
                self._busy = True
                return
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # the holder hands the lock over in __exit__

    def __exit__(self, *exc) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._busy = False


@dataclass
class ViewerState:
    """One app's shared state (`app.state.viewer`)."""

    collection: Collection
    thumbnails: ThumbnailCache
    max_upload_bytes: int
    lock: FairLock
    warmup: WarmUp
    duplicates: DuplicateReviews
    jobs: Jobs                      # maps and analyses being computed


async def get_state(request: Request) -> ViewerState:
    # async: FastAPI runs a plain-def dependency in the thread pool, one more hop per request
    return request.app.state.viewer


#: A route's parameter for the app's shared state.
State = Annotated[ViewerState, Depends(get_state)]
