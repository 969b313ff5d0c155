"""The Duplicates view in chromium: open it from the header, see the groups, change a keeper,
mark a group not duplicates (and undo), compare two copies with the difference toggle, export
the decisions CSV and the move script, and run that script for real."""

from __future__ import annotations

import csv
import io
import os
import subprocess

import pytest

from test_web_api import serve
from test_web_browser import browser, checked_page, shot  # noqa: F401  (the chromium fixture)
from test_web_duplicates import make_collection

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-dups")
    col, files = make_collection(root)
    live = serve(root / "dups.db", warm_up=False)
    yield live, col, files, root
    live.stop()
    col.close()


@pytest.fixture
def page(browser, site):  # noqa: F811
    yield from checked_page(browser)


def groups_shown(page) -> list[dict]:
    page.wait_for_selector("body[data-duplicates=shown]")
    return page.eval_on_selector_all(".dup-group", """groups => groups.map(g => ({
        group: Number(g.dataset.group),
        ids: [...g.querySelectorAll('.dup-member')].map(m => Number(m.dataset.id)),
        kept: [...g.querySelectorAll('.dup-member.kept')].map(m => Number(m.dataset.id))}))""")


def downloaded(page, click) -> bytes:
    with page.expect_download() as info:
        click()
    return open(info.value.path(), "rb").read()


def test_review_duplicates_decide_and_export(page, site, tmp_path):
    live, col, files, root = site
    page.goto(live.url)
    page.wait_for_selector("body[data-thumbnails=loaded]")
    page.click("#dup-link")
    shown = groups_shown(page)
    assert "view=duplicates" in page.url
    expected = live.client.get("/api/duplicates").json()
    assert [g["ids"] for g in shown] == [[i["id"] for i in g["images"]]
                                         for g in expected["groups"]]
    assert [g["kept"] for g in shown] == [[g["keep"]] for g in expected["groups"]]
    assert page.locator("#dup-summary").inner_text().startswith(
        f"{len(shown)} groups, {expected['images_total']} images")
    first = page.locator(".dup-group").first
    assert first.locator(".dup-member").first.locator(".dup-facts").inner_text().startswith(
        "240×180 · JPEG · ")
    page.wait_for_function("() => [...document.querySelectorAll('.dup-thumb img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "dup-01-groups")

    # change the keeper of the first group: one click; a reload keeps it
    other = next(i for i in shown[0]["ids"] if i not in shown[0]["kept"])
    page.click(f".dup-member[data-id='{other}'] .dup-keep")
    assert groups_shown(page)[0]["kept"] == [other]
    page.reload()
    assert groups_shown(page)[0]["kept"] == [other]

    # "not duplicates" on the second group: gone, undone, gone again and after a reload too
    second = shown[1]
    page.click(f".dup-group[data-group='{second['group']}'] .dup-not")
    page.wait_for_selector(f".dup-group[data-group='{second['group']}']", state="detached")
    assert page.locator("#dup-summary").inner_text().startswith("1 group, ")
    page.click("#dup-undo")
    page.wait_for_selector(f".dup-group[data-group='{second['group']}']")
    assert len(groups_shown(page)) == 2
    page.click(f".dup-group[data-group='{second['group']}'] .dup-not")
    page.wait_for_selector(f".dup-group[data-group='{second['group']}']", state="detached")
    page.reload()
    assert [g["ids"] for g in groups_shown(page)] == [shown[0]["ids"]]

    # compare two members: same scale, zoom, the difference toggle
    page.click(".dup-group >> nth=0 >> .dup-compare")
    page.wait_for_selector("#compare[data-loaded=yes]")
    width = page.eval_on_selector("#compare-canvas-a", "e => e.getBoundingClientRect().width")
    assert width == page.eval_on_selector("#compare-canvas-b",
                                          "e => e.getBoundingClientRect().width")
    page.select_option("#compare-zoom", "2")
    assert page.eval_on_selector("#compare-canvas-a", "e => e.getBoundingClientRect().width") \
        == pytest.approx(2 * width, abs=2)
    page.click("#compare-diff")
    assert page.get_attribute("#compare", "data-difference") == "on"
    assert page.is_visible("#compare-over") and not page.is_visible("#compare-fig-b")
    assert page.eval_on_selector("#compare-over", "e => getComputedStyle(e).mixBlendMode") \
        == "difference"
    shot(page, "dup-02-difference")
    page.keyboard.press("Escape")
    assert page.is_hidden("#compare")

    # the decisions: CSV, and the move script into a folder the user names
    rows = list(csv.DictReader(io.StringIO(downloaded(page, lambda: page.click("#dup-csv"))
                                           .decode())))
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[other]["action"] == "keep" and by_id[other]["keep"] == "true"
    assert {by_id[i]["action"] for i in second["ids"]} == {"not-duplicate"}
    assert sorted(r["action"] for r in rows if int(r["id"]) in shown[0]["ids"]) == \
        ["keep"] + ["move"] * (len(shown[0]["ids"]) - 1)
    target = tmp_path / "moved copies"
    page.fill("#dup-target", str(target))
    script = downloaded(page, lambda: page.click("#dup-move button"))
    assert script.startswith(b"#!/bin/sh") and str(target).encode() in script
    (tmp_path / "move.sh").write_bytes(script)
    done = subprocess.run(["sh", str(tmp_path / "move.sh")], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    paths = {r["id"]: r["path"] for r in col.store.rows(shown[0]["ids"] + second["ids"])}

    for image_id in shown[0]["ids"]:
        assert os.path.exists(paths[image_id]) == (image_id == other)
    assert all(os.path.exists(paths[i]) for i in second["ids"])  # not duplicates: untouched

    # Back: the grid again
    page.go_back()
    page.wait_for_function("() => !document.querySelector('main').hidden")
    assert page.is_hidden("#duplicates")
