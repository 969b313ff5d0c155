"""`--cluster ADDRESS`: what it names, and one clear line when it is wrong or unreachable."""
import socket
import time

import pytest

from lookalike.distributed.client import ClusterError, connect, local_workers


def test_local_addresses_name_their_worker_count():
    assert local_workers("local:3") == 3
    assert local_workers("local") >= 1
    assert local_workers("tcp://10.0.0.5:8786") is None
    assert local_workers("scheduler.lab:8786") is None


@pytest.mark.parametrize("address", ["locale", "local:0", "local:x", "http//nowhere", ""])
def test_a_malformed_address_is_refused_in_one_line(address):
    with pytest.raises(ClusterError, match="cluster") as err:
        local_workers(address)
    assert "\n" not in str(err.value)


@pytest.mark.slow  # over a second on the 2-core machine
def test_an_unreachable_scheduler_is_one_line_within_seconds():
    with socket.socket() as s:       # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    wanted = f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    with pytest.raises(ClusterError, match=wanted), connect(f"tcp://127.0.0.1:{port}", timeout=2):
        pass
    assert time.monotonic() - started < 30    # the 2 s timeout, not Dask's default of 30 s


@pytest.mark.slow
def test_local_n_starts_n_worker_processes_and_closes_them():
    import os
    with connect("local:2") as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids   # processes, not threads
    assert client.status == "closed"
