"""The preview's "why?" toggle in chromium: on a look-alike (a crop of the reference), heat is
drawn over it and over its reference, the reference's hottest part where the crop came from."""

from __future__ import annotations

import pytest
from PIL import Image
from skimage import data

from lookalike.models import DEFAULT_MODEL
from test_explain import HEAD, crop, inside
from test_web_browser import (  # noqa: F401  (fixtures)
    browser,
    checked_page,
    indexed_and_served,
    open_viewer,
    shot,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-explain")
    (root / "photos").mkdir()
    Image.fromarray(data.chelsea()).save(root / "photos" / "chelsea.png")
    Image.fromarray(crop(data.chelsea(), HEAD)).save(root / "photos" / "head.png")
    Image.fromarray(data.astronaut()).save(root / "photos" / "astronaut.png")
    yield from indexed_and_served(root / "photos", root / "photos.db", DEFAULT_MODEL,
                                  warm_up=False)


@pytest.fixture
def page(browser, site):  # noqa: F811
    yield from checked_page(browser)


def test_why_overlays_where_a_look_alike_and_its_reference_match(page, site):
    live, col = site
    known = {r["name"]: r["id"] for r in col.images(limit=None)[1]}
    open_viewer(page, f"{live.url}/?ref={known['chelsea']}&k=2")
    page.wait_for_selector("body[data-neighbors=shown]")
    page.click(f"#neighbors li[data-id='{known['head']}'] .zoom")
    toggle = page.locator("#preview-why")
    toggle.wait_for(state="visible")
    assert toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    page.wait_for_selector("#preview[data-why=shown]")
    assert toggle.get_attribute("aria-pressed") == "true"
    answer = live.client.get("/api/explain",
                             params={"a": known["chelsea"], "b": known["head"]}).json()
    # On the reference, the heat peaks where the crop came from; the canvases hold the grids.
    peak = [float(v) for v in page.get_attribute("#why-ref-heat", "data-peak").split(",")]
    assert inside(peak, HEAD) and peak == pytest.approx(answer["images"][0]["peak"], abs=1e-3)
    grid = page.evaluate("[document.getElementById('preview-heat').width,"
                         " document.getElementById('preview-heat').height]")
    assert grid == [7, 7]
    # The look-alike's heat lies exactly over the look-alike.
    boxes = [page.locator(s).bounding_box() for s in ("#preview-img", "#preview-heat")]
    assert boxes[0] == pytest.approx(boxes[1], abs=1)
    assert "distance" in page.locator("#why-caption").inner_text()
    shot(page, "explain-why")
    # W turns it off again; a reference's own preview offers no "why?".
    page.keyboard.press("w")
    page.wait_for_selector("#preview:not([data-why])")
    assert page.locator("#preview-heat").is_hidden() and page.locator("#why-reference").is_hidden()
    page.keyboard.press("Escape")
    page.locator("#ref-list li").first.locator("img").click()
    page.wait_for_selector("#preview:not([hidden])")
    assert page.locator("#preview-why").is_hidden()
