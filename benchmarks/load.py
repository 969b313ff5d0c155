"""A light HTTP load generator for the benchmarks: N keep-alive connections on one asyncio
loop, each sending its next request as soon as the last answer arrived (a closed loop).

It spends about 0.1 ms of CPU per request, so on a 2-core machine it takes little from the
server it measures (a thread per client with httpx took several times that, and the
clients' own waits for the GIL showed up as server latency). Only what the benchmarks need
of HTTP/1.1: a request with a body, an answer with Content-Length.

    python benchmarks/load.py URL --clients 50 --seconds 20   # neighbours + thumbnails mix
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    kind: str = ""  # how results are grouped


@dataclass
class Answer:
    status: int
    body: bytes
    ms: float


@dataclass
class Results:
    seconds: float = 0.0
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    answers: list[tuple[Request, Answer]] = field(default_factory=list)

    def summary(self) -> dict:
        out = {}
        for kind, ms in sorted(self.by_kind.items()):
            a = np.asarray(ms)
            out[kind] = {"requests": len(a), "p50_ms": float(np.percentile(a, 50)),
                         "p95_ms": float(np.percentile(a, 95)),
                         "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max()),
                         "requests_per_s": len(a) / self.seconds}
        return {"seconds": self.seconds, "errors": len(self.errors),
                "error_examples": self.errors[:5], "by_kind": out}


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding" and "chunked" in value.lower():
            raise RuntimeError("chunked answers are not supported by this load client")
    return status, await reader.readexactly(length)


async def _client(host: str, port: int, make: Callable[[random.Random], Request], seed: int,
                  until: float, max_requests: int | None, results: Results, keep: bool) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        while time.perf_counter() < until and (max_requests is None or sent < max_requests):
            req = make(rng)
            head = (f"{req.method} {req.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Length: {len(req.body)}\r\n")
            if req.body:
                head += "Content-Type: application/json\r\n"
            started = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + req.body)
            try:
                status, body = await _read_answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                results.errors.append(f"{req.kind}: connection lost ({exc!r})")
                return
            ms = (time.perf_counter() - started) * 1000
            sent += 1
            results.by_kind.setdefault(req.kind, []).append(ms)
            if status != 200:
                results.errors.append(f"{req.kind} {req.path}: {status} {body[:200]!r}")
            if keep:
                results.answers.append((req, Answer(status, body, ms)))
    finally:
        writer.close()


def run(url: str | list[str], make: Callable[[random.Random], Request], clients: int,
        seconds: float | None = None, requests_per_client: int | None = None,
        keep_answers: bool = False, seed: int = 0) -> Results:
    """Run `clients` closed-loop clients until `seconds` have passed or each has sent
    `requests_per_client` requests. `make(rng)` returns the next request. Several URLs:
    the clients are spread over them in turn (several server processes)."""
    servers = [urlsplit(u) for u in ([url] if isinstance(url, str) else url)]
    results = Results()
    until = time.perf_counter() + (seconds if seconds is not None else 1e9)

    async def main():
        await asyncio.gather(*(_client(servers[i % len(servers)].hostname,
                                       servers[i % len(servers)].port, make, seed * 1000 + i,
                                       until, requests_per_client, results, keep_answers)
                               for i in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    results.seconds = time.perf_counter() - started
    return results


def neighbours(ids: list[int], k: int = 10, approximate=None) -> Callable[[random.Random], Request]:
    def make(rng: random.Random) -> Request:
        body = {"references": [rng.choice(ids)], "k": k}
        if approximate is not None:
            body["approximate"] = approximate
        return Request("POST", "/api/neighbors", json.dumps(body).encode(), "neighbors")
    return make


def mixed(ids: list[int], thumbnail_share: float = 0.5) -> Callable[[random.Random], Request]:
    """Neighbour searches and thumbnails (sizes the page asks for), half and half."""
    search = neighbours(ids)

    def make(rng: random.Random) -> Request:
        if rng.random() < thumbnail_share:
            size = rng.choice((64, 128, 256))
            return Request("GET", f"/api/images/{rng.choice(ids)}/thumbnail?size={size}",
                           kind="thumbnails")
        return search(rng)
    return make


class Server:
    """`lookalike serve --port 0 [--workers N]`; its log is kept to look for errors
    afterwards."""

    def __init__(self, db: Path, workers: int = 1):
        self.proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                                      "--port", "0", "--workers", str(workers)],
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        if not found:
            self.proc.kill()
            raise RuntimeError(f"lookalike serve did not start: {line}{self.proc.stderr.read()}")
        self.url = found.group(1)
        self.log: list[str] = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description="closed-loop load against lookalike serve")
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    from machine import print_machine

    print_machine(sys.stderr)  # stdout is the JSON summary
    import urllib.request

    with urllib.request.urlopen(args.url + "/api/collection") as r:
        count = json.load(r)["count"]
    res = run(args.url, mixed(list(range(1, count + 1))), args.clients, args.seconds)
    print(json.dumps(res.summary(), indent=2))


if __name__ == "__main__":
    main()
