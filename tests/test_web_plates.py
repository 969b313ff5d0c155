"""Per-plate normalisation through the web API: `normalise` and `controls` on
`/api/neighbors` (GET, as the page's address asks, and POST) give the answer of
`Collection.nearest_to_ids(normalise=, controls=)`, and bad ones are one 400 line."""

import pytest

import lookalike
from test_plates import _plates_of_vectors
from test_web_api import json_error, serve


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    """Two plates x two conditions (wells A01 ctrl, B01 drug) x 6 images, each plate's
    vectors moved by an offset of its own (test_plates.py)."""
    db = _plates_of_vectors(tmp_path_factory.mktemp("plates"))
    live = serve(db)
    with lookalike.Collection.open(db) as col:
        ids = {r["path"]: r["id"] for r in col.images(limit=None)[1]}
        yield live, col, ids
    live.stop()


def paths(answer):
    return [n["path"] for n in answer["neighbors"]]


def test_normalised_look_alikes_are_those_of_the_python_api(plates):
    live, col, ids = plates
    ref = ids["/plates/P1_B01_0.tif"]
    plain = live.client.get("/api/neighbors", params={"ref": ref, "k": 6}).json()
    assert all("/P1_" in p for p in paths(plain)) and "normalised" not in plain
    for controls in ("A01", "a1", "condition=ctrl", None):
        params = {"ref": ref, "k": 6, "normalise": "plate"} | (
            {"controls": controls} if controls else {})
        answer = live.client.get("/api/neighbors", params=params).json()
        expected = col.nearest_to_ids([ref], k=6, normalise="plate", controls=controls)
        assert paths(answer) == expected.paths
        assert all("_B01_" in p for p in paths(answer))             # the same condition ...
        assert sum("/P2_" in p for p in paths(answer)) >= 3          # ... across plates
    posted = live.client.post("/api/neighbors", json={
        "references": [ref], "k": 6, "normalise": "plate", "controls": "A01"}).json()
    assert posted["normalised"] == "normalised per plate against control wells A01"
    assert paths(posted) == col.nearest_to_ids([ref], k=6, normalise="plate",
                                               controls="A01").paths
    unlike = live.client.get("/api/neighbors", params={
        "ref": ref, "k": 5, "normalise": "plate", "unlike": ids["/plates/P2_A01_0.tif"]}).json()
    assert all("_B01_" in p for p in paths(unlike)) and unlike["normalised"]


@pytest.mark.parametrize("params, message", [
    ({"normalise": "batch"}, "no image has a 'batch' column (the collection's columns: "
                             "condition, plate, well)"),
    ({"normalise": "plate", "controls": "Z99"}, "--controls Z99: no image is in these wells"),
    ({"normalise": "plate", "controls": "condition="}, "give wells (A01,B01) or COLUMN=VALUE"),
    ({"controls": "A01"}, "give --normalise plate with it"),
    ({"normalise": "plate", "approximate": "hnsw"}, "leave out --approximate"),
    ({"normalise": "plate", "like": "LIKED"}, "more like this (like, refine) refines on the "
                                              "stored vectors, not normalised ones"),
])
def test_a_normalisation_that_cannot_be_made_is_one_400_line(plates, params, message):
    live, col, ids = plates
    if params.get("like"):
        params = {**params, "like": ids["/plates/P2_B01_0.tif"]}
    response = live.client.get("/api/neighbors",
                               params={"ref": ids["/plates/P1_B01_0.tif"], **params})
    error = json_error(response, 400)
    assert message in error and "\n" not in error
