"""Tags in the viewer, in chromium: the grid filtered by tag words (kept in the address),
a word that names no class refused with the nearest names, and a preview's tags."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from test_indexing import photo_families
from test_web_api import json_error
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
    root = tmp_path_factory.mktemp("browser-tags")
    photo_families(root / "photos")
    yield from indexed_and_served(root / "photos", root / "photos.db", warm_up=False)


@pytest.fixture
def page(browser, site):  # noqa: F811
    yield from checked_page(browser)


def cell_titles(page) -> list[str]:
    return page.eval_on_selector_all(".cell", "cells => cells.map(c => c.title)")


def test_the_api_filters_by_tag_and_says_an_images_tags(site):
    live, col = site
    answer = httpx.get(f"{live.url}/api/images", params={"tag": "cats"}).json()
    assert answer["total"] == 4 and all("chelsea" in i["path"] for i in answer["items"])
    chosen = httpx.post(f"{live.url}/api/images", json={
        "ids": [answer["items"][0]["id"], 1], "tag": "cat"}).json()
    assert [i["id"] for i in chosen["items"]] == [answer["items"][0]["id"]]
    espresso = col.tagged("espresso")[0]["id"]
    tags = httpx.get(f"{live.url}/api/images/{espresso}/tags").json()["tags"]
    assert tags[0]["name"] == "espresso" and 0 < tags[0]["score"] <= 1
    where = httpx.get(f"{live.url}/api/images/{espresso}/position", params={"tag": "coffee"})
    assert where.json()["total"] == 4 and where.json()["position"] in range(4)
    cat = answer["items"][0]["id"]
    away = httpx.get(f"{live.url}/api/images/{cat}/position", params={"tag": "coffee"})
    assert away.json()["position"] is None
    refused = json_error(httpx.get(f"{live.url}/api/images", params={"tag": "catt"}), 400)
    assert "no ImageNet class is called 'catt'" in refused and "'cat'" in refused


def test_the_grid_keeps_the_images_tagged_with_a_word_and_the_preview_lists_tags(page, site):
    live, col = site
    open_viewer(page, live.url)
    assert len(cell_titles(page)) == 16
    page.fill("#tag", "Cat")
    page.press("#tag", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.cell').length === 4")
    assert all("— chelsea" in t for t in cell_titles(page))
    assert parse_qs(urlparse(page.url).query)["tag"] == ["Cat"]
    shot(page, "tags-1-grid-filtered-by-cat")
    page.focus("#grid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_selector("#preview-tags")
    text = page.locator("#preview-tags").inner_text()
    assert text.startswith("Tags: ") and any(n in text for n in ("tabby", "tiger cat",
                                                                  "Egyptian cat"))
    shot(page, "tags-2-preview-lists-tags")
    page.keyboard.press("Escape")
    page.reload()                                     # the address keeps the filter
    page.wait_for_function("() => document.querySelectorAll('.cell').length === 4")
    assert page.input_value("#tag") == "Cat"


def test_a_word_that_names_no_class_says_the_nearest_names(page, site):
    live, _ = site
    open_viewer(page, live.url)
    page.fill("#tag", "catt")
    page.press("#tag", "Enter")
    page.wait_for_selector("#message.error:not([hidden])")
    message = page.locator("#message").inner_text()
    assert "no ImageNet class is called 'catt'" in message and "'cat'" in message
    page.console_errors[:] = [e for e in page.console_errors if "400" not in e]
    shot(page, "tags-3-unknown-word")
