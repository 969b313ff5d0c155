"""The Duplicates view's JSON API, over HTTP against the real app on loopback, on a collection of
real edited copies made here: groups, caching, "not duplicates" and its undo, the decisions
exports, bad input; and `lookalike duplicates --move-script`."""

from __future__ import annotations

import csv
import io
import os
import shutil
import threading

import pytest
from PIL import Image, ImageEnhance

import lookalike
from lookalike.cli import main
from test_web_api import MODEL, json_error, serve

PHOTOS = ("chelsea", "coffee")
EDITS = ("orig", "same", "half", "jpeg60", "bright")
LONERS = ("camera", "rocket")


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize((240, 180))


def write_copies(folder) -> dict[str, dict[str, str]]:
    """Each photo with edited copies (the same bytes, half size, JPEG 60, brighter) in a
    folder of its own, and two unrelated photos."""
    files: dict[str, dict[str, str]] = {}
    for name in PHOTOS:
        out = folder / name
        out.mkdir(parents=True)
        base = _photo(name)
        base.save(out / "orig.jpg", quality=95)
        shutil.copyfile(out / "orig.jpg", out / "same.jpg")
        base.resize((120, 90), Image.Resampling.LANCZOS).save(out / "half.jpg", quality=95)
        base.save(out / "jpeg60.jpg", quality=60)
        ImageEnhance.Brightness(base).enhance(1.15).save(out / "bright.jpg", quality=95)
        files[name] = {edit: str(out / f"{edit}.jpg") for edit in EDITS}
    for name in LONERS:
        _photo(name).save(folder / f"{name}.png")
    return files


def make_collection(root):
    files = write_copies(root / "photos")
    col = lookalike.Collection.index([root / "photos"], db=root / "dups.db", model=MODEL)
    return col, files


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-dups")
    col, files = make_collection(root)
    live = serve(root / "dups.db", warm_up=False)
    yield live, col, files, root
    live.stop()
    col.close()


def computations(live) -> int:
    return live.app.state.viewer.duplicates.computations


def test_groups_of_copies_with_what_a_review_shows(site):
    live, col, files, _ = site
    answer = live.client.get("/api/duplicates").json()
    assert answer["tier"] == "near" and answer["groups_total"] == len(answer["groups"]) >= 2
    groups = answer["groups"]
    assert [len(g["images"]) for g in groups] == sorted((len(g["images"]) for g in groups),
                                                        reverse=True)  # largest first
    for name in PHOTOS:
        wanted = {files[name][e] for e in ("orig", "same", "half", "jpeg60")}
        mine = [g for g in groups if {i["path"] for i in g["images"]} & wanted]
        assert len(mine) == 1 and wanted <= {i["path"] for i in mine[0]["images"]}
        # only copies of this photo: nothing of the other, no loner
        assert {i["path"] for i in mine[0]["images"]} <= set(files[name].values())
    for g in groups:
        kept = [i for i in g["images"] if i["keep"]]
        assert [i["id"] for i in kept] == [g["keep"]]
        assert kept[0]["width"] * kept[0]["height"] == max(i["width"] * i["height"]
                                                           for i in g["images"])
        for image in g["images"]:
            assert image["format"] == "JPEG" and image["modified"].endswith("Z")
            assert {"distance", "size", "path", "id", "group", "representative"} <= set(image)
    assert answer["images_total"] == sum(len(g["images"]) for g in groups)
    assert answer["bytes_freed"] == sum(i["size"] for g in groups for i in g["images"]
                                        if not i["keep"])
    page = live.client.get("/api/duplicates", params={"offset": 1, "limit": 1}).json()
    assert page["groups"] == groups[1:2] and page["groups_total"] == len(groups)


def test_groups_are_computed_once_per_query_and_catalogue_state(site):
    live, *_ = site
    live.client.get("/api/duplicates", params={"tier": "pixels"})
    before = computations(live)
    again = live.client.get("/api/duplicates", params={"tier": "pixels"})
    assert again.status_code == 200 and computations(live) == before  # from the cache
    # requests for groups not computed yet, at the same time: one computation answers all
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(live.client.get(
        "/api/duplicates", params={"tier": "exact"}).json())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert computations(live) == before + 1
    assert len(answers) == 3 and all(a == answers[0] for a in answers)
    # exact: the byte-identical copies only
    assert sorted(len(g["images"]) for g in answers[0]["groups"]) == [2, 2]
    live.client.get("/api/duplicates", params={"tier": "exact", "fresh": "true"})
    assert computations(live) == before + 2


def test_progress_counts_the_pairs_of_the_groups_being_computed(site):
    live, *_ = site
    idle = live.client.get("/api/duplicates/progress").json()
    assert idle == {"computing": False, "checked": 0, "total": 0}
    seen = []
    worker = threading.Thread(target=lambda: live.client.get(
        "/api/duplicates", params={"tier": "near", "fresh": "true"}))
    worker.start()
    while worker.is_alive():
        seen.append(live.client.get("/api/duplicates/progress").json())
    worker.join()
    # whatever moment each answer caught: a count of the candidate pairs, never past them
    assert all(0 <= p["checked"] <= p["total"] for p in seen)
    assert all(p["computing"] or p["total"] == 0 for p in seen)
    assert live.client.get("/api/duplicates/progress").json() == idle


