"""The Map view and the grid's sorts and filters in chromium: open the map, zoom in until the
points are thumbnails, hover and click a point (the walk), lasso a group into references and
into the grid's filter, colour by cluster after `analyze`; the grid most unusual first and
filtered by a quality flag."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from test_web_api import serve
from test_web_browser import browser, checked_page, neighbours, refs_in_url, shot  # noqa: F401
from test_web_map import make_collection

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-map")
    col, flagged = make_collection(root)
    found = col.analyze(clusters=3)
    live = serve(root / "map.db", warm_up=False)
    yield live, col, flagged, found
    live.stop()
    col.close()


@pytest.fixture
def page(browser, site):  # noqa: F811
    yield from checked_page(browser)


def open_map(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-map=painted]")


def where(page, image_id: int) -> tuple[float, float]:
    return tuple(page.evaluate(f"window.lookalikeMap.where({image_id})"))


def grid_ids(page) -> list[int]:
    page.wait_for_selector("body[data-thumbnails=loaded]")
    return page.eval_on_selector_all(".cell[data-id]:not([data-id=''])", """cells => cells
        .map(c => [Number(c.dataset.index), Number(c.dataset.id)])
        .sort((a, b) => a[0] - b[0]).map(p => p[1])""")


def test_zoom_into_thumbnails_hover_and_click_to_walk(page, site):
    live, col, _, found = site
    open_map(page, f"{live.url}/?view=map&method=pca")
    canvas = page.locator("#map-canvas")
    assert canvas.get_attribute("data-points") == str(len(col))
    assert page.text_content("#count") == f"{len(col)} images"  # the grid is not filled
    page.wait_for_function("() => window.lookalikeMap.thumbnailsDrawn === "
                           f"{len(col)}")  # few images: thumbnails at once
    # as on a large map: thumbnails only once at most 3 points are on screen
    page.evaluate("window.lookalikeMap.thumbnailsFrom = 3")
    page.wait_for_function("() => window.lookalikeMap.thumbnailsDrawn === 0")
    assert canvas.get_attribute("data-thumbnails") == "0"
    shot(page, "map-01-points")

    # zoom in around the centre with the keyboard until thumbnails are drawn on the canvas
    page.locator("#map-canvas").hover()
    page.keyboard.press("+")                   # the keys zoom too
    page.wait_for_function("() => Math.abs(window.lookalikeMap.zoom - 1.5) < 1e-6")
    lone = col.images(flag="dark")[1][0]["id"]  # a point with no other one beside it
    x, y = where(page, lone)
    page.mouse.move(x, y)                      # the wheel zooms around the pointer
    for _ in range(20):
        page.mouse.wheel(0, -400)
        if page.evaluate("window.lookalikeMap.pointsDrawn") <= 3:
            break
    assert where(page, lone) == pytest.approx((x, y), abs=1)
    page.wait_for_function("() => window.lookalikeMap.thumbnailsDrawn > 0")
    assert int(canvas.get_attribute("data-points")) <= 3
    assert page.evaluate("window.lookalikeMap.zoom") > 1.4
    page.wait_for_function("() => new URLSearchParams(location.search).get('at')")
    shot(page, "map-02-thumbnails")
    page.keyboard.press("0")                   # the whole map again
    page.wait_for_function("() => Math.abs(window.lookalikeMap.zoom - 1) < 1e-6")

    # hover names the image; a click makes it the reference, as in the grid
    target = int(found.ids[0])
    x, y = where(page, target)
    page.mouse.move(x, y)
    page.wait_for_selector(f"#map-hover[data-id='{target}']:not([hidden])")
    name = col.image(target)["name"]
    page.wait_for_function(f"() => document.querySelector('#map-hover-name').textContent"
                           f".startsWith({name!r})")
    page.mouse.click(x, y)
    assert [n["id"] for n in neighbours(page)][:1]
    assert refs_in_url(page) == [target]
    assert "view=map" in page.url and page.locator("#map-view").is_visible()
    shot(page, "map-03-walk")


def test_lasso_a_group_into_references_and_into_the_grid(page, site):
    live, col, _, found = site
    open_map(page, f"{live.url}/?view=map&method=pca")
    points = {int(i): where(page, int(i)) for i in found.ids}
    # a rectangle around the left half of the points: shift-drag along its edges
    xs = sorted(x for x, _ in points.values())
    cut = (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    box = page.locator("#map-canvas").bounding_box()
    left, top, bottom = box["x"] + 2, box["y"] + 2, box["y"] + box["height"] - 2
    inside = sorted(i for i, (x, _) in points.items() if x < cut)
    page.keyboard.down("Shift")
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in [(cut, top), (cut, bottom), (left, bottom), (left, top + 1)]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
    page.keyboard.up("Shift")
    count = page.locator("#map-selection-count")
    assert count.inner_text() == f"{len(inside)} images in the lasso"
    shot(page, "map-04-lasso")

    page.click("#map-refs")
    assert refs_in_url(page) == inside
    shown = [n["id"] for n in neighbours(page)]
    expected = live.client.post("/api/neighbors", json={"references": inside}).json()
    assert shown == [n["id"] for n in expected["neighbors"]]

    page.click("#map-filter")                  # the same images as the grid's filter
    page.wait_for_selector("#grid:not([hidden])")
    assert grid_ids(page) == inside
    assert page.locator("#sel-chip").is_visible()
    assert parse_qs(urlparse(page.url).query)["sel"]
    shot(page, "map-05-grid-filter")
    page.click("#sel-clear")
    page.wait_for_function(f"() => document.querySelectorAll('.cell[data-id]').length"
                           f" >= {len(col)}")


def test_colour_by_cluster_after_analyze(page, site):
    live, col, _, found = site
    open_map(page, f"{live.url}/?view=map&method=pca&color=cluster")
    page.wait_for_selector("body[data-map-colour=cluster]")
    legend = page.locator("#map-legend li").all_inner_texts()
    assert legend == [f"cluster {c.cluster} ({c.size})" if c.cluster >= 0
                      else f"in no cluster ({c.size})" for c in found.clusters]
    # the pixel under a point has its cluster's colour, and members of two clusters differ
    colours = {}
    for c in {int(v) for v in found.cluster if v >= 0}:
        member = int(found.ids[np.flatnonzero(found.cluster == c)[0]])
        x, y = where(page, member)
        colours[c] = page.evaluate(f"""() => {{
            const canvas = document.querySelector('#map-canvas');
            const box = canvas.getBoundingClientRect(), k = canvas.width / box.width;
            return [...canvas.getContext('2d').getImageData(
                Math.round(({x} - box.left) * k), Math.round(({y} - box.top) * k), 1, 1).data]
            }}""")
    assert len({tuple(v) for v in colours.values()}) == len(colours)
    page.select_option("#map-colour", "outlier")
    page.wait_for_selector("body[data-map-colour=outlier]")
    assert "color=outlier" in page.url
    shot(page, "map-06-outliers")


def test_grid_most_unusual_first_and_filtered_by_a_flag(page, site):
    live, col, flagged, found = site
    page.goto(live.url)
    page.wait_for_selector("body[data-thumbnails=loaded]")
    page.select_option("#sort", "outlier")
    page.wait_for_function("() => location.search.includes('sort=outlier')")
    page.wait_for_function(f"() => document.querySelector('.cell[data-index=\"0\"]')"
                           f"?.dataset.id === '{found.most_unusual(1)[0]}'")
    assert grid_ids(page) == found.most_unusual(len(found))
    page.select_option("#flag", "dark")
    page.wait_for_function("() => location.search.includes('flag=dark')")
    page.wait_for_function("() => document.querySelectorAll('.cell[data-id]:not([data-id=\"\"])')"
                           ".length === 1")
    dark = col.images(limit=None, flag="dark")[1][0]["id"]
    assert grid_ids(page) == [dark]
    assert page.locator("#count").inner_text().startswith("1 of ")
    shot(page, "map-07-grid-dark")
    page.reload()                              # the address holds it
    page.wait_for_selector("body[data-thumbnails=loaded]")
    assert page.locator("#flag").input_value() == "dark"
    assert page.locator("#sort").input_value() == "outlier"
    assert grid_ids(page) == [dark]


def test_a_moving_view_draws_a_subsample_then_every_point_at_rest(page, site):
    live, col, _, _ = site
    open_map(page, f"{live.url}/?view=map&method=pca")
    canvas = page.locator("#map-canvas")
    total = len(col)
    assert canvas.get_attribute("data-points") == str(total)
    assert canvas.get_attribute("data-detail") == "full"
    # as on a big map: a moving frame may draw 3 points; the view rests only when released
    page.evaluate("window.lookalikeMap.movingPoints = 3; window.lookalikeMap.idleMs = 600000")
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 5, y + 3, steps=3)  # a small drag: every point stays on screen
    page.wait_for_function("() => document.querySelector('#map-canvas').dataset.detail"
                           " === 'moving'")
    assert page.evaluate("window.lookalikeMap.moving")
    assert 0 < int(canvas.get_attribute("data-points")) < total
    moving = page.evaluate("window.lookalikeMap.pointsDrawn")
    assert moving <= 3 + 2  # the subsample: about its size
    page.mouse.up()                         # released: every point again, at once
    page.wait_for_function("() => document.querySelector('#map-canvas').dataset.detail"
                           " === 'full'")
    assert canvas.get_attribute("data-points") == str(total)
    assert not page.evaluate("window.lookalikeMap.moving")
    # the wheel has no end: every point once it has not turned for idleMs
    page.mouse.wheel(0, 40)
    page.wait_for_function("() => document.querySelector('#map-canvas').dataset.detail"
                           " === 'moving'")
    assert int(canvas.get_attribute("data-points")) < total
    page.evaluate("window.lookalikeMap.idleMs = 150")
    page.mouse.wheel(0, 40)                 # moving still (the first turn's wait is long)
    page.wait_for_function("() => window.lookalikeMap.moving === false"
                           " && document.querySelector('#map-canvas').dataset.detail === 'full'")
    assert canvas.get_attribute("data-points") == str(total)
