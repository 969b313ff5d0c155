"""The web viewer's JSON API, over HTTP against the real app served by uvicorn on loopback."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from PIL import Image

import lookalike
from imagefactory import png_header_only, write_formats
from lookalike.web import create_app, exposure_warning
from lookalike.web.app import MAX_UPLOAD_BYTES
from test_indexing import photo_families

MODEL = "squeezenet"
FIELDS = {"id", "path", "name", "category", "width", "height", "size"}
CREDIT = "Test photos from scikit-image (BSD-3-Clause)"


class LiveServer:
    """An app served by uvicorn on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app):
        self.app = app
        # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY on accepted connections only
        # then, and without it every response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60  # only against a hang; a busy machine starts late
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)

    def raw(self, method: str, target: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
        """A request with the target sent byte for byte (no client-side URL normalising)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_host="Host" in (headers or {}),
                            skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                conn.putheader(key, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


def serve(db, **options) -> LiveServer:
    return LiveServer(create_app(db, **options))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Sixteen photos in four categories (each photo with three variants), indexed."""
    root = tmp_path_factory.mktemp("web")
    files = photo_families(root / "photos")
    (root / "photos" / "ATTRIBUTION.txt").write_text(CREDIT + "\n")
    col = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    yield col, files, root
    col.close()


@pytest.fixture(scope="module")
def server(photos):
    col, files, root = photos
    live = serve(root / "photos.db", max_upload_bytes=300_000)
    yield live
    live.stop()


def ids_by_path(col) -> dict[str, int]:
    total, rows = col.images(limit=None)
    return {r["path"]: r["id"] for r in rows}


def json_error(response, status) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    return body["error"]


# -- what the collection holds --------------------------------------------------------------

def test_collection_summary_names_models_metrics_and_credits(server):
    info = server.client.get("/api/collection").json()
    assert info["count"] == 16
    assert info["models"] == {MODEL: 16} and info["default_model"] == MODEL
    assert info["metrics"] == list(lookalike.METRICS)
    assert info["attributions"] == [CREDIT]
    assert info["max_upload_bytes"] == 300_000
    deadline = time.time() + 60
    while info["warming_up"] and time.time() < deadline:  # matrix mapped, search passes built
        time.sleep(0.1)
        info = server.client.get("/api/collection").json()
    assert info["warming_up"] is False
    assert MAX_UPLOAD_BYTES == 32 * 1024 * 1024      # the default limit
    assert server.client.get("/openapi.json").json()["paths"].keys() >= {
        "/api/images", "/api/neighbors", "/api/neighbors/upload", "/api/categories",
        "/api/images/{image_id}/thumbnail", "/api/images/{image_id}/original"}


def test_collection_summary_gives_the_page_its_defaults_sizes_and_record_fields(server):
    info = server.client.get("/api/collection").json()
    assert info["defaults"] == {"metric": "Cosine", "k": 10, "thumbnail_size": 128}
    assert info["defaults"]["metric"] == info["default_metric"]
    assert info["thumbnail_sizes"] == [32, 64, 128, 256, 512, 1024]
    first = server.client.get("/api/images", params={"limit": 1}).json()["items"][0]["id"]
    answer = server.client.get("/api/neighbors", params={"ref": first}).json()
    assert answer["k"] == info["defaults"]["k"] and answer["metric"] == "Cosine"
    assert list(answer["neighbors"][0]) == info["record_fields"]  # the CSV export's columns
    # The page paints its first screen before this answer arrives, with its own controls'
    # values: they must say the same.
    page = (Path(lookalike.__file__).parent / "web" / "static" / "index.html").read_text()
    k_input = re.search(r'<input id="k"[^>]*>', page).group(0)
    size_input = re.search(r'<input id="size"[^>]*>', page).group(0)
    sizes, defaults = info["thumbnail_sizes"], info["defaults"]
    assert f'value="{defaults["k"]}"' in k_input
    assert f'value="{defaults["thumbnail_size"]}"' in size_input
    assert f'min="{sizes[0]}"' in size_input and f'max="{sizes[-1]}"' in size_input


def test_the_page_preloads_every_module_it_imports(server):
    """Each ES module is announced in the page, so the browser fetches them all at once
    instead of discovering them import by import (a waterfall before the first paint)."""
    static = Path(lookalike.__file__).parent / "web" / "static"
    page = server.client.get("/").text
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/([\w-]+\.js)">', page))
    imported = {name for js in static.glob("*.js")
                for name in re.findall(r'from "\./([\w-]+\.js)"', js.read_text())}
    assert imported and imported <= preloaded
    for name in preloaded:
        assert server.client.get(f"/static/{name}").status_code == 200


def test_categories_with_counts(server):
    cats = server.client.get("/api/categories").json()["categories"]
    assert cats == [{"name": n, "count": 4} for n in ["astronaut", "chelsea", "coffee", "rocket"]]


# -- listing -----------------------------------------------------------------------------------

def test_listing_is_paged_in_id_order(server, photos):
    col, files, root = photos
    first = server.client.get("/api/images", params={"limit": 5}).json()
    assert first["total"] == 16 and len(first["items"]) == 5
    assert set(first["items"][0]) == FIELDS
    pages = [server.client.get("/api/images", params={"offset": o, "limit": 5}).json()["items"]
             for o in range(0, 20, 5)]
    assert [len(p) for p in pages] == [5, 5, 5, 1]
    ids = [item["id"] for page in pages for item in page]
    assert ids == sorted(ids) and len(set(ids)) == 16
    items = [item for page in pages for item in page]
    coffee = next(item for item in items if item["path"] == str(files[("coffee", "orig")]))
    assert coffee == {"id": coffee["id"], "path": str(files[("coffee", "orig")]), "name": "orig",
                      "category": "coffee", "width": 160, "height": 120,
                      "size": files[("coffee", "orig")].stat().st_size}
    assert server.client.get(f"/api/images/{coffee['id']}").json() == coffee


def test_listing_filters_by_category_and_name(server):
    def names(**params):
        page = server.client.get("/api/images", params=params).json()
        assert page["total"] == len(page["items"])
        return sorted((i["category"], i["name"]) for i in page["items"])

    assert names(category="coffee") == [("coffee", n) for n in ["bright", "crop", "orig", "small"]]
    assert names(q="BRI") == [(c, "bright") for c in ["astronaut", "chelsea", "coffee", "rocket"]]
    assert names(category="rocket", q="cro") == [("rocket", "crop")]
    assert names(q="%") == [] and names(q="_") == []       # literal, not SQL wildcards
    assert names(category="coff") == []                    # a category is a whole folder name
    for bad in [{"limit": 0}, {"limit": 5000}, {"offset": -1}, {"limit": "ten"}]:
        json_error(server.client.get("/api/images", params=bad), 422)


def test_position_is_the_offset_of_an_image_in_the_filtered_grid(server, photos):
    col, files, root = photos
    for params in [{}, {"category": "coffee"}, {"q": "bri"}, {"category": "rocket", "q": "cro"}]:
        listing = server.client.get("/api/images", params=params).json()["items"]
        for offset, item in enumerate(listing):
            answer = server.client.get(f"/api/images/{item['id']}/position", params=params)
            assert answer.json() == {"id": item["id"], "position": offset,
                                     "total": len(listing)}, params
    rocket = ids_by_path(col)[str(files[("rocket", "orig")])]
    left_out = server.client.get(f"/api/images/{rocket}/position", params={"category": "coffee"})
    assert left_out.json() == {"id": rocket, "position": None, "total": 4}
    assert col.position(rocket, category="coffee") is None
    json_error(server.client.get("/api/images/999999/position"), 404)


# -- look-alikes -------------------------------------------------------------------------------

def test_neighbors_are_those_of_the_python_api_for_every_metric(server, photos):
    col, files, root = photos
    ids = ids_by_path(col)
    ref = files[("chelsea", "orig")]
    for metric in lookalike.METRICS:
        body = {"references": [ids[str(ref)]], "k": 5, "metric": metric}
        answer = server.client.post("/api/neighbors", json=body).json()
        expected = col.nearest(ref, k=5, metric=metric)
        assert answer["neighbors"] == json.loads(expected.to_json()), metric
        assert answer["metric"] == metric and answer["model"] == MODEL
        assert answer["notes"] == expected.notes
        assert bool(expected.notes) == (metric == "Mahalanobis")
        assert answer["references"][0]["path"] == str(ref)
        assert answer["attributions"] == [CREDIT]
    records = answer["neighbors"]
    assert list(records[0]) == list(lookalike.api.RECORD_FIELDS)   # `similar --format json`
    assert [r["rank"] for r in records] == [1, 2, 3, 4, 5]


def test_walk_from_look_alike_to_look_alike(server, photos):
    col, files, root = photos
    ids = ids_by_path(col)
    here = ids[str(files[("rocket", "orig")])]
    seen = [here]
    for _ in range(3):
        answer = server.client.post("/api/neighbors", json={"references": [here], "k": 3}).json()
        assert here not in [n["id"] for n in answer["neighbors"]]
        assert {n["category"] for n in answer["neighbors"]} == {"rocket"}
        here = answer["neighbors"][0]["id"]
        seen.append(here)
    assert all(i in ids.values() for i in seen)
    # The GET twin (what the page's URL asks for) answers the same.
    twin = server.client.get("/api/neighbors", params={"ref": here, "k": 3}).json()
    assert twin == server.client.post("/api/neighbors", json={"references": [here], "k": 3}).json()


def test_several_references_take_the_nearest_of_them(server, photos):
    col, files, root = photos
    ids = ids_by_path(col)
    refs = [files[("rocket", "orig")], files[("coffee", "orig")]]
    body = {"references": [ids[str(p)] for p in refs], "k": 6, "metric": "euclidean"}
    answer = server.client.post("/api/neighbors", json=body).json()
    assert answer["neighbors"] == json.loads(col.nearest(refs, k=6, metric="euclidean").to_json())
    assert {n["category"] for n in answer["neighbors"]} == {"rocket", "coffee"}
    assert [r["path"] for r in answer["references"]] == [str(p) for p in refs]
    assert {n["category"]: n["nearest_reference"] for n in answer["neighbors"]} == \
        {"rocket": str(refs[0]), "coffee": str(refs[1])}
    with_refs = server.client.post("/api/neighbors",
                                   json=dict(body, include_references=True)).json()
    assert {n["id"] for n in with_refs["neighbors"][:2]} == set(body["references"])
    assert [n["distance"] for n in with_refs["neighbors"][:2]] == [0.0, 0.0]
    only_coffee = server.client.post("/api/neighbors", json=dict(body, category="coffee")).json()
    assert {n["category"] for n in only_coffee["neighbors"]} == {"coffee"}
    everything = server.client.post("/api/neighbors", json=dict(body, k=None)).json()
    assert len(everything["neighbors"]) == 14


def test_approximate_search_can_be_asked_for(server, photos):
    col, files, root = photos
    ref = ids_by_path(col)[str(files[("coffee", "orig")])]
    exact = server.client.post("/api/neighbors", json={"references": [ref], "k": 5}).json()
    for approximate in [False, "scan", "ivfpq", True]:
        answer = server.client.post("/api/neighbors", json={
            "references": [ref], "k": 5, "approximate": approximate}).json()
        assert answer["neighbors"] == exact["neighbors"], approximate  # exact re-ranking
        assert answer["method"] == {False: "exact", True: "scan"}.get(approximate, approximate)
    twin = server.client.get("/api/neighbors", params={"ref": ref, "k": 5, "approximate": "scan"})
    assert twin.json()["neighbors"] == exact["neighbors"]
    assert "Manhattan" in json_error(server.client.post("/api/neighbors", json={
        "references": [ref], "metric": "manhattan", "approximate": True}), 400)
    json_error(server.client.post("/api/neighbors", json={"references": [ref],
                                                          "approximate": "fast"}), 422)


def test_neighbor_requests_that_cannot_be_answered(server, photos):
    col, files, root = photos
    some = next(iter(ids_by_path(col).values()))

    def post(**body):
        return server.client.post("/api/neighbors", json={"references": [some], **body})

    assert "no such image" in json_error(server.client.post(
        "/api/neighbors", json={"references": [999999]}), 404)
    assert "metric" in json_error(post(metric="hamming"), 400)
    assert "resnet" in json_error(post(model="resnet-50"), 400)
    assert json_error(post(k=0), 422).startswith("k:")
    json_error(server.client.post("/api/neighbors", json={"references": []}), 422)
    json_error(server.client.post("/api/neighbors", json={"references": ["../etc/passwd"]}), 422)
    json_error(server.client.post("/api/neighbors", content=b"{not json",
                                  headers={"content-type": "application/json"}), 422)
    json_error(server.client.get("/api/neighbors"), 422)
    for ref in [0, -5, 2**64]:                     # was a 500: the GET twin's ids unchecked
        assert json_error(server.client.get("/api/neighbors", params={"ref": ref}),
                          422).startswith("ref.0:")


# -- uploads -----------------------------------------------------------------------------------

def test_upload_finds_look_alikes_without_adding_the_file(server, photos, tmp_path):
    col, files, root = photos
    query = tmp_path / "query.png"
    Image.open(files[("rocket", "bright")]).rotate(3).save(query)
    with open(query, "rb") as fh:
        response = server.client.post("/api/neighbors/upload", files={"file": ("query.png", fh)},
                                      data={"k": "4", "metric": "cosine"})
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["references"] == [{"name": "query.png", "upload": True,
                                     "size": query.stat().st_size}]
    expected = col.nearest(query, k=4)
    expected.references = ["query.png"]     # the name sent, not the server's temporary file
    assert answer["neighbors"] == json.loads(expected.to_json())
    assert {n["category"] for n in answer["neighbors"]} == {"rocket"}
    assert answer["notes"] == []
    with open(query, "rb") as fh:
        answer = server.client.post("/api/neighbors/upload", files={"file": ("query.png", fh)},
                                    data={"k": "4", "metric": "mahalanobis"}).json()
    assert len(answer["notes"]) == 1 and "Mahalanobis" in answer["notes"][0]
    ref = answer["neighbors"][0]["id"]
    notes = server.client.get(f"/api/neighbors?ref={ref}&metric=mahalanobis").json()["notes"]
    assert notes == answer["notes"]
    assert server.client.get("/api/collection").json()["count"] == 16


def test_uploads_that_are_not_images_are_refused(server, photos):
    col, files, root = photos
    cases = {"notes.txt": b"this is not a picture\n", "empty.png": b"",
             "half.jpg": files[("coffee", "orig")].read_bytes()[:2000],
             "bomb.png": png_header_only(100_000, 100_000)}
    for name, data in cases.items():
        response = server.client.post("/api/neighbors/upload", files={"file": (name, data)})
        assert name in json_error(response, 415)
    assert "too many pixels (10,000,000,000" in json_error(response, 415)
    # The file name is only echoed, reduced to its last part; nothing is written under it.
    response = server.client.post("/api/neighbors/upload", files={
        "file": ("../../../../tmp/lookalike-upload-test.png", b"not an image")})
    assert (json_error(response, 415)
            == "lookalike-upload-test.png: not an image (unrecognised format)")
    assert not os.path.exists("/tmp/lookalike-upload-test.png")
    json_error(server.client.post("/api/neighbors/upload", data={"k": "3"}), 422)  # no file


def test_oversized_uploads_are_refused_with_413(server):
    big = os.urandom(400_000)                      # the test server takes at most 300,000 bytes
    response = server.client.post("/api/neighbors/upload", files={"file": ("big.png", big)})
    assert "larger than" in json_error(response, 413)

    form = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + big + b"\r\n--x--\r\n")

    def chunks():                                  # no Content-Length: counted as it arrives
        for start in range(0, len(form), 65536):
            yield form[start:start + 65536]

    response = server.client.post("/api/neighbors/upload", content=chunks(),
                                  headers={"content-type": "multipart/form-data; boundary=x"})
    json_error(response, 413)
    status, headers, body = server.raw("POST", "/api/neighbors", body=b"x" * 400_000,
                                       headers={"Content-Type": "application/json"})
    assert status == 413 and "error" in json.loads(body)


