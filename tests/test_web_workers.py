"""Several server processes on one collection (`serve --workers N`): the same answers from
each, the graph built by one of them, maps and groups of copies computed once for all of them
whichever process a poll reaches, and Ctrl-C stopping every one. Two apps in this process,
each with its own Collection, stand for two workers where a test must say which one a
request reaches; `lookalike serve --workers 2` runs as real processes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import lookalike
from lookalike.catalogue.paths import faiss_folder, viewer_folder
from lookalike.errors import LookalikeError
from lookalike.locks import held
from lookalike.web.jobs import lock_path
from lookalike.web.server import serve as serve_viewer, workers_note
from test_cli import served_url
from test_web_api import serve

N = 300


def paths(n, start=0):
    return [f"/v/{c}/{i:04d}.jpg" for i, c in zip(range(start, start + n), "abc" * n)]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """300 vectors in three categories, every tenth with a near copy (cosine ~0.001)."""
    db = tmp_path_factory.mktemp("workers") / "c.db"
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N, 32)).astype(np.float32)
    vectors[1::10] = vectors[::10] + 0.01 * rng.normal(size=(N // 10, 32))
    with lookalike.Collection.create(db) as col:
        col.add_vectors(paths(N), vectors, model="m")
    return db


def wait_for(condition, seconds=120):
    deadline = time.monotonic() + seconds  # only against a hang
    while not (found := condition()):
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.02)
    return found


# -- the state a page relies on, across processes -----------------------------------------------

def test_a_map_polled_across_workers_is_computed_once_with_one_answer(db):
    one, two = serve(db, warm_up=False), serve(db, warm_up=False)
    try:
        def poll(live, wait=0):
            return live.client.get("/api/map", params={"method": "pca", "wait": wait})

        def answered(live, status, wait=0):
            """The first answer of `status` to polls of `live`."""
            def polled():
                answer = poll(live, wait)
                return answer if answer.status_code == status else None
            return wait_for(polled)

        # While a third process computes it (the test holds its lock), both say so.
        with held(lock_path(db, "map pca None")):
            for live in (one, two):
                progress = wait_for(lambda live=live: (
                    lambda p: p if "another of the server's processes" in p else None)(
                    answered(live, 202).json()["progress"]))
                assert progress.startswith("Laying out 300 images by PCA")
        answers = [answered(live, 200, wait=5).json() for live in (one, two, one, two)]
        assert all(a == {**answers[0], "action": a["action"]} for a in answers)
        assert len(answers[0]["ids"]) == N
        assert [a["action"] for a in answers].count("fitted") == 1  # the others read it
    finally:
        one.stop()
        two.stop()


def groups_of(answer) -> list[list[str]]:
    return [[i["path"] for i in g["images"]] for g in answer["groups"]]


def test_groups_of_copies_are_computed_once_and_the_same_everywhere(db):
    one, two = serve(db, warm_up=False), serve(db, warm_up=False)
    query = {"tier": "similar", "threshold": 0.01}
    try:
        answers: dict[str, dict] = {}
        asked = [threading.Thread(target=lambda name=name, live=live: answers.__setitem__(
            name, live.client.get("/api/duplicates", params=query).json()))
            for name, live in (("one", one), ("two", two))]
        with held(viewer_folder(db) / "duplicates.lock"):  # another process computes them
            for thread in asked:
                thread.start()
            progress = wait_for(lambda: two.client.get("/api/duplicates/progress").json())
            assert progress["computing"] is True and not answers
        for thread in asked:
            thread.join(120)
        reviews = [live.app.state.viewer.duplicates for live in (one, two)]
        assert sum(r.computations for r in reviews) == 1
        assert answers["one"] == answers["two"] and answers["one"]["groups_total"] == N // 10
        # "Not duplicates" on one: the other answers the same groups less that one, computing
        # nothing; computed again (fresh) on the other: the first answers those.
        first = [i["id"] for i in answers["one"]["groups"][0]["images"]]
        one.client.post("/api/duplicates/not-duplicates", json={"ids": first})
        after = [live.client.get("/api/duplicates", params=query).json() for live in (one, two)]
        assert after[0] == after[1] and after[0]["groups"] == answers["one"]["groups"][1:]
        assert sum(r.computations for r in reviews) == 1
        fresh = two.client.get("/api/duplicates", params={**query, "fresh": "true"}).json()
        assert sum(r.computations for r in reviews) == 2
        assert one.client.get("/api/duplicates", params=query).json() == fresh
        assert groups_of(fresh) == groups_of(after[0])  # the same groups, numbered afresh
        one.client.post("/api/duplicates/not-duplicates", json={"ids": first, "undo": True})
    finally:
        one.stop()
        two.stop()


RACER = """
import logging, sys
import lookalike
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
with lookalike.Collection.open(sys.argv[1]) as col:
    found = col.nearest(sys.argv[2], k=5, approximate="hnsw")
    print(found.method, *found.paths, flush=True)
