"""The web viewer over a collection read from a table of URLs: the table's columns in the JSON,
images served from the download cache, never fetched by the viewer."""

import pandas as pd
import pytest

import lookalike
from imageserver import ImageServer, png_bytes
from lookalike.ingest.downloads import Downloader
from test_web_api import serve

MODEL = "squeezenet"


@pytest.fixture
def collection(tmp_path):
    with ImageServer() as server:
        urls = [server.add(f"/bones/x{i}.png", png_bytes(seed=i)) for i in range(3)]
        pd.DataFrame({"Image": urls, "healed": [True, False, True], "weeks": [3, 8, 5]}).to_csv(
            tmp_path / "bones.csv", index=False)
        with Downloader(cache=tmp_path / "cache") as downloader:
            col = lookalike.Collection.index([tmp_path / "bones.csv"], db=tmp_path / "b.db",
                                             model=MODEL, downloader=downloader)
        col.close()
        yield tmp_path, urls, server


def test_the_viewer_shows_table_columns_and_serves_urls_from_the_cache(collection, monkeypatch):
    tmp_path, urls, server = collection
    assert sum(server.hits.values()) == 3
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path))    # the cache is <it>/downloads
    (tmp_path / "cache").rename(tmp_path / "downloads")
    live = serve(tmp_path / "b.db", thumbnails=tmp_path / "thumbs", warm_up=False)
    try:
        info = live.client.get("/api/collection").json()
        assert info["extra_columns"] == ["healed", "weeks"]
        items = live.client.get("/api/images").json()["items"]
        assert [i["path"] for i in items] == urls
        assert items[1]["extras"] == {"healed": False, "weeks": 8} and items[1]["name"] == "x1"

        first = items[0]["id"]
        original = live.client.get(f"/api/images/{first}/original")
        assert original.status_code == 200 and original.content == png_bytes(seed=0)
        assert original.headers["content-type"] == "image/png"
        assert "filename*=UTF-8''x0.png" in original.headers["content-disposition"]
        thumb = live.client.get(f"/api/images/{first}/thumbnail?size=32")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

        answer = live.client.get(f"/api/neighbors?ref={first}&k=2").json()
        assert [n["path"] for n in answer["neighbors"]] != []
        assert all({"healed", "weeks"} <= set(n) for n in answer["neighbors"])

        # A copy gone from the cache is a clear 404, not a download.
        second = items[2]["id"]
        for path in (tmp_path / "downloads").rglob("*"):
            if path.is_file():
                path.unlink()
        gone = live.client.get(f"/api/images/{second}/original")
        assert gone.status_code == 404
        assert "not in the download cache" in gone.json()["error"]
        assert live.client.get(f"/api/images/{second}/thumbnail").status_code == 404
        assert sum(server.hits.values()) == 3          # the viewer never went to the network
    finally:
        live.stop()


@pytest.mark.browser
def test_a_table_column_can_title_the_thumbnails_in_the_browser(tmp_path):
    from test_tables import write_images
    from test_web_browser import CHROMIUM, sync_api

    paths = write_images(tmp_path / "imgs", 3)
    pd.DataFrame({"file": [str(p) for p in paths], "label": ["alpha", "beta", None]}).to_csv(
        tmp_path / "t.csv", index=False)
    lookalike.Collection.index([tmp_path / "t.csv"], db=tmp_path / "t.db", model=MODEL).close()
    live = serve(tmp_path / "t.db", thumbnails=tmp_path / "thumbs")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox",
                                                                        "--disable-gpu"])
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{live.url}/?title=x:label")
            page.wait_for_selector("body[data-thumbnails=loaded]")
            options = page.eval_on_selector_all("#title option", "os => os.map(o => o.value)")
            assert options == ["category", "name", "x:label"]
            assert page.eval_on_selector("#title", "s => s.value") == "x:label"
            titles = page.eval_on_selector_all(
                ".cell[data-id] .title", "ts => ts.map(t => t.textContent)")
            assert titles == ["alpha", "beta", ""]
            page.select_option("#title", "name")
            page.wait_for_function("new URL(location).searchParams.get('title') === 'name'")
            titles = page.eval_on_selector_all(
                ".cell[data-id] .title", "ts => ts.map(t => t.textContent)")
            assert titles == ["p0", "p1", "p2"]
            browser.close()
            assert not errors, errors
    finally:
        live.stop()
