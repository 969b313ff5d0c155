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
  intervals p50/p95 and frames per second, and the CPU time of one full redraw.
- zoomed in: the same once the view is zoomed until at most 300 points are on screen and
  drawn as thumbnails (loaded lazily, 8 at a time).
Targets (issue 14): first paint <= 1 s, pan and zoom >= 30 frames/s.
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
from web import CHROMIUM, OUT, build_collection, percentiles  # noqa: E402

FRAMES = """async (zoomed) => {
    const m = window.lookalikeMap;
    const gaps = []; let last = performance.now();
    for (let i = 0; i < 120; i++) {
        m.panBy(i % 2 ? 3 : -2, 2);
        m.zoomBy(i % 40 < 20 ? 1.02 : 1 / 1.02);
        await new Promise(r => requestAnimationFrame(r));
        const now = performance.now(); gaps.push(now - last); last = now;
    }
    const t = performance.now();
    for (let i = 0; i < 20; i++) m.drawNow();
    return { gaps, redraw_ms: (performance.now() - t) / 20, points_on_screen: m.pointsDrawn,
             thumbnails: m.thumbnailsDrawn };
}"""


def frames(page, zoomed: bool) -> dict:
    found = page.evaluate(FRAMES, zoomed)
    gaps = found.pop("gaps")
    return {**found, **{f"frame_{k}": v for k, v in percentiles(gaps).items() if k != "n"},
            "frames_per_s": 1000 / float(np.mean(gaps))}


def measure(url: str, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    paints, moving, zoomed = [], None, None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        for run in range(runs):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            page.goto(url + "/?view=map&method=pca")
            page.wait_for_selector("body[data-map=painted]", timeout=120_000)
            mark = page.evaluate("performance.getEntriesByName('lookalike:map-painted')[0]"
                                 ".startTime")
            paints.append({"map_painted_ms": mark,
                           "points": page.evaluate("window.lookalikeMap.points")})
            if run == runs - 1:
                moving = frames(page, False)
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
    return {"first_paint": paints, "pan_zoom": moving, "zoomed_in": zoomed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", type=Path, help="a collection already built (benchmarks/web.py's)")
    args = parser.parse_args()
    machine = print_machine()
    import lookalike

    db = args.db or build_collection(OUT / f"web-{args.images // 1000}k", args.images)
    started = time.perf_counter()
    with lookalike.Collection.open(db) as col:
        layout = col.map(method="pca")
    map_s = time.perf_counter() - started
    server = load.Server(db)
    try:
        found = measure(server.url, args.runs)
    finally:
        server.stop()
    result = {"machine": machine, "images": len(layout), "pca_map_s": map_s,
              "pca_map_action": layout.action, **found}
    OUT.mkdir(exist_ok=True)
    (OUT / "web_map.json").write_text(json.dumps(result, indent=2))
    paint = [r["map_painted_ms"] for r in found["first_paint"]]
    print(f"map of {len(layout):,} points (PCA, {layout.action} in {map_s:.1f} s)")
    print(f"first paint: {', '.join(f'{p:.0f}' for p in paint)} ms (median "
          f"{float(np.median(paint)):.0f} ms; target <= 1000)")
    for name in ("pan_zoom", "zoomed_in"):
        f = found[name]
        print(f"{name}: {f['frames_per_s']:.0f} frames/s, frame p50 {f['frame_p50_ms']:.1f} ms,"
              f" p95 {f['frame_p95_ms']:.1f} ms, one redraw {f['redraw_ms']:.1f} ms, "
              f"{f['points_on_screen']:,} points on screen, {f['thumbnails']} thumbnails "
              "(target >= 30 frames/s)")


if __name__ == "__main__":
    main()
