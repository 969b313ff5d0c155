"""Load held by `lookalike serve`: many clients at once on loopback, look-alikes and thumbnails.

    .venv/bin/python benchmarks/abuse_load.py [--clients 50] [--seconds 20] [--db FILE]

Without --db it indexes the Twemoji sample (1,903 PNGs with transparency, written by
`lookalike datasets get twemoji`) into benchmarks/out/abuse/twemoji.db with the default
model, once, and reuses it afterwards. The thumbnail cache is emptied first, so thumbnails
are made under load (the first request for each) as well as served from the cache.

It starts `lookalike serve` (a real process, a free port) and runs benchmarks/load.py's
closed-loop client: `--clients` keep-alive connections, each sending its next request as soon
as the last was answered, half `POST /api/neighbors` (k=10, cosine, one random reference),
half `GET /api/images/{id}/thumbnail?size=` 64, 128 or 256, ids drawn from the first 1,000
images (one page of /api/images). It prints, per kind, requests,
p50/p95/p99/max latency and requests per second, the error count (any status other than 200,
any connection dropped) and whether the server's log holds an error; also written to
benchmarks/out/abuse_load.json. A run with errors exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import load
from machine import print_machine

OUT = Path(__file__).parent / "out"


def build_collection(folder: Path) -> Path:
    """The Twemoji sample indexed with the default model (nothing to do when it is there)."""
    from lookalike import Collection, datasets

    datasets.get("twemoji", folder / "twemoji")
    db = folder / "twemoji.db"
    started = time.perf_counter()
    with Collection.create(db) as col:
        report = col.add([folder / "twemoji"], progress=True)
    if report.embedded:
        print(f"indexed {report.embedded:,} images in {time.perf_counter() - started:.0f} s: "
              f"{db}", file=sys.stderr)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--db", type=Path, help="a collection to serve (default: the Twemoji "
                                                "sample, indexed once)")
    args = parser.parse_args()
    machine = print_machine()
    db = args.db or build_collection(OUT / "abuse")
    shutil.rmtree(db.with_name(db.name + ".thumbs"), ignore_errors=True)
    server = load.Server(db)
    try:
        deadline = time.monotonic() + 120
        while True:  # the warm-up loads the search matrix; the first search waits for it
            try:
                with urllib.request.urlopen(server.url + "/api/collection", timeout=120) as r:
                    info = json.load(r)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        with urllib.request.urlopen(server.url + "/api/images?limit=1000", timeout=60) as r:
            ids = [item["id"] for item in json.load(r)["items"]]
        print(f"{info['count']:,} images, model {info['default_model']}; {args.clients} clients "
              f"for {args.seconds:g} s at {server.url}", file=sys.stderr)
        result = load.run(server.url, load.mixed(ids), args.clients, args.seconds, seed=1)
    finally:
        server.stop()
    summary = result.summary()
    summary.update(machine=machine, clients=args.clients, images=info["count"],
                   model=info["default_model"],
                   server_log_errors=[line.rstrip() for line in server.log
                                      if "Traceback" in line or "error" in line.lower()][:5])
    OUT.mkdir(exist_ok=True)
    (OUT / "abuse_load.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'kind':<12}{'requests':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'req/s':>8}")
    for kind, s in summary["by_kind"].items():
        print(f"{kind:<12}{s['requests']:>10,}{s['p50_ms']:>9.1f}{s['p95_ms']:>9.1f}"
              f"{s['p99_ms']:>9.1f}{s['max_ms']:>9.1f}{s['requests_per_s']:>8.0f}")
    print(f"errors: {summary['errors']}" + (f" (e.g. {summary['error_examples'][0]})"
                                            if summary["errors"] else ""))
    print(f"errors in the server's log: {len(summary['server_log_errors'])}")
    sys.exit(1 if summary["errors"] or summary["server_log_errors"] else 0)


if __name__ == "__main__":
    main()
