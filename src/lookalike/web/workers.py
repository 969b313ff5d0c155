"""Several server processes behind one port (`serve(..., workers=N)`): uvicorn's own
supervisor spawns N fresh interpreters that accept from the socket `serve` bound, keeps them
alive, and stops them all on Ctrl-C. Each worker imports `worker_app`, which reads its
settings from the LOOKALIKE_VIEWER_WORKER environment variable (JSON: `db`, `allowed_hosts`)
and opens the collection on its own.

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
from contextlib import contextmanager
from pathlib import Path

from ..catalogue.paths import viewer_folder
from ..errors import LookalikeError
from ..locks import hold_for_life
from .app import create_app
from .warmup import announce_search_choice

#: The environment variable that hands a worker its settings.
ENVIRONMENT = "LOOKALIKE_VIEWER_WORKER"

#: Seconds a worker may leave the supervisor's health check unanswered before it is taken
#: for hung and replaced (uvicorn's default, 5 s, is shorter than some computations that hold
#: Python's lock: a worker must not be killed in the middle of a map).
HEALTH_CHECK_SECONDS = 120


def server_config(app, **options):
    """uvicorn's settings for the viewer. HTTP is parsed by httptools (a dependency; uvicorn
    takes it when installed): h11, in Python, cost a quarter of the throughput of graph
    searches from 20 clients."""
    import uvicorn

    return uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                          **options)


def run_workers(db: Path, allowed_hosts: list[str] | None, sock, workers: int) -> None:
    """Serve the collection in `db` from `workers` processes accepting on `sock`, until
    SIGINT or SIGTERM stops them all."""
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import SIGNALS, Multiprocess

    config = server_config(f"{__name__}:worker_app", factory=True, workers=workers,
                           timeout_worker_healthcheck=HEALTH_CHECK_SECONDS)
    settings = json.dumps({"db": os.fspath(Path(db).resolve()),
                           "allowed_hosts": allowed_hosts})
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    try:
        with _environment(ENVIRONMENT, settings):
            supervisor = Multiprocess(config, sockets=[sock])
            supervisor.run()
    finally:
        for sig, handler in handlers.items():  # the supervisor's own stay behind otherwise
            signal.signal(sig, handler)
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
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
