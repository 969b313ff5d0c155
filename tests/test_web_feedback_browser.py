"""The viewer's ✓ / ✗ marks in chromium: a look-alike marked ✗ takes its family out of the
list, two marked ✓ refine it, the marks are listed, undone, and kept in the address."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from test_indexing import photo_families
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
    root = tmp_path_factory.mktemp("browser-feedback")
    photo_families(root / "photos")
    yield from indexed_and_served(root / "photos", root / "photos.db", warm_up=False)


@pytest.fixture
def page(browser, site):  # noqa: F811
    yield from checked_page(browser)


def shown_ids(page) -> list[int]:
    page.wait_for_selector("body[data-neighbors=shown]")
    return page.eval_on_selector_all("#neighbors li[data-id]",
                                     "items => items.map(li => Number(li.dataset.id))")


def marks_in_url(page) -> dict[str, list[int]]:
    query = parse_qs(urlparse(page.url).query)
    return {side: [int(v) for v in query.get(side, [""])[0].split(",") if v]
            for side in ("like", "unlike")}


def api_ids(live, ref: int, **marks) -> list[int]:
    body = {"references": [ref], "k": 8, **marks}
    return [n["id"] for n in live.client.post("/api/neighbors", json=body).json()["neighbors"]]


def wait_for_list(page, ids: list[int]) -> None:
    page.wait_for_function("ids => [...document.querySelectorAll('#neighbors li[data-id]')]"
                           ".map(li => Number(li.dataset.id)).join() === ids.join()", arg=ids)


def test_mark_not_like_then_more_like_refine_undo_and_reload(page, site):
    live, col = site
    category = {r["id"]: r["category"] for r in col.images(limit=None)[1]}
    ref = next(i for i, c in category.items() if c == "chelsea"
               and col.image(i)["name"] == "orig")
    open_viewer(page, f"{live.url}/?ref={ref}&k=8")
    first = shown_ids(page)
    assert first == api_ids(live, ref)
    wrong = next(i for i in first if category[i] != "chelsea")
    assert sum(category[i] == category[wrong] for i in first) >= 2  # its family is listed

    # ✗ by the keyboard: the look-alike and its family leave the list
    page.focus(f"#neighbors li[data-id='{wrong}'] .mark.unlike")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"unlike={wrong}"))
    after = api_ids(live, ref, unlike=[wrong])
    wait_for_list(page, after)
    assert not [i for i in after if category[i] == category[wrong]]
    assert page.evaluate("document.activeElement.matches('#neighbors .mark.unlike')")
    assert re.fullmatch(r"✗ \d\.\d{4}",
                        page.locator("#neighbors .unlike-distance").first.inner_text())
    assert page.locator("#mark-list li.unlike").count() == 1
    shot(page, "feedback-unlike")

    # ✓ on two look-alikes: the list is refined
    liked = [i for i in after if category[i] != "chelsea"][:1] + after[:1]
    for i in liked:
        page.click(f"#neighbors li[data-id='{i}'] .mark.like")
        page.wait_for_url(re.compile(rf"like=[\d,]*{i}"))
    assert marks_in_url(page) == {"like": liked, "unlike": [wrong]}
    refined = api_ids(live, ref, like=liked, unlike=[wrong])
    wait_for_list(page, refined)
    assert "refined (linear) from 3 ✓, 1 ✗" in page.inner_text("#result-info")
    assert page.locator("#mark-list li.like").count() == 2
    shot(page, "feedback-refined")

    # the address keeps the marks: a reload shows the same
    page.reload()
    page.wait_for_selector("body[data-thumbnails=loaded]")
    assert shown_ids(page) == refined
    assert page.locator("#mark-list li").count() == 3 and not page.is_hidden("#marks")

    # undo the ✗, then clear the marks
    page.click(f"#mark-list li.unlike[data-id='{wrong}'] .undo")
    page.wait_for_function("!location.search.includes('unlike=')")
    wait_for_list(page, api_ids(live, ref, like=liked))
    page.click("#clear-marks")
    wait_for_list(page, first)
    assert marks_in_url(page) == {"like": [], "unlike": []} and page.is_hidden("#marks")
    page.go_back()                        # each mark is a step of the history
    wait_for_list(page, api_ids(live, ref, like=liked))
