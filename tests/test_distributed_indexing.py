"""`index --cluster`: shards embedded on real Dask worker processes, committed by the driver;
the catalogue of a plain run, whatever dies on the way."""
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import lookalike
from imagefactory import pattern, write_bad_files
from lookalike.distributed.client import ClusterError
from lookalike.distributed.indexing import ShardWork, cluster_stage, embed_shard
from lookalike.errors import LookalikeError
from lookalike.ingest.folders import ImageFile
from lookalike.ingest.pipeline import IndexOptions

MODEL = "squeezenet"  # the fastest model; the others share all of this code
SHARD = 5             # the broken files below make one whole shard of their own


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """5 broken files (the first shard: the walk takes a_broken first), 30 distinct JPEGs in
    3 folders and a copy of one of them in another shard."""
    root = tmp_path_factory.mktemp("cluster") / "photos"
    broken = write_bad_files(root / "a_broken")
    assert len(broken) == SHARD
    for i in range(30):
        folder = root / f"group{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pattern(256, 192, seed=i)).save(folder / f"img{i:02d}.jpg", quality=90)
    (root / "z_copies").mkdir()
    (root / "z_copies" / "copy.jpg").write_bytes((root / "group0" / "img00.jpg").read_bytes())
    return root


@pytest.fixture(scope="module")
def plain(photos, tmp_path_factory):
    """The catalogue and report of a plain run, which every cluster run must match."""
    db = tmp_path_factory.mktemp("plain") / "plain.db"
    with lookalike.Collection.index([photos], db=db, model=MODEL) as col:
        report = col.last_report
    assert (report.embedded, len(report.skipped)) == (31, SHARD)  # the copy in one batch
    return catalogue(db), report


@pytest.fixture(scope="module")
def client():
    """Two worker processes of one thread each, shared by the tests of this module."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def catalogue(db) -> dict[str, tuple]:
    """path -> (catalogue facts, vector or None), read straight from the database."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT i.path, i.category, i.size, i.width, i.height, i.content_hash, i.skip_reason,"
            " q.content_hash IS NOT NULL,"
            " (SELECT group_concat(t.class) FROM (SELECT class FROM tags WHERE content_hash ="
            "  i.content_hash AND model = ? ORDER BY class) t),"    # its ImageNet tags
            " e.vector FROM images i"
            " LEFT JOIN embeddings e ON e.content_hash = i.content_hash AND e.model = ?"
            " LEFT JOIN image_quality q ON q.content_hash = i.content_hash",
            (MODEL, MODEL)).fetchall()
    finally:
        con.close()
    return {r[0]: (r[1:-1], None if r[-1] is None else np.frombuffer(r[-1], "<f4"))
            for r in rows}


