"""GET /api/explain over HTTP: the heat grids of Collection.explain for two images of the
collection, and its refusals as JSON."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.models import DEFAULT_MODEL
from test_explain import HEAD, inside, pictures  # noqa: F401  (the fixture)
from test_web_api import json_error, serve


@pytest.fixture(scope="module")
def site(pictures):  # noqa: F811
    col, files = pictures
    live = serve(col.store.path, warm_up=False)
    yield live, col, files
    live.stop()


def ids(col) -> dict[str, int]:
    return {r["name"]: r["id"] for r in col.images(limit=None)[1]}


def test_the_two_heat_grids_are_those_of_the_python_api(site):
    live, col, files = site
    known = ids(col)
    chelsea, astronaut = known["chelsea"], known["astronaut"]
    answer = live.client.get("/api/explain", params={"a": chelsea, "b": astronaut}).json()
    why = col.explain(chelsea, astronaut)
    assert answer["model"] == DEFAULT_MODEL and answer["metric"] == "Cosine"
    assert answer["distance"] == pytest.approx(why.distance, abs=1e-6)
    for shown, heat, image_id in zip(answer["images"], why.heat, (chelsea, astronaut)):
        assert shown["id"] == image_id and shown["path"] == col.image(image_id)["path"]
        np.testing.assert_allclose(shown["heat"], heat, atol=1e-4)
        assert len(shown["peak"]) == 2


def test_refusals_are_json(site):
    live, col, files = site
    chelsea = ids(col)["chelsea"]
    answer = live.client.get("/api/explain", params={"a": chelsea, "b": 999})
    assert json_error(answer, 404) == "image 999: no such image in the collection"
    answer = live.client.get("/api/explain", params={"a": chelsea, "b": chelsea, "model": "nope"})
    assert json_error(answer, 400).startswith("unknown model 'nope'")
    json_error(live.client.get("/api/explain", params={"a": chelsea}), 422)
