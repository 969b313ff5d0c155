"""`lookalike cluster`: Dask worker processes on this machine, with lookalike importable, that
join a scheduler (given, or started here) and serve `index --cluster` until Ctrl-C.

Plain Dask: the same as `dask scheduler` plus `dask worker ADDRESS --nworkers N`, with each
worker's threads set to its share of the cores (one shard per thread, one inference thread
per shard: distributed/indexing.py)."""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from .client import (
    CONNECT_TIMEOUT_S,
    ClusterError,
    dask_distributed,
    threads_per_local_worker,
)

#: The port Dask's scheduler listens on by default (`dask scheduler`).
DEFAULT_PORT = 8786


def serve_workers(workers: int, *, scheduler: str | None = None, host: str = "127.0.0.1",
                  port: int = DEFAULT_PORT, threads: int | None = None,
                  ready: Callable[[str], None] = print) -> None:
    """Run `workers` worker processes of `threads` threads each (default: an equal share of
    this machine's cores) until interrupted (KeyboardInterrupt). They join `scheduler`, or a
    scheduler started here on `host`:`port` (port 0: any free one); `ready` is told the
    scheduler's address once all workers are up."""
    if workers < 1:
        raise ClusterError(f"--workers must be 1 or more, not {workers}")
    threads = threads or threads_per_local_worker(workers)
    # Dask's INFO lines (a dozen per worker) would bury the address printed; warnings stay.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    asyncio.run(_serve(workers, threads, scheduler, host, port, ready))


async def _serve(workers: int, threads: int, scheduler: str | None, host: str, port: int,
                 ready: Callable[[str], None]) -> None:
    distributed = dask_distributed()
    async with contextlib.AsyncExitStack() as stack:
        if scheduler is None:
            try:
                started = await stack.enter_async_context(
                    distributed.Scheduler(host=host, port=port, dashboard=False))
            except OSError as exc:
                raise ClusterError(f"cannot start a Dask scheduler on {host}:{port} "
                                   f"({exc.strerror or exc}); choose another --port or --host"
                                   ) from None
            scheduler = started.address
        for _ in range(workers):
            try:
                await stack.enter_async_context(distributed.Nanny(
                    scheduler, nthreads=threads, death_timeout=CONNECT_TIMEOUT_S))
            except (OSError, TimeoutError):
                raise ClusterError(f"cannot reach the Dask scheduler at {scheduler} within "
                                   f"{CONNECT_TIMEOUT_S:g} s; start one with `lookalike cluster`"
                                   " (without --scheduler) or `dask scheduler`") from None
        ready(scheduler)
        await asyncio.Event().wait()  # until Ctrl-C cancels this task
