"""The web viewer in a real browser: Debian's chromium driven by Playwright.

Each step leaves a screenshot in artifacts/browser/. chromium is installed by test.sh
(`apt-get install chromium`); Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image

import lookalike
from imagefactory import write_bad_files, write_formats
from test_indexing import photo_families
from test_web_api import CREDIT, MODEL, serve

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"
from playwright import sync_api  # noqa: E402  (a test dependency: ./test.sh installs it)

# No skipping: a missing browser would hide untested work. ./test.sh installs it.
assert os.access(CHROMIUM, os.X_OK), \
    f"{CHROMIUM} is missing: run ./test.sh (apt-get install chromium)"

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


def indexed_and_served(folder: Path, db: Path, model: str = MODEL, **options):
    """A browser test module's `site`: `folder` indexed into `db` with `model` and served;
    yields (the live server, the collection), both closed after."""
    col = lookalike.Collection.index([folder], db=db, model=model)
    live = serve(db, **options)
    yield live, col
    live.stop()
    col.close()


def checked_page(browser):
    """A page in a context of its own (1280 x 800, downloads accepted) whose script errors
    and console errors fail the test: what each browser test module's `page` fixture yields."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.console_errors = errors  # a test expecting a refusal takes its console line out
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser, site):
    yield from checked_page(browser)


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


# -- keyboard, errors, loading, the address -----------------------------------------------------

def focused_index(page):
    return page.evaluate("() => document.activeElement.classList.contains('cell') ? "
                         "Number(document.activeElement.dataset.index) : null")


def test_arrow_keys_move_through_the_grid_and_enter_keeps_the_preview_open(page, site):
    live = site[0]
    open_viewer(page, live.url)
    columns = page.evaluate("""() => { const tops = [...document.querySelectorAll('.cell')]
        .map(c => c.getBoundingClientRect().top);
        return tops.filter(t => t === tops[0]).length; }""")
    assert 1 < columns < 16
    page.focus("#grid")
    page.keyboard.press("ArrowRight")                     # into the grid: its first image
    assert focused_index(page) == 0
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert focused_index(page) == 1 + columns
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")                        # the top edge holds
    assert focused_index(page) == 1
    page.keyboard.press("End")
    assert focused_index(page) == 15
    page.keyboard.press("ArrowLeft")
    name = page.evaluate("() => document.activeElement.title.split(' — ')[0]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#preview:not([hidden])")
    page.wait_for_timeout(300)                            # it used to close 14 ms later
    assert page.locator("#preview").is_visible()
    assert name in page.locator("#preview-caption").inner_text()
    shot(page, "13-keyboard-preview")
    page.keyboard.press("Escape")
    page.wait_for_selector("#preview", state="hidden")
    assert focused_index(page) == 14                      # back where the keyboard was
    page.keyboard.press(" ")                              # Space: the reference
    assert len(neighbours(page)) == 10


def test_a_failed_upload_says_so_on_top_and_clears_the_old_look_alikes(page, site, tmp_path):
    live = site[0]
    bad = write_bad_files(tmp_path / "bad")
    text = tmp_path / "notes.txt"
    text.write_text("not a picture\n")
    page.set_viewport_size({"width": 1280, "height": 600})
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    neighbours(page)
    page.locator("#panel").evaluate("p => p.scrollTop = p.scrollHeight")   # scrolled down
    for path, says in [(bad["truncated_png"], "truncated.png: truncated file"),
                       (text, "notes.txt: not an image file")]:
        page.set_input_files("#file", str(path))
        page.wait_for_selector("body[data-neighbors=error]")
        message = page.locator("#message")
        assert message.inner_text().startswith(says)
        box, panel = message.bounding_box(), page.locator("#panel").bounding_box()
        assert panel["y"] <= box["y"] and box["y"] + box["height"] <= panel["y"] + 200
        assert page.locator("#results").is_hidden() and page.locator("#refs").is_hidden()
        assert page.locator(".cell.near, .cell.ref").count() == 0
        assert refs_in_url(page) == []
        shot(page, f"14-upload-error-{path.suffix[1:]}")
    page.go_back()                                        # the earlier look-alikes are a step back
    assert len(neighbours(page)) == 10
    page.console_errors.remove("Failed to load resource: the server responded with a status "
                               "of 415 (Unsupported Media Type)")


