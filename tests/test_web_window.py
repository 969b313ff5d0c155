"""The display window of 16-bit and float images over HTTP: `window=LOW,HIGH` on the image
routes, the sample type an image route reports, and OME-Zarr images served as pictures."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import lookalike
from test_omezarr import cz_values, write_ome_zarr
from test_web_api import MODEL, json_error, serve


def ramp16(width=64, height=48) -> np.ndarray:
    """A 16-bit ramp (1000..1063 across) with one hot pixel in a corner."""
    values = np.tile(np.arange(1000, 1000 + width, dtype=np.uint16), (height, 1))
    values[0, 0] = 65535
    return values


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """A 16-bit PNG, an 8-bit PNG and an OME-Zarr, indexed and served."""
    root = tmp_path_factory.mktemp("deep")
    folder = root / "pics"
    folder.mkdir()
    Image.fromarray(ramp16()).save(folder / "ramp16.png")
    Image.new("RGB", (40, 30), "orange").save(folder / "plain.png")
    write_ome_zarr(folder / "cells.ome.zarr", cz_values())
    col = lookalike.Collection.index([folder], db=root / "pics.db", model=MODEL)
    ids = {r["name"]: r["id"] for r in col.images(limit=None)[1]}
    live = serve(root / "pics.db")
    yield live, col, ids
    live.stop()
    col.close()


def pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def test_an_image_says_its_sample_type_and_the_collection_s_window(deep):
    live, col, ids = deep
    assert col.sample_type(ids["ramp16"]) == "uint16"
    assert col.sample_type(ids["plain"]) == "uint8"
    assert col.sample_type(ids["cells"]) == "uint16"
    answer = live.client.get(f"/api/images/{ids['ramp16']}/samples").json()
    assert answer == {"id": ids["ramp16"], "type": "uint16", "windowed": True,
                      "window": [0.1, 99.9]}
    assert live.client.get(f"/api/images/{ids['plain']}/samples").json()["windowed"] is False


def test_a_window_re_renders_the_thumbnail_and_the_preview(deep):
    live, _, ids = deep
    image = ids["ramp16"]
    default = pixels(live.client.get(f"/api/images/{image}/thumbnail?size=64"))
    whole = pixels(live.client.get(f"/api/images/{image}/thumbnail?size=64&window=0,100"))
    assert default[24, 63, 0] > 240 and whole[24, 63, 0] < 10  # the hot pixel darkens the rest
    shown = pixels(live.client.get(f"/api/images/{image}/display?window=0,100"))
    assert shown.shape == (48, 64, 3) and shown[24, 63, 0] < 10
    narrow = pixels(live.client.get(f"/api/images/{image}/display?window=40,60"))
    assert narrow[24, 10, 0] == 0 and narrow[24, 50, 0] == 255
    # a 16-bit PNG: browsers would show its high bytes (all dark), so it is rendered too
    assert pixels(live.client.get(f"/api/images/{image}/display"))[24, 63, 0] > 240
    original = live.client.get(f"/api/images/{image}/original").content
    assert Image.open(io.BytesIO(original)).mode.startswith("I;16")   # the file as it is
    plain = ids["plain"]                                       # an 8-bit PNG: as it is
    assert live.client.get(f"/api/images/{plain}/display").content == \
        live.client.get(f"/api/images/{plain}/original").content


@pytest.mark.parametrize("window", ["9,1", "a,b", "0,101", "5", "1,2,3"])
def test_a_bad_window_is_one_plain_400(deep, window):
    live, _, ids = deep
    for route in ("thumbnail", "display"):
        message = json_error(live.client.get(f"/api/images/{ids['ramp16']}/{route}",
                                             params={"window": window}), 400)
        assert message == (f"window={window}: not two increasing percentiles in 0..100; "
                           "give LOW,HIGH, e.g. 0.1,99.9")


def test_an_ome_zarr_is_served_as_a_picture(deep):
    live, _, ids = deep
    image = ids["cells"]
    original = live.client.get(f"/api/images/{image}/original")
    assert original.headers["content-type"] in ("image/png", "image/jpeg")
    picture = pixels(original)
    assert picture.shape == (48, 64, 3)
    assert picture[24, 8, 0] > 128 and picture[24, 24, 1] > 128 and picture[24, 40, 2] > 128
    thumbnail = pixels(live.client.get(f"/api/images/{image}/thumbnail?size=32"))
    assert max(thumbnail.shape[:2]) == 32