# -- files -------------------------------------------------------------------------------------

def test_thumbnails_have_the_asked_size_and_are_cached(server, photos):
    col, files, root = photos
    image_id = ids_by_path(col)[str(files[("astronaut", "orig")])]       # 160 x 120
    for asked, expected in [(100, (128, 96)), (32, (32, 24)), (1, (32, 24)), (4096, (160, 120))]:
        response = server.client.get(f"/api/images/{image_id}/thumbnail", params={"size": asked})
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        im = Image.open(io.BytesIO(response.content))
        assert im.format == "JPEG" and im.size == expected, asked
    digest = col.image(image_id)["content_hash"].hex()
    cached = root / "photos.db.thumbs" / "128" / digest[:2] / digest
    assert cached.is_file()
    # A second request is answered from the cache file, not made again.
    marker = io.BytesIO()
    Image.new("RGB", (7, 5), "red").save(marker, "JPEG")
    cached.write_bytes(marker.getvalue())
    again = server.client.get(f"/api/images/{image_id}/thumbnail", params={"size": 128})
    assert again.content == marker.getvalue()
    etag = again.headers["etag"]
    assert server.client.get(f"/api/images/{image_id}/thumbnail", params={"size": 128},
                             headers={"if-none-match": etag}).status_code == 304
    json_error(server.client.get(f"/api/images/{image_id}/thumbnail", params={"size": 0}), 422)
    json_error(server.client.get(f"/api/images/{image_id}/thumbnail", params={"size": 5000}), 422)