def test_loading_look_alikes_are_never_labelled_with_another_metric(page, site):
    live = site[0]
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    neighbours(page)
    ref = refs_in_url(page)
    held = []
    page.route("**/api/neighbors?*", lambda route: held.append(route)
               if "metric=mahalanobis" in route.request.url or "metric=euclidean"
               in route.request.url else route.continue_())
    page.select_option("#metric", "mahalanobis")
    page.wait_for_selector("body[data-neighbors=loading]")
    info = page.locator("#result-info").inner_text()
    assert "Mahalanobis" in info and "loading" in info and "Cosine" not in info
    assert "stale" in page.get_attribute("#results", "class")
    shot(page, "15-loading")
    held.pop().continue_()
    page.wait_for_selector("body[data-neighbors=shown]")
    assert "Mahalanobis" in page.locator("#result-info").inner_text()

    page.select_option("#metric", "euclidean")            # held, then superseded by cosine
    page.wait_for_function("() => location.search.includes('metric=euclidean')")
    page.select_option("#metric", "cosine")
    shown = neighbours(page)
    for route in held:
        try:
            route.continue_()
        except Exception:  # the page has given that request up already
            pass
    page.wait_for_timeout(300)
    assert page.locator("#result-info").inner_text() == "10 by Cosine"
    assert neighbours(page) == shown == as_shown(expected(site, ref, k=10, metric="cosine"))


def test_an_address_the_collection_cannot_show_falls_back_and_says_so(page, site):
    live, col, files, root = site
    ref = col.images(limit=1)[1][0]["id"]
    page.goto(f"{live.url}/?ref={ref}&metric=bogus&k=abc&model=nope&cat=nowhere")
    shown = neighbours(page)
    assert shown == as_shown(expected(site, [ref], k=10, metric="cosine"))
    assert page.input_value("#metric") == "cosine" and page.input_value("#k") == "10"
    assert page.locator("#result-info").inner_text() == "10 by Cosine"
    page.wait_for_function("() => !location.search.includes('cat=')")
    assert urlparse(page.url).query == f"ref={ref}"
    assert page.input_value("#category") == ""
    notice = page.locator("#notice").inner_text()
    assert all(word in notice for word in ['"bogus"', '"abc"', '"nope"', '"nowhere"'])
    shot(page, "16-bad-address")


# -- layout ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """Images of many formats (HEIC, TIFF, small PNGs) indexed with two models."""
    root = tmp_path_factory.mktemp("varied")
    made = write_formats(root / "pics")
    for model in [MODEL, f"{MODEL}-int8"]:
        lookalike.Collection.index([root / "pics"], db=root / "pics.db", model=model).close()
    live = serve(root / "pics.db")
    yield live, made
    live.stop()


@pytest.mark.parametrize("width", [360, 420])
def test_the_page_fits_a_phone_screen_with_two_models(browser, varied, width):
    live, made = varied
    context = browser.new_context(viewport={"width": width, "height": 780})
    page = context.new_page()
    try:
        page.goto(live.url + "/?ref=1")
        page.wait_for_selector("body[data-neighbors=shown]")
        assert page.locator("#model-label").is_visible()  # two models: the model is named
        assert "squeezenet" in page.locator("#result-info").inner_text()
        assert page.evaluate("() => document.documentElement.scrollWidth <= "
                             "document.documentElement.clientWidth")
        overflowing = page.eval_on_selector_all("header *, #panel *", """els => els
            .filter(e => e.getClientRects().length && e.getBoundingClientRect().right >
                         document.documentElement.clientWidth + 0.5)
            .map(e => e.id || e.className || e.tagName)""")
        assert overflowing == []
        button = page.locator("label.button").bounding_box()
        assert button["x"] >= 0 and button["x"] + button["width"] <= width
        tops = [page.locator(f"#export-{f}").bounding_box()["y"] for f in ["csv", "json"]]
        heading = page.locator(".results-head h2").bounding_box()
        assert tops[0] == tops[1] and heading["height"] < 24   # one line, side by side
        page.screenshot(path=str(ARTIFACTS / f"17-phone-{width}.png"))
    finally:
        context.close()


