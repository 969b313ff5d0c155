"""Web viewer speed on a generated 100,000-image collection.

    .venv/bin/python benchmarks/web.py [--images 100000] [--requests 200] [--runs 5]
    .venv/bin/python benchmarks/web.py --neighbours-only [--servers 2]   # look-alikes only
    .venv/bin/python benchmarks/web.py --neighbours-only --workers 2   # one serve, 2 workers

The collection: 100,000 distinct tiny PNG files (8x8, in 20 category folders; each carries
its number in a text chunk, so every file has its own content hash) written directly, and
their catalogue rows with generated 1280-d vectors written through
`lookalike.catalogue.store.Store.write`, so nothing is embedded. The vectors stand for
EfficientNet-Lite0 features: non-negative, and clustered (each a random mix of three of 2,000
random centres plus a little noise), so that approximate search finds the structure it would
find in real embeddings; independent random vectors would have none. Thumbnails
and originals are real: they are made from those files. Built once into
benchmarks/out/web-100k/ and reused.

Measured against `lookalike serve` (a real process on 127.0.0.1, port picked at random):
- first paint: Debian's chromium (Playwright) opens the page; `lookalike:grid-painted` is the
  performance mark set in the frame where the first screen of grid cells is in the DOM,
  `lookalike:thumbnails-loaded` when that screen's thumbnails have all arrived; both in ms
  from navigation start. Once as soon as the server has started (its warm-up still running,
  the thumbnail cache emptied first), then `--runs` times once it is warm; every run has a
  fresh browser profile (no HTTP cache).
- scrolling: the grid scrolled by one screen per frame for 120 frames, through pages never
  loaded before; frame intervals p50/p95 and how many cells the DOM held (virtualisation).
- neighbours: `POST /api/neighbors` (k=10, cosine, one random reference) from 1 client in a
  loop, then from 20 concurrent clients (keep-alive connections, `--requests` per client,
  sent by benchmarks/load.py: one asyncio loop, ~0.1 ms of CPU per request);
  latency p50/p95 and requests per second. Three times, once the warm-up has built the
  graph index: exact (`"approximate": false`), the default search (the graph, HNSW, now that
  it is built) and `"approximate": "ivf"` (FAISS's inverted file; built before timing), the
  approximate ones with their recall@10 against exact on the same requests. Each row says
  which search answered (the answers' `method`).
Targets: first paint <= 1 s, neighbours p95 <= 100 ms with 20 clients (issue 4), <= 20 ms with
the graph (issue 18).
Results: stdout and benchmarks/out/web.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import load  # noqa: E402
from machine import print_machine  # noqa: E402

OUT = Path(__file__).parent / "out"
MODEL = "efficientnet-lite0"
DIM = 1280
CHROMIUM = "/usr/bin/chromium"
#: A headless chromium that does no work of its own beside the page (updates, sync, ...).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# -- the collection ---------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_parts(variants: int = 256) -> list[tuple[bytes, bytes]]:
    """(everything before IEND, IEND) of small PNGs in different colours."""
    rng = np.random.default_rng(1)
    parts = []
    for _ in range(variants):
        base = rng.integers(0, 256, 3)
        pixels = np.clip(base + rng.integers(-40, 40, (8, 8, 3)), 0, 255).astype(np.uint8)
        raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
        head = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
                + _chunk(b"IDAT", zlib.compress(raw)))
        parts.append((head, _chunk(b"IEND", b"")))
    return parts


def _clustered(rng, centres: np.ndarray, n: int) -> np.ndarray:
    picks = rng.integers(0, len(centres), (n, 3))
    weights = rng.dirichlet([1.0, 1.0, 1.0], n).astype(np.float32)
    mixed = np.einsum("nk,nkd->nd", weights, centres[picks])
    mixed += rng.normal(0, 0.05, mixed.shape).astype(np.float32)
    return np.maximum(mixed, 0, dtype=np.float32)


def build_collection(folder: Path, n: int) -> Path:
    from lookalike.catalogue.store import ImageRow, Store
    from lookalike.ingest.pipeline import content_hash

    db = folder / "collection.db"
    if db.exists():
        with Store(db, create=False) as store:
            if store.count_images() == n:
                return db
        for stale in folder.glob("collection.db*"):
            if stale.is_file():
                stale.unlink()
    started = time.perf_counter()
    images = folder / "images"
    parts = _png_parts()
    rng = np.random.default_rng(0)
    centres = np.abs(rng.standard_normal((2000, DIM))).astype(np.float32)
    with Store(db) as store:
        for start in range(0, n, 10_000):
            rows, vectors = [], []
            for i in range(start, min(n, start + 10_000)):
                category = f"c{i % 20:02d}"
                path = images / category / f"img{i:06d}.png"
                head, tail = parts[i % len(parts)]
                data = head + _chunk(b"tEXt", b"n\x00" + str(i).encode()) + tail
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                digest = content_hash(data)
                st = path.stat()
                rows.append(ImageRow(os.fsencode(path), str(path), str(images), path.stem,
                                     category, st.st_size, st.st_mtime_ns, 8, 8, digest))
                vectors.append(digest)
            matrix = _clustered(rng, centres, len(vectors))
            store.write(rows, [(h, MODEL, v) for h, v in zip(vectors, matrix)])
        store.set_setting("last_model", MODEL)
    print(f"built {n:,} images in {time.perf_counter() - started:.0f} s: {db}", file=sys.stderr)
    return db


# -- the server ---------------------------------------------------------------------------------

def percentiles(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "n": int(len(values))}


# -- measurements ----------------------------------------------------------------------------------

def first_paint(url: str, runs: int, scroll: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    results = []
    scrolling = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_selector("body[data-thumbnails=loaded]", timeout=60_000)
            marks = page.evaluate("""() => Object.fromEntries(performance.getEntriesByType('mark')
                .map(m => [m.name, m.startTime]))""")
            cells = page.eval_on_selector_all(".cell", "c => c.length")
            results.append({"grid_painted_ms": marks["lookalike:grid-painted"],
                            "thumbnails_loaded_ms": marks["lookalike:thumbnails-loaded"],
                            "cells_in_dom": cells})
            if scroll and run == runs - 1:
                scrolling = page.evaluate("""async () => {
                    const grid = document.getElementById('grid');
                    const gaps = []; let cells = 0; let last = performance.now();
                    for (let i = 0; i < 120; i++) {
                        grid.scrollTop += grid.clientHeight;
                        await new Promise(r => requestAnimationFrame(r));
                        const now = performance.now(); gaps.push(now - last); last = now;
                        cells = Math.max(cells, document.querySelectorAll('.cell').length);
                    }
                    return { gaps, cells, scrollTop: grid.scrollTop,
                             scrollHeight: grid.scrollHeight };
                }""")
            context.close()
        browser.close()
    if not scroll:
        return {"runs": results}
    gaps = scrolling["gaps"]
    return {"runs": results,
            "scroll": {"frames": len(gaps), **{f"frame_{k}": v for k, v in percentiles(gaps).items()
                                                if k != "n"},
                       "max_cells_in_dom": scrolling["cells"],
                       "scrolled_px": scrolling["scrollTop"],
                       "grid_height_px": scrolling["scrollHeight"]}}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process and its live child processes (a server's workers)
    have used so far (Linux /proc; 10 ms ticks)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if entry.name == str(pid) or fields[1] == str(pid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def neighbor_latency(servers: list[load.Server], ids: list[int], clients: int,
                     per_client: int, approximate: bool | str | None = None) -> dict:
    """`POST /api/neighbors` from `clients` closed-loop keep-alive connections (load.py),
    spread over the `servers`, with the CPU time the servers' processes and the load
    generator spent per request."""
    def servers_cpu() -> float:
        return sum(cpu_seconds(s.proc.pid) for s in servers)

    server_cpu, client_cpu = servers_cpu(), time.process_time()
    res = load.run([s.url for s in servers], load.neighbours(ids, approximate=approximate),
                   clients, requests_per_client=per_client, keep_answers=True, seed=clients)
    server_cpu = servers_cpu() - server_cpu
    client_cpu = time.process_time() - client_cpu
    if res.errors:
        raise RuntimeError(f"{len(res.errors)} failed requests, e.g. {res.errors[0]}")
    answers, methods = {}, set()
    for request, answer in res.answers:
        body = json.loads(answer.body)
        methods.add(body["method"])
        found = [n["id"] for n in body["neighbors"]]
        if len(found) != 10:
            raise RuntimeError(f"{request.body!r}: {len(found)} neighbours instead of 10")
        answers[json.loads(request.body)["references"][0]] = found
    stats = res.summary()["by_kind"]["neighbors"]
    asked = {None: "default", False: "exact"}.get(approximate, f"approximate ({approximate})")
    search = f"{asked}, answered by {'/'.join(sorted(methods))}"
    return {"clients": clients, "search": search, "p50_ms": stats["p50_ms"],
            "p95_ms": stats["p95_ms"], "n": stats["requests"],
            "requests_per_s": stats["requests_per_s"], "answers": answers,
            "server_cpu_ms_per_request": 1000 * server_cpu / stats["requests"],
            "client_cpu_ms_per_request": 1000 * client_cpu / stats["requests"]}


def wait_for_graph(url: str, in_a_row: int = 1) -> None:
    """Until the default search is answered by the graph (the warm-up builds or loads it)
    `in_a_row` times running, each on a connection of its own (which a server with several
    workers hands to any of them), and the warm-up is done."""
    import httpx

    row = 0
    while row < in_a_row:
        answered = httpx.post(url + "/api/neighbors", json={"references": [1], "k": 10},
                              timeout=300).json()["method"] == "hnsw"
        warm = not httpx.get(url + "/api/collection", timeout=60).json()["warming_up"]
        row = row + 1 if answered and warm else 0
        if not row:
            time.sleep(0.5)


def recall(approximate: dict, url: str) -> float:
    """Recall@10 of approximate answers against exact ones for the same references."""
    import httpx

    hits = total = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        for ref, got in list(approximate.items())[:100]:
            exact = http.post("/api/neighbors", json={"references": [ref], "k": 10,
                                                      "approximate": False}).json()
            hits += len(set(got) & {n["id"] for n in exact["neighbors"]})
            total += 10
    return hits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20,
                        help="neighbour requests per client with 20 clients (1 client makes "
                             "10 times as many)")
    parser.add_argument("--runs", type=int, default=5, help="page loads")
    parser.add_argument("--neighbours-only", action="store_true",
                        help="time only the neighbour requests (no browser, no IVF)")
    parser.add_argument("--servers", type=int, default=1,
                        help="with --neighbours-only: this many `lookalike serve` processes "
                             "on the collection, the clients spread over them")
    parser.add_argument("--workers", type=int, default=1,
                        help="with --neighbours-only: one `lookalike serve --workers N`, every "
                             "client on its one port")
    args = parser.parse_args()
    if (args.servers > 1 or args.workers > 1) and not args.neighbours_only:
        parser.error("--servers and --workers need --neighbours-only")
    if args.servers > 1 and args.workers > 1:
        parser.error("--servers or --workers, not both")
    print_machine()
    import httpx

    db = build_collection(OUT / f"web-{args.images // 1000}k", args.images)
    shutil.rmtree(db.with_name(db.name + ".thumbs"), ignore_errors=True)  # first run: cold
    started = time.perf_counter()
    server = load.Server(db, workers=args.workers)
    servers = [server]
    try:
        # Opened at once: the server's warm-up is still running, no thumbnail exists yet.
        cold = None if args.neighbours_only else first_paint(server.url, 1, scroll=False)["runs"][0]
        first = httpx.post(server.url + "/api/neighbors", json={"references": [1], "k": 10},
                           timeout=300)
        first.raise_for_status()
        warm_up_s = time.perf_counter() - started
        while httpx.get(server.url + "/api/collection", timeout=60).json()["warming_up"]:
            time.sleep(0.2)  # the 8-bit first pass of exact search is being built
        warmed_s = time.perf_counter() - started
        ids = list(range(1, args.images + 1))
        paint = None if args.neighbours_only else first_paint(server.url, args.runs)
        # The warm-up builds the graph of cosine search next; the default search answers with
        # it once it is ready (exactly meanwhile).
        wait_for_graph(server.url)
        graph_s = time.perf_counter() - started
        wait_for_graph(server.url, in_a_row=10 * args.workers if args.workers > 1 else 1)
        for _ in range(args.servers - 1):  # one by one: a failed start stops those started
            servers.append(load.Server(db))
        for other in servers[1:]:  # the graph saved by the first is loaded
            wait_for_graph(other.url)
            while httpx.get(other.url + "/api/collection", timeout=60).json()["warming_up"]:
                time.sleep(0.2)
        latency = [neighbor_latency(servers, ids, 1, 10 * args.requests, False),
                   neighbor_latency(servers, ids, 20, args.requests, False),
                   neighbor_latency(servers, ids, 1, 10 * args.requests),
                   neighbor_latency(servers, ids, 20, args.requests)]
        for r in latency[2:]:
            r["recall_at_10"] = recall(r["answers"], server.url)
        if args.neighbours_only:
            for r in latency:
                del r["answers"]
                print(f"{r['search']}, {r['clients']} clients: p50 / p95 {r['p50_ms']:.1f} / "
                      f"{r['p95_ms']:.1f} ms ({r['requests_per_s']:.0f} req/s"
                      + (f", recall@10 {r['recall_at_10']:.3f}" if "recall_at_10" in r else "")
                      + f"; CPU per request: server {r['server_cpu_ms_per_request']:.2f} ms, "
                        f"load generator {r['client_cpu_ms_per_request']:.2f} ms)")
            print(f"graph ready {graph_s:.1f} s after start; {len(servers)} server process"
                  f"{'es' if len(servers) > 1 else ''}"
                  + (f" with {args.workers} workers" if args.workers > 1 else ""))
            return
        t = time.perf_counter()
        httpx.post(server.url + "/api/neighbors", timeout=300,
                   json={"references": [1], "k": 10, "approximate": "ivf"}).raise_for_status()
        build_s = time.perf_counter() - t
        latency += [neighbor_latency(servers, ids, 1, 10 * args.requests, "ivf"),
                    neighbor_latency(servers, ids, 20, args.requests, "ivf")]
        for r in latency[4:]:
            r["recall_at_10"] = recall(r["answers"], server.url)
            r["index_build_s"] = build_s
        for r in latency:
            del r["answers"]
    finally:
        for s in servers:
            s.stop()

    result = {
        "images": args.images, "dim": DIM, "model": MODEL, "cpu_count": os.cpu_count(),
        "first_neighbors_after_start_s": warm_up_s,
        "warm_up_done_after_start_s": warmed_s,
        "graph_ready_after_start_s": graph_s,
        "first_paint_server_just_started": cold,
        "first_paint": paint,
        "grid_painted_ms_median": statistics.median(r["grid_painted_ms"] for r in paint["runs"]),
        "thumbnails_loaded_ms_median": statistics.median(
            r["thumbnails_loaded_ms"] for r in paint["runs"]),
        "neighbors": latency,
        "targets": {"first_paint_ms": 1000, "neighbors_p95_ms_20_clients": 100,
                    "neighbors_p95_ms_20_clients_graph": 20},
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "web.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nweb viewer, {args.images:,} images, {DIM}-d vectors, cosine search, "
          f"{os.cpu_count()} cores\n")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| page opened: grid painted (first screen of cells), median of {args.runs} | "
          f"{result['grid_painted_ms_median']:.0f} ms | <= 1000 ms |")
    print(f"| page opened: first screen of thumbnails loaded, median of {args.runs} | "
          f"{result['thumbnails_loaded_ms_median']:.0f} ms | |")
    print(f"| page opened as the server starts (warm-up running, thumbnails made on the fly): "
          f"grid / thumbnails | {cold['grid_painted_ms']:.0f} / "
          f"{cold['thumbnails_loaded_ms']:.0f} ms | |")
    s = paint["scroll"]
    print(f"| scrolling one screen per frame: frame interval p50 / p95 | "
          f"{s['frame_p50_ms']:.1f} / {s['frame_p95_ms']:.1f} ms | |")
    print(f"| cells in the DOM while scrolling (of {args.images:,}) | {s['max_cells_in_dom']} | |")
    for r in result["neighbors"]:
        target = "" if r["clients"] != 20 else (
            "<= 20 ms (p95)" if r["search"].endswith("hnsw") else "<= 100 ms (p95)")
        extra = f", recall@10 {r['recall_at_10']:.3f}" if "recall_at_10" in r else ""
        print(f"| POST /api/neighbors, {r['search']}, {r['clients']} "
              f"client{'s' if r['clients'] > 1 else ''}: p50 / p95 | {r['p50_ms']:.1f} / "
              f"{r['p95_ms']:.1f} ms ({r['requests_per_s']:.0f} req/s{extra}) | {target} |")
    print(f"| server start to first look-alikes answered (warm-up: counts models, maps the "
          f"matrix; the page load above runs meanwhile) | {warm_up_s:.1f} s | |")
    print(f"| server start to warm-up done (the 8-bit first pass of exact search built; "
          f"searches are exact, with the float32 pass, meanwhile) | {warmed_s:.1f} s | |")
    print(f"| server start to the graph index ready (built by the warm-up; exact search "
          f"answers meanwhile) | {graph_s:.1f} s | |")
    print(f"\nwrote {OUT / 'web.json'}")


if __name__ == "__main__":
    main()
