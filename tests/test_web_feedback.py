"""The viewer's "not like this" / "more like these" in the JSON API: `POST /api/neighbors`
(and its GET twin) with `unlike`, `like` and `refine`, against the real app on loopback and
four photo families whose right answers are known (each photo and its three variants)."""

from __future__ import annotations

import pytest

import lookalike
from test_indexing import photo_families
from test_web_api import MODEL, json_error, serve


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-feedback")
    files = photo_families(root / "photos")
    col = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    live = serve(root / "photos.db", warm_up=False)
    total, rows = col.images(limit=None)
    ids = {(p.parent.name, p.stem): next(r["id"] for r in rows if r["path"] == str(p))
           for (_, _), p in files.items()}
    yield live, col, ids
    live.stop()
    col.close()


def family(col, ids: list[int]) -> list[str]:
    return [r["category"] for r in col.store.rows(ids)]


def same_records(answer: list[dict], res: lookalike.Neighbors) -> None:
    records = res.to_records()
    assert [n["id"] for n in answer] == [r["id"] for r in records]
    for key in ("nearest_unlike", "nearest_reference"):
        assert [n[key] for n in answer] == [r[key] for r in records], key
    for key in ("distance", "score", "unlike_distance"):  # exemplar SVMs: fitted iteratively
        got, want = ([n[key] for n in answer], [r[key] for r in records])
        assert (got == want) if None in want else got == pytest.approx(want, rel=1e-4), key


def test_an_unliked_look_alike_takes_its_family_to_the_end(site):
    live, col, ids = site
    ref, wrong = ids["chelsea", "orig"], ids["coffee", "orig"]
    plain = live.client.post("/api/neighbors", json={"references": [ref], "k": 15}).json()
    assert "score" not in plain["neighbors"][0] and "unlike" not in plain
    body = {"references": [ref], "k": 15, "unlike": [wrong]}
    answer = live.client.post("/api/neighbors", json=body).json()
    shown = [n["id"] for n in answer["neighbors"]]
    assert wrong not in shown and len(shown) == 14  # the marked image is left out
    before = family(col, [n["id"] for n in plain["neighbors"] if n["id"] != wrong])
    after = family(col, shown)
    # its family moves down, behind the reference's own
    assert sum(i for i, c in enumerate(after) if c == "coffee") > \
        sum(i for i, c in enumerate(before) if c == "coffee")
    assert after[:3] == ["chelsea"] * 3 and "coffee" not in after[3:8]
    assert [r["id"] for r in answer["unlike"]] == [wrong] and answer["like"] == []
    assert answer["refine"] is None
    paths = [r["path"] for r in col.store.rows([ref, wrong])]
    same_records(answer["neighbors"], col.nearest(paths[0], k=15, unlike=[paths[1]]))
    for n in answer["neighbors"]:
        assert n["nearest_unlike"] == paths[1] and n["unlike_distance"] > 0
    again = live.client.get(f"/api/neighbors?ref={ref}&k=15&unlike={wrong}").json()
    assert again["neighbors"] == answer["neighbors"]     # the page's GET twin


@pytest.mark.parametrize("method", [None, "linear", "rocchio", "exemplar"])
def test_liked_and_unliked_look_alikes_refine_the_list(site, method):
    live, col, ids = site
    ref, right, wrong = ids["rocket", "orig"], ids["rocket", "small"], ids["astronaut", "orig"]
    body = {"references": [ref], "k": 6, "like": [right], "unlike": [wrong]}
    if method:
        body["refine"] = method
    answer = live.client.post("/api/neighbors", json=body).json()
    assert answer["refine"] == (method or "linear")
    assert [r["id"] for r in answer["like"]] == [right]
    shown = [n["id"] for n in answer["neighbors"]]
    assert not {ref, right, wrong} & set(shown)
    assert family(col, shown)[:2] == ["rocket"] * 2   # the rest of the family first
    assert "astronaut" not in family(col, shown)[:3]
    scores = [n["score"] for n in answer["neighbors"]]
    assert scores == sorted(scores, reverse=True)
    paths = [r["path"] for r in col.store.rows([ref, right, wrong])]
    same_records(answer["neighbors"], col.refine(paths[:2], [paths[2]], k=6,
                                                 method=method or "linear"))
    query = f"ref={ref}&k=6&like={right}&unlike={wrong}" + (f"&refine={method}" if method else "")
    twin = live.client.get(f"/api/neighbors?{query}").json()["neighbors"]
    assert [n["id"] for n in twin] == shown


def test_refine_without_liked_images_refines_from_the_references(site):
    live, col, ids = site
    ref = ids["chelsea", "orig"]
    answer = live.client.post("/api/neighbors", json={"references": [ref], "k": 3,
                                                      "refine": "rocchio"}).json()
    assert answer["refine"] == "rocchio" and family(col, [n["id"] for n in answer["neighbors"]]) \
        == ["chelsea"] * 3


def test_bad_marks_are_one_plain_line(site):
    live, col, ids = site
    ref, other = ids["chelsea", "orig"], ids["coffee", "orig"]
    post = lambda **body: live.client.post("/api/neighbors", json={"references": [ref], **body})  # noqa: E731
    both = json_error(post(like=[other], unlike=[other]), 400)
    assert both == (f"image {other}: is both liked and unliked; mark each image on one side "
                    "only")
    assert "is both a reference and unliked" in json_error(post(unlike=[ref]), 400)
    gone = json_error(post(unlike=[999_999]), 404)
    assert gone == "image 999999: no such image in the collection"
    assert "no such image" in json_error(post(like=[999_998]), 404)
    for error in (json_error(post(refine="svm"), 422), json_error(post(unlike=[0]), 422)):
        assert "\n" not in error
    get = live.client.get(f"/api/neighbors?ref={ref}&like={other}&unlike={other}")
    assert "is both liked and unliked" in json_error(get, 400)
