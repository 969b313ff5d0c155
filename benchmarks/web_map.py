"""The Map view's speed in chromium at 100,000 points.

    .venv/bin/python benchmarks/web_map.py [--images 100000] [--runs 3] [--db FILE]

The collection is benchmarks/web.py's (100,000 tiny PNG files with clustered 1280-d
vectors, built once into benchmarks/out/web-100k/, or `--db`). Its PCA map is computed first
(`Collection.map(method="pca")`, timed: the fast layout the page offers while UMAP runs),
then, against `lookalike serve` on 127.0.0.1:
- first paint: Debian's chromium opens `/?view=map&method=pca` with a fresh profile;
  `lookalike:map-painted` is the performance mark set once every point has been drawn
  (ms from navigation start, /api/map's JSON and its parsing included); `--runs` times.
- pan and zoom: 120 animation frames, each panning by a few pixels and zooming by 2 %
  around the pointer (as a drag and the wheel do), with every point on screen; frame
  intervals p50/p95 and frames per second, and the CPU time of one redraw while moving (the
  level of detail's subsample, with how many points it drew) and of one full redraw.
- the bytes of /api/map (JSON and format=binary) and the time to fetch and decode each in
  the page.
- zoomed in: the same once the view is zoomed until at most 300 points are on screen and
  drawn as thumbnails (loaded lazily, 8 at a time).
Targets (issue 14): first paint <= 1 s, pan and zoom >= 30 frames/s; 1M points "still
interactive".

`--light` (for `--images 1000000`): catalogue rows and vectors only, no image files (each row
gets its own made-up content hash and a path that does not exist) and 64-d vectors, so that a
million-image collection builds in minutes and a few GB: what the Map view draws does not
depend on the vectors' dimension (the PCA fit does) nor on the files (only the zoomed-in
thumbnails do, which are then not measured).
Results: stdout and benchmarks/out/web_map.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import load  # noqa: E402
from machine import print_machine  # noqa: E402
from web import CHROMIUM, CHROMIUM_ARGS, OUT, build_collection, percentiles  # noqa: E402

FRAMES = """async (zoomed) => {
    const m = window.lookalikeMap;
    const gaps = []; let last = performance.now();
    for (let i = 0; i < 120; i++) {
        m.panBy(i % 2 ? 3 : -2, 2);
        m.zoomBy(i % 40 < 20 ? 1.02 : 1 / 1.02);
        await new Promise(r => requestAnimationFrame(r));
        const now = performance.now(); gaps.push(now - last); last = now;
    }
    let t = performance.now();
    for (let i = 0; i < 20; i++) m.drawNow(true);
    const moving_redraw_ms = (performance.now() - t) / 20, moving_points = m.pointsDrawn;
    t = performance.now();
    for (let i = 0; i < 20; i++) m.drawNow();
    return { gaps, redraw_ms: (performance.now() - t) / 20, points_on_screen: m.pointsDrawn,
             moving_redraw_ms, moving_points, thumbnails: m.thumbnailsDrawn };
}"""


REQUESTS = """performance.getEntriesByType('resource').filter(e => e.name.includes('/api/'))
    .map(e => [e.name.split(location.host)[1], Math.round(e.startTime),
               Math.round(e.responseEnd)])"""

TRANSFER = """async () => {
    const out = [];
    for (const format of ["json", "binary"]) {
        const r = await fetch(`/api/map?method=pca&format=${format}`);
        out.push({ format, bytes: (await r.arrayBuffer()).byteLength, ms: 0 });
    }
    for (const o of out) {  // again, timed: fetched, then parsed (JSON) or viewed (binary)
        const t = performance.now();
        const r = await fetch(`/api/map?method=pca&format=${o.format}`);
        if (o.format === "json") { const a = await r.json(); Float32Array.from(a.x); }
        else { const b = await r.arrayBuffer(); new Float32Array(b, 8, 1); }
        o.ms = performance.now() - t;
    }
    return out;
}"""


def frames(page, zoomed: bool) -> dict:
    found = page.evaluate(FRAMES, zoomed)
    gaps = found.pop("gaps")
    return {**found, **{f"frame_{k}": v for k, v in percentiles(gaps).items() if k != "n"},
            "frames_per_s": 1000 / float(np.mean(gaps))}


def build_light_collection(folder: Path, n: int, dim: int = 64) -> Path:
    """n catalogue rows with clustered `dim`-d vectors and no files (see --light)."""
    import hashlib
    import os

    from lookalike.catalogue.store import ImageRow, Store
    from web import MODEL

    db = folder / "collection.db"
    if db.exists():
        with Store(db, create=False) as store:
            if store.count_images() == n:
                return db
        for stale in folder.glob("collection.db*"):
            stale.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = np.abs(rng.standard_normal((2000, dim))).astype(np.float32)
    with Store(db) as store:
        for start in range(0, n, 50_000):
            ids = range(start, min(n, start + 50_000))
            picks = rng.integers(0, len(centres), (len(ids), 3))
            matrix = centres[picks].mean(1) + 0.05 * rng.standard_normal((len(ids), dim),
                                                                          np.float32)
            rows, hashes = [], []
            for i in ids:
                path = f"/nonexistent/lookalike-bench/c{i % 20:02d}/img{i:07d}.png"
                digest = hashlib.sha256(str(i).encode()).digest()
                rows.append(ImageRow(os.fsencode(path), path, "/nonexistent/lookalike-bench",
                                     f"img{i:07d}", f"c{i % 20:02d}", 100, 0, 8, 8, digest))
                hashes.append(digest)
            store.write(rows, [(h, MODEL, v) for h, v in zip(hashes, matrix)])
        store.set_setting("last_model", MODEL)
    print(f"built {n:,} rows in {time.perf_counter() - started:.0f} s: {db}", file=sys.stderr)
    return db


def measure(url: str, runs: int, zoom: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    paints, moving, zoomed, transfer = [], None, None, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for run in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url + "/?view=map&method=pca")
            page.wait_for_selector("body[data-map=painted]", timeout=120_000)
            mark = page.evaluate("performance.getEntriesByName('lookalike:map-painted')[0]"
                                 ".startTime")
            paints.append({"map_painted_ms": mark,
                           "points": page.evaluate("window.lookalikeMap.points"),
                           "requests": page.evaluate(REQUESTS)})
            if run == runs - 1:
                transfer = page.evaluate(TRANSFER)
                moving = frames(page, False)
                if not zoom:
                    context.close()
                    break
                page.evaluate("""async () => {
                    const m = window.lookalikeMap;
                    for (let i = 0; i < 60 && m.pointsDrawn > 300; i++) {
                        m.zoomBy(1.25);
                        await new Promise(r => requestAnimationFrame(r));
                    }
                }""")
                page.wait_for_function("() => window.lookalikeMap.thumbnailsDrawn > 0",
                                       timeout=60_000)
                zoomed = frames(page, True)
            context.close()
        browser.close()
    return {"first_paint": paints, "pan_zoom": moving, "zoomed_in": zoomed,
            "transfer": transfer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", type=Path, help="a collection already built (benchmarks/web.py's)")
    parser.add_argument("--light", action="store_true",
                        help="rows and 64-d vectors only, no files (for 1M; see above)")
    args = parser.parse_args()
    machine = print_machine()
    import lookalike

    if args.db:
        db = args.db
    elif args.light:
        db = build_light_collection(Path("/tmp") / f"lookalike-map-{args.images // 1000}k",
                                    args.images)
    else:
        db = build_collection(OUT / f"web-{args.images // 1000}k", args.images)
    started = time.perf_counter()
    with lookalike.Collection.open(db) as col:
        layout = col.map(method="pca")
    map_s = time.perf_counter() - started
    server = load.Server(db)
    try:
        found = measure(server.url, args.runs, zoom=not args.light)
    finally:
        server.stop()
    result = {"machine": machine, "images": len(layout), "pca_map_s": map_s,
              "pca_map_action": layout.action, **found}
    OUT.mkdir(exist_ok=True)
    (OUT / f"web_map{'-light' if args.light else ''}-{args.images}.json").write_text(
        json.dumps(result, indent=2))
    paint = [r["map_painted_ms"] for r in found["first_paint"]]
    print(f"map of {len(layout):,} points (PCA, {layout.action} in {map_s:.1f} s)")
    print(f"first paint: {', '.join(f'{p:.0f}' for p in paint)} ms (median "
          f"{float(np.median(paint)):.0f} ms; target <= 1000)")
    first = found["first_paint"][0]["requests"]
    print("first run's requests (ms from navigation: start, end): " + "; ".join(
        f"{name} {start}-{end}" for name, start, end in first if "/thumbs" not in name))
    for name in ("pan_zoom", "zoomed_in"):
        f = found[name]
        if f is None:
            continue
        print(f"{name}: {f['frames_per_s']:.0f} frames/s, frame p50 {f['frame_p50_ms']:.1f} ms,"
              f" p95 {f['frame_p95_ms']:.1f} ms, one moving redraw {f['moving_redraw_ms']:.1f}"
              f" ms ({f['moving_points']:,} points), one full redraw {f['redraw_ms']:.1f} ms "
              f"({f['points_on_screen']:,} points on screen), {f['thumbnails']} thumbnails "
              "(target >= 30 frames/s)")
    for t in found["transfer"]:
        print(f"/api/map as {t['format']}: {t['bytes'] / 1e6:.1f} MB, fetched and decoded in "
              f"{t['ms']:.0f} ms in the page")


if __name__ == "__main__":
    main()