# -- the look-alikes -------------------------------------------------------------------------------

def test_look_alikes_can_be_kept_to_the_grids_category(page, site):
    live = site[0]
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    neighbours(page)
    ref = refs_in_url(page)
    assert page.locator("#within").is_disabled()         # no category chosen yet
    page.select_option("#category", "coffee")
    page.check("#within")
    page.wait_for_function("() => location.search.includes('only=1')")
    page.wait_for_function("() => document.querySelectorAll('#neighbors li[data-id]').length == 4")
    assert neighbours(page) == as_shown(expected(site, ref, k=10, category="coffee"))
    assert "from coffee" in page.locator("#result-info").inner_text()
    page.select_option("#category", "chelsea")           # they follow the grid's category
    page.wait_for_function("() => document.querySelector('#result-info').textContent"
                           ".includes('from chelsea')")
    assert neighbours(page) == as_shown(expected(site, ref, k=10, category="chelsea"))
    page.reload()
    assert neighbours(page) == as_shown(expected(site, ref, k=10, category="chelsea"))
    assert page.is_checked("#within")


def test_show_in_grid_scrolls_to_the_reference(page, site):
    live, col, files, root = site
    page.set_viewport_size({"width": 1100, "height": 420})
    last = col.images(limit=None)[1][-1]["id"]
    page.goto(f"{live.url}/?ref={last}&size=256&cat=coffee")
    neighbours(page)

    def in_view():
        return page.evaluate("""id => { const c = document.querySelector(`.cell[data-id="${id}"]`);
            if (!c) return false; const r = c.getBoundingClientRect(),
            g = document.querySelector('#grid').getBoundingClientRect();
            return r.top >= g.top && r.bottom <= g.bottom; }""", last)

    page.click("#show-in-grid")                           # the filter leaves it out: cleared
    page.wait_for_function("() => !location.search.includes('cat=')")
    page.wait_for_function("id => document.activeElement.dataset.id == String(id)", arg=last)
    assert in_view() and page.locator("#grid").evaluate("g => g.scrollTop") > 0
    shot(page, "18-show-in-grid")
    page.locator("#grid").evaluate("g => g.scrollTop = 0")
    page.wait_for_timeout(100)
    page.locator("#neighbors li .zoom").first.click()     # from the preview of a look-alike
    first = int(page.locator("#neighbors li").first.get_attribute("data-id"))
    page.click("#preview-caption a:text('show in grid')")
    page.wait_for_function("id => document.activeElement.dataset.id == String(id)", arg=first)


def test_distances_come_with_a_bar_on_the_metrics_scale(page, site):
    live = site[0]
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    ref = refs_in_url(page)
    for metric in ["cosine", "euclidean"]:
        page.select_option("#metric", metric)
        page.wait_for_function("m => document.querySelector('#result-info').textContent"
                               ".toLowerCase().endsWith(m)", arg=metric)
        records = expected(site, ref, k=10, metric=metric)
        bars = page.eval_on_selector_all("#neighbors .distance", """ds => ds.map(d => ({
            closeness: Number(d.querySelector('.bar').style.getPropertyValue('--closeness')),
            title: d.title}))""")
        far = max(r["distance"] for r in records)
        for record, bar in zip(records, bars):
            want = 1 - record["distance"] if metric == "cosine" else \
                1 - 0.9 * record["distance"] / far           # scaled to the farthest shown
            assert bar["closeness"] == pytest.approx(max(0, want), abs=1e-3)
            assert repr(record["distance"]) in bar["title"]  # the exact number
    shot(page, "19-distance-bars")