def test_originals_are_the_indexed_bytes(server, photos):
    col, files, root = photos
    path = files[("coffee", "small")]
    image_id = ids_by_path(col)[str(path)]
    response = server.client.get(f"/api/images/{image_id}/original")
    assert response.status_code == 200 and response.content == path.read_bytes()
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_display_is_the_original_or_a_rendition_a_browser_can_show(tmp_path):
    made = write_formats(tmp_path / "pics")
    with lookalike.Collection.index([tmp_path / "pics"], db=tmp_path / "pics.db",
                                    model=MODEL) as col:
        ids = ids_by_path(col)
        heic = col.image(ids[str(made["heic"])])["content_hash"].hex()
    live = serve(tmp_path / "pics.db", warm_up=False)
    try:
        def display(name):
            response = live.client.get(f"/api/images/{ids[str(made[name])]}/display")
            assert response.status_code == 200, response.text
            return response

        for name in ["png", "jpeg", "gif", "webp"]:          # shown as they are
            assert display(name).content == made[name].read_bytes()
        for name in ["heic", "avif", "tiff", "tiff16"]:         # converted, at full size
            response = display(name)
            assert response.headers["content-type"] == "image/jpeg", name
            assert Image.open(io.BytesIO(response.content)).size == (96, 64), name
        cached = tmp_path / "pics.db.thumbs" / "display" / heic[:2] / heic
        assert cached.is_file()
    finally:
        live.stop()


