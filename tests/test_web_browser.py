"""The web viewer in a real browser: Debian's chromium driven by Playwright.

Each step leaves a screenshot in artifacts/browser/. chromium is installed by test.sh
(`apt-get install chromium`); Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

import lookalike
from test_indexing import photo_families
from test_web_api import CREDIT, MODEL, serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"
from playwright import sync_api  # noqa: E402  (a test dependency: ./test.sh installs it)

# No skipping: a missing browser would hide untested work. ./test.sh installs it.
assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run ./test.sh (apt-get install chromium)"

pytestmark = pytest.mark.browser  # left out of ./test.sh --fast


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    files = photo_families(root / "photos")
    (root / "photos" / "ATTRIBUTION.txt").write_text(CREDIT + "\n")
    col = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    live = serve(root / "photos.db")
    yield live, col, files, root
    live.stop()
    col.close()


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert not errors, errors


def shot(page, name: str) -> None:
    page.wait_for_timeout(100)   # let decoded thumbnails reach the screen
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def open_viewer(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-thumbnails=loaded]")


def neighbours(page) -> list[dict]:
    """What the side panel lists: rank, name, category, distance (as shown)."""
    page.wait_for_selector("body[data-neighbors=shown]")
    return page.eval_on_selector_all("#neighbors li[data-id]", """items => items.map(li => ({
        id: Number(li.dataset.id), rank: Number(li.querySelector('.rank').textContent),
        name: li.querySelector('.name').textContent,
        distance: li.querySelector('.distance').textContent}))""")


def cell(page, category: str, name: str):
    return page.locator(f".cell[title^='{name} — {category} ']")


def refs_in_url(page) -> list[int]:
    value = parse_qs(urlparse(page.url).query).get("ref", [""])[0]
    return [int(v) for v in value.split(",") if v]


def expected(site, ref_ids, **query) -> list[dict]:
    live = site[0]
    body = {"references": ref_ids, **query}
    return live.client.post("/api/neighbors", json=body).json()["neighbors"]


def as_shown(records) -> list[dict]:
    return [{"id": r["id"], "rank": r["rank"], "name": r["name"],
             "distance": f"{r['distance']:.4f}"} for r in records]


def test_open_click_walk_go_back_and_change_the_metric(page, site):
    live, col, files, root = site
    open_viewer(page, live.url)
    assert page.locator(".cell").count() == 16          # the whole (small) collection
    page.wait_for_function("() => [...document.querySelectorAll('.cell img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#count").inner_text() == "16 images"
    assert page.locator("#credits").inner_text() == CREDIT
    shot(page, "01-grid")

    cell(page, "rocket", "orig").click()
    shown = neighbours(page)
    start = refs_in_url(page)
    assert len(start) == 1 and len(shown) == 10
    assert shown == as_shown(expected(site, start, k=10, metric="cosine"))
    assert {n["name"] for n in shown[:3]} <= {"bright", "small", "crop"}
    assert page.locator("#ref-list .name").inner_text() == "orig"
    shot(page, "02-look-alikes")

    page.locator("#neighbors li").first.click()          # walk on
    page.wait_for_function("ids => new URLSearchParams(location.search).get('ref') == ids",
                           arg=str(shown[0]["id"]))
    walked = neighbours(page)
    assert walked == as_shown(expected(site, [shown[0]["id"]], k=10, metric="cosine"))
    assert start[0] in [n["id"] for n in walked]          # the way back is among its look-alikes
    shot(page, "03-walk")

    page.go_back()
    page.wait_for_function("id => new URLSearchParams(location.search).get('ref') == id",
                           arg=str(start[0]))
    assert neighbours(page) == shown
    shot(page, "04-back")
    page.go_forward()
    page.wait_for_function("id => new URLSearchParams(location.search).get('ref') == id",
                           arg=str(shown[0]["id"]))
    page.go_back()

    page.select_option("#metric", "euclidean")
    page.wait_for_function("() => location.search.includes('metric=euclidean')")
    page.wait_for_function(
        "() => document.querySelector('#result-info').textContent.includes('Euclidean')")
    assert neighbours(page) == as_shown(expected(site, start, k=10, metric="euclidean"))
    page.fill("#k", "3")
    page.press("#k", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#neighbors li').length == 3")
    shot(page, "05-metric-euclidean-k3")

    page.reload()                                        # the URL holds the whole view
    page.wait_for_selector("body[data-neighbors=shown]")
    assert neighbours(page) == as_shown(expected(site, start, k=3, metric="euclidean"))
    assert page.input_value("#metric") == "euclidean" and page.input_value("#k") == "3"


def test_upload_a_file_to_find_its_look_alikes(page, site, tmp_path):
    live, col, files, root = site
    query = tmp_path / "my coffee.png"
    Image.open(files[("coffee", "bright")]).rotate(4).save(query)
    open_viewer(page, live.url)
    page.set_input_files("#file", str(query))
    shown = neighbours(page)
    assert {n["name"] for n in shown[:4]} == {"orig", "bright", "small", "crop"}
    categories = page.eval_on_selector_all("#neighbors .sub", "s => s.map(e => e.textContent)")
    assert all(c.startswith("coffee") for c in categories[:4])
    assert page.locator("#ref-list .name").inner_text() == "my coffee.png"
    assert page.locator("#ref-list .sub").inner_text().startswith("uploaded file")
    shot(page, "06-upload")
    page.locator("#neighbors li").first.click()          # walk on from the upload
    page.wait_for_function("() => new URLSearchParams(location.search).has('ref')")
    page.wait_for_function("name => document.querySelector('#ref-list .name').textContent == name",
                           arg=shown[0]["name"])

    # Dropping a file from the desktop does the same (here: a rocket's thumbnail as a file).
    rocket = col.image(int(cell(page, "rocket", "crop").get_attribute("data-id")))
    drop = page.evaluate_handle("""async (id) => {
        const blob = await (await fetch(`/api/images/${id}/thumbnail?size=256`)).blob();
        const data = new DataTransfer();
        data.items.add(new File([blob], 'dropped rocket.jpg', { type: blob.type }));
        return data;
    }""", rocket["id"])
    page.dispatch_event("#grid", "dragenter", {"dataTransfer": drop})
    assert page.locator("#drop").is_visible()
    shot(page, "06b-drop")
    page.dispatch_event("#grid", "drop", {"dataTransfer": drop})
    page.wait_for_function(
        "() => document.querySelector('#ref-list .name')?.textContent == 'dropped rocket.jpg'")
    dropped = neighbours(page)
    assert page.locator("#drop").is_hidden()
    assert {n["name"] for n in dropped[:4]} == {"orig", "bright", "small", "crop"}
    assert all(c.startswith("rocket") for c in page.eval_on_selector_all(
        "#neighbors .sub", "s => s.map(e => e.textContent)")[:4])


def test_several_references_preview_filters_and_export(page, site):
    live, col, files, root = site
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    neighbours(page)
    cell(page, "chelsea", "orig").click(modifiers=["Shift"])
    page.wait_for_function("() => document.querySelectorAll('#ref-list li').length == 2")
    refs = refs_in_url(page)
    shown = neighbours(page)
    assert len(refs) == 2
    assert shown == as_shown(expected(site, refs, k=10, metric="cosine"))
    assert page.locator(".cell.ref").count() == 2
    shot(page, "07-two-references")

    with page.expect_download() as download:
        page.click("#export-json")
    exported = json.loads(Path(download.value.path()).read_text())
    assert [r["id"] for r in exported] == [n["id"] for n in shown]
    assert set(exported[0]) == set(lookalike.api.RECORD_FIELDS)
    with page.expect_download() as download:
        page.click("#export-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == ",".join(lookalike.api.RECORD_FIELDS) and len(lines) == 11

    page.locator("#neighbors li .zoom").first.click()    # full-size preview
    page.wait_for_selector("#preview:not([hidden])")
    first = page.locator("#preview-caption").inner_text()
    assert first.startswith("#1")
    page.wait_for_function("() => document.querySelector('#preview-img').naturalWidth > 0")
    shot(page, "08-preview")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "() => document.querySelector('#preview-caption').textContent.startsWith('#2')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#preview", state="hidden")

    page.select_option("#category", "coffee")
    page.wait_for_function("() => document.querySelectorAll('.cell:not(.placeholder)').length == 4")
    page.fill("#search", "cro")
    page.wait_for_function("() => document.querySelectorAll('.cell:not(.placeholder)').length == 1")
    assert page.locator("#count").inner_text() == "1 of 16 images"
    page.select_option("#title", "name")
    assert page.locator(".cell .title").inner_text() == "crop"
    shot(page, "09-filtered")
    page.fill("#search", "")
    page.select_option("#category", "")
    page.wait_for_function(
        "() => document.querySelectorAll('.cell:not(.placeholder)').length == 16")
    page.locator("#size").fill("256")
    width = page.eval_on_selector(".cell", "c => c.getBoundingClientRect().width")
    assert width == 256
    shot(page, "10-large-thumbnails")


def test_api_documentation_renders_offline(page, site):
    """/docs must not need a CDN: the machine running lookalike may have no internet."""
    live = site[0]
    requested = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(live.url.rstrip("/") + "/docs")
    page.get_by_text("/api/neighbors").first.wait_for(timeout=15000)
    assert page.locator(".opblock").count() >= 6        # every route is listed
    assert all(u.startswith(live.url.rstrip("/")) for u in requested), requested
    shot(page, "12-api-docs")
