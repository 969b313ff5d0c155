"""The preview's display window for a 16-bit image in chromium: changing the low and high
percentiles re-renders the picture, and the choice stays for the session."""

from __future__ import annotations

import pytest

from test_web_browser import browser, checked_page, open_viewer, shot  # noqa: F401 (fixture)
from test_web_window import deep  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

PIXEL = """([x, y]) => {
  const img = document.querySelector('#preview-img');
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0);
  return context.getImageData(x, y, 1, 1).data[0];
}"""


@pytest.fixture
def page(browser, deep):  # noqa: F811
    yield from checked_page(browser)


def shown(page, window: str | None) -> None:
    """Wait until the preview shows the image through `window` (None: the collection's)."""
    page.wait_for_function("""w => { const img = document.querySelector('#preview-img');
        const query = new URL(img.src).searchParams.get('window');
        return query === w && img.complete && img.naturalWidth === 64; }""", arg=window)


def test_the_preview_window_re_renders_a_16_bit_image_and_is_kept(page, deep):  # noqa: F811
    live, _, ids = deep
    open_viewer(page, live.url)
    page.locator(".cell[title^='ramp16 ']").dblclick()
    shown(page, None)
    page.wait_for_selector("#preview-window:not([hidden])")
    assert page.locator("#window-type").inner_text() == "uint16"
    assert page.input_value("#window-low") == "0.1" and page.input_value("#window-high") == "99.9"
    before = page.evaluate(PIXEL, [63, 24])
    page.fill("#window-low", "0")
    page.fill("#window-high", "100")
    page.locator("#window-high").dispatch_event("change")
    shown(page, "0,100")
    after = page.evaluate(PIXEL, [63, 24])
    assert before > 240 and after < 10          # the hot pixel now sets white: the rest is dark
    shot(page, "window-0-100")

    page.fill("#window-low", "100")            # a low above the high is refused in place
    page.locator("#window-low").dispatch_event("change")
    assert "low below the high" in page.locator("#window-error").inner_text()
    page.keyboard.press("Escape")

    page.locator(".cell[title^='plain ']").dblclick()   # 8-bit: no window to offer
    page.wait_for_function("() => document.querySelector('#preview-img').naturalWidth === 40")
    page.wait_for_timeout(200)
    assert page.locator("#preview-window").is_hidden()
    page.keyboard.press("Escape")

    page.locator(".cell[title^='ramp16 ']").dblclick()  # the window kept for the session
    shown(page, "0,100")
    page.wait_for_selector("#preview-window:not([hidden])")
    assert page.input_value("#window-low") == "0" and page.input_value("#window-high") == "100"
    page.click("#window-reset")
    shown(page, None)
    assert page.evaluate(PIXEL, [63, 24]) > 240
