"""Server CPU per look-alike request of two versions of lookalike, side by side: two `lookalike
serve` processes on the 100,000-image collection of benchmarks/web.py (its graph built), one
per source tree, answer batches of `POST /api/neighbors` (k=10, one random reference) in turn,
so that both see the same load from the rest of the machine; on a shared machine one run
after the other differed by more than the changes measured.

    .venv/bin/python benchmarks/web_side_by_side.py OLD_SRC NEW_SRC [--clients 1]
        [--batches 10] [--batch 600]

OLD_SRC and NEW_SRC are folders holding a `lookalike` package (e.g. after `git worktree add
/tmp/old main`: /tmp/old/src and src). Prints, for each, the median over its batches of the
server's CPU time per request (user + system, /proc), of the p95 latency and of requests per
second, and each batch's CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import load  # noqa: E402
import web  # noqa: E402
from machine import print_machine  # noqa: E402


def start(db: Path, src: str) -> load.Server:
    """`lookalike serve` of the package in `src` on `db`, once its graph answers."""
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                             "--port", "0"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": src})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
    if not found:
        proc.kill()
        raise RuntimeError(f"lookalike serve ({src}) did not start: {line}")
    threading.Thread(target=lambda: list(proc.stderr or ()), daemon=True).start()
    server = load.Server.__new__(load.Server)  # the same handle, started with our own env
    server.proc, server.url, server.log = proc, found.group(1), []
    web.wait_for_graph(server.url)
    while httpx.get(server.url + "/api/collection", timeout=60).json()["warming_up"]:
        time.sleep(0.2)
    return server


def batch(server: load.Server, ids: list[int], clients: int, requests: int,
          seed: int) -> dict:
    before = web.cpu_seconds(server.proc.pid)
    res = load.run([server.url], load.neighbours(ids), clients,
                   requests_per_client=requests // clients, seed=seed)
    cpu = web.cpu_seconds(server.proc.pid) - before
    if res.errors:
        raise RuntimeError(f"{len(res.errors)} failed requests, e.g. {res.errors[0]}")
    stats = res.summary()["by_kind"]["neighbors"]
    return {"cpu_ms": 1000 * cpu / stats["requests"], "p95_ms": stats["p95_ms"],
            "requests_per_s": stats["requests_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old_src")
    parser.add_argument("new_src")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--batches", type=int, default=10, help="batches of each version")
    parser.add_argument("--batch", type=int, default=600, help="requests in a batch")
    args = parser.parse_args()
    print_machine()
    db = web.build_collection(web.OUT / "web-100k", 100_000)
    sources = [os.path.abspath(args.old_src), os.path.abspath(args.new_src)]
    servers = []
    try:
        for src in sources:
            servers.append(start(db, src))
        ids = list(range(1, 100_001))
        for server in servers:  # warm: the matrix rows and the graph paged in alike
            batch(server, ids, args.clients, 300, seed=99)
        runs: list[list[dict]] = [[], []]
        for b in range(args.batches):
            for i in (0, 1) if b % 2 == 0 else (1, 0):  # each goes first half the time
                runs[i].append(batch(servers[i], ids, args.clients, args.batch, seed=b))
    finally:
        for server in servers:
            server.stop()
    print(f"POST /api/neighbors, {args.clients} client(s), {args.batches} batches of "
          f"{args.batch} each, in turn")
    for src, got in zip(sources, runs):
        def median(key: str) -> float:
            return statistics.median(r[key] for r in got)
        each = " ".join(f"{r['cpu_ms']:.2f}" for r in got)
        print(f"{src}: server CPU per request {median('cpu_ms'):.3f} ms (batches: {each}); "
              f"p95 {median('p95_ms'):.1f} ms; {median('requests_per_s'):.0f} requests/s")


if __name__ == "__main__":
    main()