def test_each_look_alike_names_its_nearest_reference(page, site):
    live, col, files, root = site
    open_viewer(page, live.url)
    cell(page, "rocket", "orig").click()
    neighbours(page)
    cell(page, "coffee", "orig").click(modifiers=["Shift"])
    page.wait_for_function("() => document.querySelectorAll('#ref-list li').length == 2")
    shown = page.eval_on_selector_all("#neighbors li[data-id]", """items => items.map(li =>
        [Number(li.dataset.id), li.querySelector('.nearest')?.textContent])""")
    ids, vectors = col.vectors()
    id_of = {item["path"]: item["id"] for item in col.images(limit=None)[1]}
    refs = ["rocket", "coffee"]
    ref_vectors = vectors[[list(ids).index(id_of[str(files[(c, "orig")])]) for c in refs]]
    seen = set()
    for image_id, nearest in shown:
        vector = vectors[[list(ids).index(image_id)]]
        category = refs[int(np.argmin(lookalike.distances(vector, ref_vectors, "cosine")[0]))]
        assert nearest == f"nearest to orig ({category})"
        seen.add(category)
    assert seen == set(refs)   # the two references each pull some look-alikes


def test_notes_of_the_search_are_shown_above_the_look_alikes(page, site):
    live, col, files, root = site
    ref = col.images(limit=1)[1][0]["id"]
    answer = live.client.get("/api/neighbors", params={"ref": ref, "metric": "mahalanobis"})
    notes = answer.json()["notes"]
    assert notes                                          # 16 images of 512 dimensions
    page.goto(f"{live.url}/?ref={ref}&metric=mahalanobis")
    neighbours(page)
    assert page.locator("#notes li").all_inner_texts() == notes
    notes_box = page.locator("#notes").bounding_box()
    assert notes_box["y"] < page.locator("#neighbors").bounding_box()["y"]


# -- the preview -----------------------------------------------------------------------------------

def test_the_preview_shows_small_images_sharp_at_fit_or_1_to_1_and_heic_too(page, varied):
    live, made = varied
    open_viewer(page, live.url)
    page.locator(".cell[title^='plain  ']").dblclick()    # 96 x 64
    page.wait_for_function("() => document.querySelector('#preview-img').naturalWidth == 96")
    img = page.locator("#preview-img")
    fit = img.bounding_box()
    assert fit["width"] > 5 * 96                          # enlarged to the window ...
    assert img.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"  # ... sharp
    shot(page, "20-preview-fit")
    page.click("#preview-zoom")
    assert img.bounding_box()["width"] == 96             # pixel for pixel
    assert img.evaluate("i => getComputedStyle(i).imageRendering") != "pixelated"
    page.keyboard.press("z")
    assert img.bounding_box()["width"] == fit["width"]
    page.keyboard.press("Escape")

    page.locator(".cell[title^='phone  ']").dblclick()    # a HEIC file
    page.wait_for_function("() => document.querySelector('#preview-img').naturalWidth == 96")
    assert "/display" in img.get_attribute("src")
    assert page.locator("#preview-caption a", has_text="original file").get_attribute(
        "href").endswith("/original")
    shot(page, "21-preview-heic")


def test_the_search_mode_offers_the_graph(page, site):
    """`mode=hnsw` in the address (or chosen in the select) asks for the graph index; the
    select is shown because the address names a mode, though the collection is small."""
    live, col, files, root = site
    ref = col.images(limit=1)[1][0]["id"]
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/neighbors" in r.url else None)
    open_viewer(page, f"{live.url}/?ref={ref}&mode=hnsw")
    shown = neighbours(page)
    assert page.locator("#mode-label").is_visible()
    assert page.input_value("#mode") == "hnsw"
    assert page.eval_on_selector("#mode", "s => s.selectedOptions[0].textContent") == \
        "approximate (graph)"
    assert any(parse_qs(urlparse(u).query).get("approximate") == ["hnsw"] for u in asked)
    answer = live.client.post("/api/neighbors", json={"references": [ref], "k": 10,
                                                      "approximate": "hnsw"}).json()
    assert answer["method"] == "hnsw" and shown == as_shown(answer["neighbors"])
    page.select_option("#mode", "ivf")
    page.wait_for_function("() => location.search.includes('mode=ivf')")
    with page.expect_response(lambda r: "/api/neighbors" in r.url
                              and "approximate=ivfpq" in r.url) as answered:
        page.select_option("#mode", "ivfpq")   # the compressed inverted file, for 10M+ images
    assert answered.value.json()["method"] == "ivfpq"
    assert "mode=ivfpq" in page.url
    page.select_option("#mode", "hnsw")
    page.wait_for_function("() => location.search.includes('mode=hnsw')")
