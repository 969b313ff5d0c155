"""What `--cluster ADDRESS` names, and the Dask client it opens: `local` or `local:N` (a
`LocalCluster` of N worker processes on this machine), a scheduler address such as
`tcp://HOST:8786`, or a `dask.distributed.Client` the caller already holds.

Dask is an optional dependency (`pip install 'lookalike[cluster]'`): nothing here imports it
until a cluster is asked for."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import LookalikeError

if TYPE_CHECKING:
    from distributed import Client

#: How long a scheduler address may take to answer before the run gives up with one line.
CONNECT_TIMEOUT_S = 5.0

_LOCAL = re.compile(r"local(?::(\d+))?")
_REMOTE = re.compile(r"(tcp|tls|ws|wss|inproc|ucx)://\S+")


class ClusterError(LookalikeError):
    """A cluster address that is malformed or cannot be reached."""


def dask_distributed() -> Any:
    """The `distributed` package, or ClusterError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ClusterError("--cluster needs Dask distributed: pip install "
                           "'lookalike[cluster]'") from None
    return distributed


def local_workers(address: str) -> int | None:
    """N for `local:N` (`local` alone: one worker per core), None for any other address;
    a malformed address is refused with one line."""
    match = _LOCAL.fullmatch(address.strip())
    if match:
        workers = int(match.group(1)) if match.group(1) else max(1, os.cpu_count() or 1)
        if workers < 1:
            raise ClusterError(f"--cluster {address}: local:N needs N of 1 or more workers")
        return workers
    if _REMOTE.fullmatch(address.strip()) or re.fullmatch(r"[\w.-]+:\d+", address.strip()):
        return None
    raise ClusterError(f"--cluster {address!r} is not a cluster address: give local, local:N "
                       "or a scheduler address such as tcp://HOST:8786")


def threads_per_local_worker(workers: int) -> int:
    """Each local worker process gets an equal share of this machine's cores (at least one),
    so that N workers' inference threads do not fight over the same cores."""
    return max(1, (os.cpu_count() or 1) // workers)


@contextlib.contextmanager
def connect(cluster: str | Client, *, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Client]:
    """A Dask client for `cluster`, closed (with any LocalCluster it started) on exit; a client
    handed in is used as it is and left open for its owner."""
    distributed = dask_distributed()
    if isinstance(cluster, distributed.Client):
        yield cluster
        return
    if not isinstance(cluster, str):
        raise ClusterError(f"cluster must be an address or a dask.distributed.Client, "
                           f"not {type(cluster).__name__}")
    workers = local_workers(cluster)
    if workers is not None:
        with distributed.LocalCluster(
                n_workers=workers, threads_per_worker=threads_per_local_worker(workers),
                processes=True, dashboard_address=None) as local, \
                distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(cluster.strip(), timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {cluster} within {timeout:g} s "
                           f"({type(exc).__name__}); start one with `dask scheduler`, or use "
                           f"--cluster local") from None
    with client:
        yield client