"""


@pytest.mark.slow
def test_two_processes_asking_for_the_graph_at_once_build_it_once(db):
    lock = faiss_folder(db) / "m.cosine.hnsw.index.lock"
    with held(lock):  # a third process is building it: both wait
        racers = [subprocess.Popen([sys.executable, "-c", RACER, str(db), paths(1)[0]],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for _ in range(2)]
        for racer in racers:
            assert racer.stderr is not None
            line = racer.stderr.readline()
            assert "m.cosine.hnsw.index: waiting for another process" in line, line
    outputs = [racer.communicate(timeout=120) for racer in racers]
    logs = "".join(err for _, err in outputs)
    assert logs.count("m.cosine.hnsw.index: built") == 1, logs
    assert logs.count("m.cosine.hnsw.index: loaded") == 1, logs
    found = {out for out, _ in outputs}
    assert len(found) == 1 and found.pop().startswith("hnsw /v/b/0001.jpg")  # its near copy


# -- lookalike serve --workers, as real processes ------------------------------------------------

def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def workers_of(pid: int) -> set[int]:
    """The worker processes of a server (not multiprocessing's resource tracker)."""
    return {c for c in children(pid)
            if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def serving_process(conn: http.client.HTTPConnection, port: int, pids: set[int]) -> int:
    """The process whose socket is the server's end of `conn` (from /proc: its inode)."""
    client_port = conn.sock.getsockname()[1]
    ours = f"0100007F:{port:04X} 0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if f"{fields[1]} {fields[2]}" == ours:
            inode = fields[9]
            break
    else:
        raise AssertionError("no such connection")
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def ask(conn: http.client.HTTPConnection, method: str, target: str, body=None):
    conn.request(method, target, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.slow
def test_serve_with_two_workers_answers_as_one_process_and_ctrl_c_stops_them(db):
    one = serve(db)
    try:
        grid = one.client.get("/api/images", params={"limit": 1000}).json()
        ids = [item["id"] for item in grid["items"]]
        alike = {i: one.client.post("/api/neighbors", json={"references": [i], "k": 5}).json()
                 for i in ids[:20]}
    finally:
        one.stop()
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                             "--port", "0", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    opened: list[http.client.HTTPConnection] = []
    try:
        url, seen = served_url(proc, 120)
        assert url, seen
        assert "by 2 worker processes" in seen
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        pids = wait_for(lambda: workers_of(proc.pid) if len(workers_of(proc.pid)) == 2 else None)
        # New connections until each worker holds one (the kernel hands them out).
        by_worker: dict[int, http.client.HTTPConnection] = {}

        def connect_until_both() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            opened.append(conn)
            assert ask(conn, "GET", "/api/collection")[0] == 200
            by_worker.setdefault(serving_process(conn, port, pids), conn)
            return len(by_worker) == 2
        wait_for(connect_until_both)
        for conn in by_worker.values():
            assert ask(conn, "GET", "/api/images?limit=1000") == (200, grid)
            for i, expected in alike.items():
                assert ask(conn, "POST", "/api/neighbors", {"references": [i], "k": 5}) == \
                    (200, expected)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, to the parent alone
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert (seen + err).count("lookalike: viewer stopped") == 1
        assert "Traceback" not in seen + err
        assert not {p for p in pids if Path(f"/proc/{p}").exists()}, "orphan workers"
    finally:
        for conn in opened:
            conn.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_number_of_workers_under_one_is_one_clear_line(db):
    for bad in (0, -2, 1.5, True):
        with pytest.raises(LookalikeError, match="is not a number of worker processes"):
            serve_viewer(db, port=0, workers=bad)  # type: ignore[arg-type]
    proc = subprocess.run([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                           "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].endswith("--workers: '0' must be at least 1")


def test_a_port_another_server_shares_out_is_still_a_busy_port(db):
    import socket

    other = socket.socket()  # as another `serve --workers N` binds: open to joiners
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", 0))
    other.listen()
    try:
        with pytest.raises(LookalikeError, match=str(other.getsockname()[1])):
            serve_viewer(db, port=other.getsockname()[1], workers=2)
    finally:
        other.close()


def test_a_worker_that_cannot_open_the_collection_says_why_and_stops_them_all(tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    from uvicorn.config import STARTUP_FAILURE

    from lookalike.web.workers import ENVIRONMENT, worker_app

    monkeypatch.setenv(ENVIRONMENT, json.dumps({"db": str(tmp_path / "gone.db"),
                                                "allowed_hosts": None}))
    with pytest.raises(SystemExit) as stopped:
        worker_app()
    assert stopped.value.code == STARTUP_FAILURE  # the supervisor stops rather than restart it
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("lookalike: error: ") and "gone.db" in line


def test_more_workers_than_cores_is_allowed_with_a_note():
    assert workers_note(2, 2) is None and workers_note(1, None) is None
    assert workers_note(8, 2) == ("lookalike: note: 8 worker processes on 2 cores: more than "
                                  "the cores serve no faster, and each holds its own search "
                                  "structures in memory")