def test_files_that_changed_since_indexing_are_not_served(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    names = ["a", "b", "c", "d", "e"]
    for n, name in enumerate(names):
        Image.new("RGBA" if name == "e" else "RGB", (40, 30), (50 * n, 90, 200, 128)).save(
            folder / f"{name}.png")
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of the collection\n")
    os.symlink(secret, folder / "f.png")          # a link out of the folder, to a non-image
    col = lookalike.Collection.index([folder], db=tmp_path / "c.db", model=MODEL)
    ids = {Path(p).stem: i for p, i in ids_by_path(col).items()}
    link = col.store.find(os.fsencode(folder / "f.png"))
    assert link["skip_reason"] == "not an image (unrecognised format)"
    ids["f"] = link["id"]                          # catalogued, but never served
    live = serve(tmp_path / "c.db")
    try:
        def get(name, what="original"):
            return live.client.get(f"/api/images/{ids[name]}/{what}")
        for what in ["original", "thumbnail"]:
            assert "no such image" in json_error(get("f", what), 404)
        transparent = get("e", "thumbnail")
        assert transparent.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(transparent.content)).mode == "RGBA"
        (folder / "a.png").write_bytes((folder / "b.png").read_bytes())       # new content
        assert "changed since it was indexed" in json_error(get("a"), 409)
        json_error(get("a", "thumbnail"), 409)
        (folder / "b.png").unlink()
        assert "gone" in json_error(get("b"), 404)
        (folder / "c.png").unlink()
        os.symlink(secret, folder / "c.png")                                  # points elsewhere
        json_error(get("c"), 409)
        (folder / "d.png").unlink()
        os.mkfifo(folder / "d.png")                                           # must not hang
        assert "regular file" in json_error(get("d"), 404)
    finally:
        live.stop()
        col.close()


