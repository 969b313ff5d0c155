"""Plate columns in the web viewer, in a real browser: the preview names the image's plate,
well and field, and the look-alikes can be normalised per plate (see test_web_browser.py for
the browser set-up)."""

import pytest

import lookalike
from lookalike.synthetic_plates import write_plates
from test_web_api import MODEL, serve
from test_web_browser import (  # noqa: F401 (fixtures)
    browser,
    checked_page,
    neighbours,
    open_viewer,
    shot,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def plates_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("plates")
    s = write_plates(root / "plates", plates=2, conditions=2, wells_per_condition=1, fields=2,
                     size=64)
    col = lookalike.Collection.index([s.folder], db=root / "p.db", model=MODEL)
    live = serve(root / "p.db")
    live.collection = col
    yield live
    live.stop()
    col.close()


@pytest.fixture
def page(browser, plates_site):  # noqa: F811
    yield from checked_page(browser)


def test_the_preview_names_the_plate_well_and_field(page, plates_site):
    open_viewer(page, plates_site.url)
    page.focus("#grid")
    page.keyboard.press("ArrowRight")    # the first image: P1, A01, field 1
    page.keyboard.press("Enter")
    page.wait_for_selector("#preview:not([hidden])")
    caption = page.locator("#preview-caption").inner_text()
    assert "plate P1 · well A01 · well_row A · well_column 1 · field 1" in caption
    assert "channels DNA,Actin,Mito" in caption
    titles = page.eval_on_selector_all("#title option", "os => os.map(o => o.textContent)")
    assert {"plate", "well", "field"} <= set(titles)   # the grid can be titled by them too


def wait_for_info(page, text):
    page.wait_for_function("t => document.querySelector('#result-info').textContent.includes(t)"
                           " && document.body.dataset.neighbors === 'shown'", arg=text)


def test_look_alikes_normalised_per_plate_and_kept_in_the_address(page, plates_site):
    col = plates_site.collection
    ref = col.images(limit=None)[1][2]["id"]                  # P1, B01 (enlarged), field 1
    open_viewer(page, f"{plates_site.url}/?ref={ref}")
    plain = [n["id"] for n in neighbours(page)]
    assert plain == col.nearest_to_ids([ref]).ids
    assert page.is_visible("#normalise-box") and page.is_disabled("#norm-controls")

    page.check("#normalise")                                  # against all the plate's images
    wait_for_info(page, "normalised per plate against all its images")
    normalised = [n["id"] for n in neighbours(page)]
    assert normalised == col.nearest_to_ids([ref], normalise="plate").ids != plain
    page.fill("#norm-controls", "a1")                         # the control wells, as typed
    page.press("#norm-controls", "Enter")
    wait_for_info(page, "normalised per plate against control wells A01")
    assert [n["id"] for n in neighbours(page)] == col.nearest_to_ids(
        [ref], normalise="plate", controls="A01").ids
    assert "normalise=plate&controls=a1" in page.url
    shot(page, "plates-normalised")

    page.reload()                                              # the address keeps it
    page.wait_for_selector("body[data-neighbors=shown]")
    wait_for_info(page, "control wells A01")
    assert page.is_checked("#normalise") and page.input_value("#norm-controls") == "a1"

    page.fill("#norm-controls", "Z99")                         # no such wells: one line
    page.press("#norm-controls", "Enter")
    page.wait_for_selector("#message.error:not([hidden])")
    assert "--controls Z99: no image is in these wells" in page.inner_text("#message")
    page.console_errors[:] = [e for e in page.console_errors if "status of 400" not in e]

    page.uncheck("#normalise")                                 # back to the stored vectors
    page.wait_for_selector("body[data-neighbors=shown]")
    assert [n["id"] for n in neighbours(page)] == plain
    assert "normalise" not in page.url and page.is_disabled("#norm-controls")
