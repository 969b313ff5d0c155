"""Plate columns in the web viewer, in a real browser: the preview names the image's plate,
well and field (see test_web_browser.py for the browser set-up)."""

import pytest

import lookalike
from lookalike.synthetic_plates import write_plates
from test_web_api import MODEL, serve
from test_web_browser import browser, checked_page, open_viewer  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def plates_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("plates")
    s = write_plates(root / "plates", plates=2, conditions=2, wells_per_condition=1, fields=2,
                     size=64)
    col = lookalike.Collection.index([s.folder], db=root / "p.db", model=MODEL)
    live = serve(root / "p.db")
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