TRAVERSALS = [
    "/api/images/../../../../etc/passwd/original",
    "/api/images/..%2f..%2f..%2fetc%2fpasswd/original",
    "/api/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumbnail",
    "/api/images/%252e%252e%252fetc%252fpasswd/original",
    "/api/images//etc/passwd/original",
    "/api/images/%2Fetc%2Fpasswd/original",
    "/api/images/1%2f..%2f..%2fetc%2fpasswd/original",
    "/api/images/1/../../../etc/passwd",
    "/api/images/-1/original",
    "/api/images/99999999999999999999999/original",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/%252e%252e/app.py",
    "/static/..%2fapp.py",
    "/static/%2e%2e/app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
    "/etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_paths_never_reach_files_outside_the_catalogue(server, target):
    status, headers, body = server.raw("GET", target)
    assert status in (400, 404, 422), (target, status)
    assert headers["content-type"].startswith("application/json")
    assert "error" in json.loads(body)
    assert b"root:" not in body and b"import" not in body


def test_unknown_ids_routes_and_hosts_get_json_errors(server):
    assert "no such image" in json_error(server.client.get("/api/images/999999/original"), 404)
    json_error(server.client.get("/api/images/999999/thumbnail"), 404)
    json_error(server.client.get("/api/nothing-here"), 404)
    json_error(server.client.delete("/api/images"), 405)
    # Pages elsewhere cannot reach the viewer by making their own name resolve to 127.0.0.1.
    status, headers, body = server.raw("GET", "/api/collection", headers={"Host": "evil.example"})
    assert status == 400 and "Host" in json.loads(body)["error"]
    assert server.raw("GET", "/api/collection",
                      headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_a_bug_is_a_json_500_without_traceback(photos):
    col, files, root = photos
    app = create_app(root / "photos.db", warm_up=False)

    def broken():
        raise RuntimeError("secret internals")

    app.state.collection.categories = broken
    live = LiveServer(app)
    try:
        response = live.client.get("/api/categories")
        assert "internal error" in json_error(response, 500)
        assert "secret internals" not in response.text
    finally:
        live.stop()


@pytest.mark.slow  # over a second on the 2-core machine
def test_concurrent_requests_share_the_collection_safely(server, photos):
    col, files, root = photos
    ids = sorted(ids_by_path(col).values())
    expected = {i: server.client.post("/api/neighbors", json={"references": [i], "k": 4}).json()
                for i in ids}

    def work(n):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            i = ids[n % len(ids)]
            kind = n % 3
            if kind == 0:
                got = client.post("/api/neighbors", json={"references": [i], "k": 4}).json()
                return got == expected[i]
            if kind == 1:
                page = client.get("/api/images", params={"offset": n % 16, "limit": 3}).json()
                return page["total"] == 16
            return client.get(f"/api/images/{i}/thumbnail", params={"size": 64}).status_code == 200

    with ThreadPoolExecutor(20) as pool:
        assert all(pool.map(work, range(120)))


# -- the command -------------------------------------------------------------------------------

def test_only_loopback_hosts_go_without_a_warning():
    for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"]:
        assert exposure_warning(host) is None, host
    for host in ["0.0.0.0", "::", "192.168.1.20", "example.org"]:
        assert "warning" in exposure_warning(host), host


def _lookalike(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "lookalike", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow  # over a second on the 2-core machine
def test_serve_command_serves_until_interrupted(photos):
    col, files, root = photos
    proc = _lookalike("serve", "--db", str(root / "photos.db"), "--port", "0")
    try:
        line = proc.stderr.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/)", line).group(1)
        assert httpx.get(url + "api/collection", timeout=30).json()["count"] == 16
        assert "<title>lookalike</title>" in httpx.get(url, timeout=30).text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert "warning" not in line
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow  # over a second on the 2-core machine
def test_serve_command_warns_when_listening_beyond_this_machine(photos):
    col, files, root = photos
    with socket.socket() as busy:                  # a busy port: it warns, then fails to bind,
        busy.bind(("127.0.0.1", 0))                # so nothing is ever exposed by the test
        busy.listen()
        port = busy.getsockname()[1]
        proc = _lookalike("serve", "--db", str(root / "photos.db"), "--host", "0.0.0.0",
                          "--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "warning: listening on 0.0.0.0" in err
    assert f"cannot listen on 0.0.0.0 port {port}" in err
    assert "Traceback" not in err
    missing = _lookalike("serve", "--db", str(root / "nothing.db"), "--port", "0")
    out, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and "no collection there" in err