def assert_same_catalogue(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    assert any(facts[-1] for facts, _ in want.values())  # tags kept, the same on the workers
    for path, (facts, vector) in want.items():
        assert got[path][0] == facts, path
        if vector is None:
            assert got[path][1] is None, path
        else:  # the same model build: equal to float32 rounding
            np.testing.assert_allclose(got[path][1], vector, rtol=1e-5, atol=1e-5, err_msg=path)


def counts(report) -> tuple:
    """A cluster run embeds the copy's content once, in the shard that ends first, and takes
    the other from the cache; a plain run embeds both in one batch (and stores one vector)."""
    return (report.embedded + report.from_cache, report.unchanged, sorted(report.skipped))


@pytest.mark.slow
def test_a_cluster_run_stores_what_a_plain_run_stores(photos, plain, client, tmp_path):
    want, plain_report = plain
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        report = col.add(photos, model=MODEL, cluster=client, shard_size=SHARD)
        assert counts(report) == counts(plain_report)  # the broken shard: skipped, with reasons
        assert (report.embedded, report.from_cache) == (30, 1)  # the copy's shard knew it not
        assert_same_catalogue(catalogue(tmp_path / "c.db"), want)
        again = col.add(photos, model=MODEL, cluster=client, shard_size=SHARD)
    assert (again.embedded, again.unchanged, len(again.skipped)) == (0, 31, SHARD)


def _executing(dask_worker) -> int:
    return len(dask_worker.state.executing)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_a_worker_killed_mid_shard_costs_only_that_shard(photos, plain, client, tmp_path):
    want, plain_report = plain
    client.restart()  # fresh worker processes: the first shard of each loads the model
    pids = client.run(os.getpid)
    col = lookalike.Collection.create(tmp_path / "k.db")
    outcome: dict = {}

    def index() -> None:
        try:
            outcome["report"] = col.add(photos, model=MODEL, cluster=client, shard_size=SHARD)
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    run = threading.Thread(target=index)
    run.start()
    victim = None
    while victim is None and run.is_alive():
        busy = client.run(_executing)
        victim = next((address for address, n in busy.items() if n), None)
    assert victim is not None, "the run ended before any shard was seen in flight"
    os.kill(pids[victim], signal.SIGKILL)
    run.join(timeout=300)
    col.close()
    assert "error" not in outcome, outcome.get("error")
    assert not _alive(pids[victim])
    assert counts(outcome["report"]) == counts(plain_report)
    assert_same_catalogue(catalogue(tmp_path / "k.db"), want)


def index_command(root, db, *extra):
    return [sys.executable, "-m", "lookalike", "index", str(root), "--db", str(db), "--model",
            MODEL, "--quiet", "--shard-size", str(SHARD), *map(str, extra)]


def descendants(pid: int) -> set[int]:
    """The processes started by `pid` and by those, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def committed_rows(db) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            return con.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:  # not made yet
        return 0


@pytest.mark.slow
def test_a_killed_driver_loses_only_shards_in_flight_and_a_rerun_resumes(photos, plain,
                                                                         tmp_path):
    want, _ = plain
    db = tmp_path / "killed.db"
    proc = subprocess.Popen(index_command(photos, db, "--cluster", "local:1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while committed_rows(db) < 2 * SHARD and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = catalogue(db)
    assert 2 * SHARD <= len(partial) <= len(want)
    for path, (facts, _) in partial.items():  # what is committed is whole
        assert facts == want[path][0]
    usable = sum(vector is not None for _, vector in partial.values())

    deadline = time.monotonic() + 60  # the workers end with their driver
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)

    rerun = subprocess.run(index_command(photos, db, "--cluster", "local:1"), check=True,
                           capture_output=True, text=True, timeout=300)
    assert re.search(rf"unchanged +{usable}\n", rerun.stdout), rerun.stdout
    assert_same_catalogue(catalogue(db), want)


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_from_the_cli(photos, tmp_path):
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        started = time.monotonic()
        proc = subprocess.run(index_command(photos, tmp_path / "u.db", "--cluster", address),
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"lookalike: error: cannot reach the Dask scheduler at {address} within 5 s "
        "(OSError); start one with `dask scheduler`, or use --cluster local"], proc.stderr
    assert time.monotonic() - started < 60
    assert not (tmp_path / "u.db").exists()  # nothing stored: no database left behind


@pytest.mark.slow
def test_lookalike_cluster_serves_workers_that_index(photos, plain, tmp_path):
    want, _ = plain
    server = subprocess.Popen([sys.executable, "-m", "lookalike", "cluster", "--workers", "1",
                               "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        address, deadline = None, time.monotonic() + 120
        while address is None and time.monotonic() < deadline and server.poll() is None:
            if select.select([server.stdout], [], [], 1)[0]:
                line = server.stdout.readline()
                if "scheduler tcp://" in line:
                    address = line.rsplit(" ", 1)[1].strip()
        assert address, server.stderr.read() if server.poll() is not None else "no address"
        subprocess.run(index_command(photos, tmp_path / "s.db", "--cluster", address),
                       check=True, timeout=300)
        assert_same_catalogue(catalogue(tmp_path / "s.db"), want)
    finally:
        server.send_signal(signal.SIGINT)
        rc = server.wait(timeout=60)
    assert rc == 0


def test_a_worker_that_cannot_see_the_files_says_so_in_one_line(tmp_path):
    missing = tmp_path / "not-on-this-worker"
    item = ImageFile(str(missing / "a.png"), os.fsencode(missing / "a.png"), str(missing), "a",
                     None, 10, 0)
    with pytest.raises(ClusterError, match="cannot see .*not-on-this-worker.*same paths") as err:
        embed_shard([item], ShardWork(MODEL, IndexOptions(threads=1, progress=False), {}))
    assert "\n" not in str(err.value)


def test_a_shard_size_below_one_is_refused():
    with pytest.raises(LookalikeError, match="shard size must be 1 or more"):
        cluster_stage("local:1", 0)