def test_not_duplicates_hides_a_group_and_undo_brings_it_back(site):
    live, col, files, _ = site
    query = {"tier": "exact"}
    groups = live.client.get("/api/duplicates", params=query).json()["groups"]
    ids = [i["id"] for i in groups[0]["images"]]
    before = computations(live)
    marked = live.client.post("/api/duplicates/not-duplicates", json={"ids": ids})
    assert marked.status_code == 200 and marked.json()["changed"] == 1
    after = live.client.get("/api/duplicates", params=query).json()["groups"]
    assert after == groups[1:]                          # gone, without computing again
    assert computations(live) == before
    assert len(col.store.not_duplicates()) == 1         # in the database, for the CLI too
    fresh = live.client.get("/api/duplicates", params={**query, "fresh": "true"}).json()
    assert [[i["path"] for i in g["images"]] for g in fresh["groups"]] == \
        [[i["path"] for i in g["images"]] for g in groups[1:]]  # computed: the same, renumbered
    undone = live.client.post("/api/duplicates/not-duplicates", json={"ids": ids, "undo": True})
    assert undone.json()["changed"] == 1
    assert live.client.get("/api/duplicates", params=query).json()["groups"] == groups
    error = json_error(live.client.post("/api/duplicates/not-duplicates",
                                        json={"ids": [ids[0], 999_999]}), 400)
    assert "999999" in error


def test_chosen_keepers_and_the_decisions_exports(site, tmp_path):
    live, col, files, _ = site
    groups = live.client.get("/api/duplicates").json()["groups"]
    first = groups[0]
    other = next(i for i in first["images"] if not i["keep"])
    keep = {str(first["images"][0]["representative"]): other["id"], "123456": 1}
    chosen = live.client.post("/api/duplicates", json={"keep": keep}).json()
    assert chosen["groups"][0]["keep"] == other["id"]
    assert [i["id"] for i in chosen["groups"][0]["images"] if i["keep"]] == [other["id"]]
    dismissed = [{"ids": [i["id"] for i in groups[1]["images"]]}]
    body = {"keep": keep, "dismissed": dismissed}
    response = live.client.post("/api/duplicates/decisions.csv", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[other["id"]]["action"] == "keep" and by_id[other["id"]]["keep"] == "true"
    assert {by_id[i]["action"] for i in dismissed[0]["ids"]} == {"not-duplicate"}
    target = str(tmp_path / "moved copies")
    script = live.client.post("/api/duplicates/move-script", json={**body, "target": target})
    assert script.status_code == 200
    text = script.content.decode()
    assert text.startswith("#!/bin/sh") and f"'{target}" in text
    assert f"keep {other['path']}" in text
    for image in first["images"]:
        if image["id"] != other["id"]:
            assert f"move {image['size']} '{image['path']}'" in text
    assert f"move {other['size']} '{other['path']}'" not in text  # the chosen keeper stays
    error = json_error(live.client.post("/api/duplicates/move-script",
                                        json={**body, "target": "relative/dir"}), 400)
    assert "full path" in error


@pytest.mark.parametrize("query, words", [
    ({"tier": "copies"}, "unknown tier 'copies'"),
    ({"threshold": "5"}, "between 0 and 2"),
    ({"lo": "0.1"}, "give both lo and hi"),
    ({"threshold": "0.1", "lo": "0", "hi": "0.2"}, "not both"),
    ({"lo": "0.5", "hi": "0.1"}, "above its high end"),
    ({"model": "nonesuch"}, "nonesuch"),
])
def test_bad_queries_are_one_line_400s(site, query, words):
    live, *_ = site
    error = json_error(live.client.get("/api/duplicates", params=query), 400)
    assert words in error and "\n" not in error


def test_an_empty_collection_says_so(tmp_path):
    lookalike.Collection.create(tmp_path / "empty.db").close()
    live = serve(tmp_path / "empty.db", warm_up=False)
    try:
        error = json_error(live.client.get("/api/duplicates"), 400)
        assert "empty" in error
    finally:
        live.stop()


def test_the_cli_writes_a_move_script_and_moves_nothing(site, tmp_path, capsys):
    live, col, files, root = site
    script = tmp_path / "move.sh"
    assert main(["duplicates", "--db", str(root / "dups.db"), "--tier", "exact",
                 "--move-script", str(script), "--move-to", str(tmp_path / "out")]) == 0
    text = script.read_text()
    assert text.startswith("#!/bin/sh") and "Nothing has happened yet" in text
    assert str(tmp_path / "out") in text
    assert all(os.path.exists(p) for f in files.values() for p in f.values())
    assert "nothing moved yet" in capsys.readouterr().err
    assert main(["duplicates", "--db", str(root / "dups.db"), "--move-script",
                 str(script)]) == 1
    assert "go together" in capsys.readouterr().err
