"""Several server processes behind one port (`serve(..., workers=N)`): N fresh interpreters
(uvicorn's worker `Process`, spawned), each accepting on a socket of its own that `serve`
bound to the one port, kept alive and all stopped on Ctrl-C (`run_workers`). Each imports
`worker_app`, which reads its settings from the LOOKALIKE_VIEWER_WORKER environment variable
(JSON: `db`, `allowed_hosts`) and opens the collection on its own.

What the workers share goes through files beside the database, each guarded by a lock they
share (locks.py): the graph index (`<db>.faiss/`: one builds it, the others wait and load
it), maps, analyses and groups of copies (one computes, the others wait and read what it kept:
jobs.py, reviews.py), the thumbnails (`<db>.thumbs/`). Each holds its own search matrix's
8-bit pass and its own copy of the graph in memory."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from ..catalogue.paths import viewer_folder
from ..errors import LookalikeError
from ..locks import hold_for_life
from .app import create_app
from .warmup import announce_search_choice

#: The environment variable that hands a worker its settings.
ENVIRONMENT = "LOOKALIKE_VIEWER_WORKER"

def server_config(app, **options):
    """uvicorn's settings for the viewer. HTTP is parsed by httptools (a dependency; uvicorn
    takes it when installed): h11, in Python, cost a quarter of the throughput of graph
    searches from 20 clients."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                          **options)


def run_workers(db: Path, allowed_hosts: list[str] | None, sockets: list, workers: int
                ) -> None:
    """Serve the collection in `db` from `workers` processes until SIGINT or SIGTERM stops
    them all: worker i accepts on `sockets[i]` (one each, bound to one port with
    SO_REUSEPORT: the kernel spreads new connections evenly), or all on `sockets[0]` where
    there is only one. A worker that dies is started again on its socket; one that cannot
    start stops them all.

    Not uvicorn's `Multiprocess` supervisor: it hands every worker the same socket, and a
    worker's event loop accepts every connection waiting at once, so 20 clients connecting
    together went 19 to one worker and 1 to the other (about 10% more requests a second
    than one process, where two processes with 10 clients each doubled them). Its `Process`
    (a spawned worker running `uvicorn.Server`) is used as it is."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Process

    config = server_config(f"{__name__}:worker_app", factory=True, workers=workers)
    settings = json.dumps({"db": os.fspath(Path(db).resolve()),
                           "allowed_hosts": allowed_hosts})
    own = [[sockets[i % len(sockets)]] for i in range(workers)]
    failed = False
    with _environment(ENVIRONMENT, settings), _stopped_by_signals() as stop:
        pool = [Process(config, own[i]) for i in range(workers)]
        for process in pool:
            process.start()
        while not stop.wait(0.5):
            for i, process in enumerate(pool):
                # Alive is enough: a worker busy in a computation that holds Python's lock
                # for seconds (a map) is not hung, and must not be killed as uvicorn would.
                if process.process.is_alive():
                    continue
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    failed = True
                    stop.set()
                    break
                pool[i] = Process(config, own[i])
                pool[i].start()
        for process in pool:
            process.terminate()
        for process in pool:
            process.join()
    if failed:
        raise LookalikeError(f"{db}: the viewer's worker processes could not start (the line "
                             "above says why)")


def worker_app():
    """The app of one worker process (its settings from ENVIRONMENT). Of a server's workers,
    the first to start says which exact pass its warm-up chose, for all of them."""
    try:
        settings = json.loads(os.environ[ENVIRONMENT])
        db = Path(settings["db"])
        app = create_app(db, allowed_hosts=settings["allowed_hosts"])
    except (KeyError, ValueError, TypeError):
        _fail(f"{__name__}:worker_app is the app of the worker processes of `lookalike serve "
              f"--workers N`, which hands each its settings in {ENVIRONMENT}")
    except LookalikeError as exc:
        _fail(str(exc))
    if hold_for_life(viewer_folder(db) / "announce.lock"):
        announce_search_choice()
    return app


def _fail(message: str):
    """A worker that cannot start: one line, and the exit status that tells uvicorn's
    supervisor to stop (rather than start it again)."""
    from uvicorn.config import STARTUP_FAILURE

    print(f"lookalike: error: {message}", file=sys.stderr, flush=True)
    sys.exit(STARTUP_FAILURE)


@contextmanager
def _stopped_by_signals():
    """An event set by SIGINT (Ctrl-C) or SIGTERM while the block runs; the handlers before
    are put back after it."""
    stop = threading.Event()
    caught = [signal.SIGINT, signal.SIGTERM]
    before = {sig: signal.getsignal(sig) for sig in caught}
    for sig in caught:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


@contextmanager
def _environment(name: str, value: str):
    """`name` set to `value` while the block runs (spawned workers inherit it)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


__all__ = ["ENVIRONMENT", "run_workers", "server_config", "worker_app"]
