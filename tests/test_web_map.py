"""The Map view's JSON and the grid's sorts and filters: `/api/map` (and its "computing"
answer), `/api/analysis`, `/api/map/duplicates`, and `Collection.images` / `/api/images`
sorted by outlier score and filtered by cluster, quality flag and chosen ids, in SQL, on a
collection of real photos with dark, blurred, grey and oddly shaped ones made here."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

import lookalike
from lookalike.analysis.quality import FLAGS
from lookalike.errors import LookalikeError
from test_indexing import photo_families
from test_web_api import MODEL, json_error, serve


def write_flagged(folder) -> dict[str, str]:
    """Images each of which should raise one quality flag."""
    from skimage import data

    folder.mkdir(parents=True)
    base = Image.fromarray(data.chelsea()).convert("RGB").resize((160, 120))
    made = {"dark": ImageEnhance.Brightness(base).enhance(0.08),
            "blurry": base.filter(ImageFilter.GaussianBlur(6)),
            "greyscale": base.convert("L").convert("RGB"),
            "odd_aspect": base.resize((480, 60))}
    out = {}
    for flag, image in made.items():
        path = folder / f"{flag}.png"
        image.save(path)
        out[flag] = str(path)
    return out


def make_collection(root) -> tuple[lookalike.Collection, dict]:
    photo_families(root / "photos")
    flagged = write_flagged(root / "photos" / "flagged")
    col = lookalike.Collection.index([root / "photos"], db=root / "map.db", model=MODEL)
    return col, flagged


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web-map")
    col, flagged = make_collection(root)
    live = serve(root / "map.db", warm_up=False)
    yield live, col, flagged
    live.stop()
    col.close()


def ids_of(rows) -> list[int]:
    return [r["id"] for r in rows]


def analysed(col) -> lookalike.Analysis:
    return col.analyze(clusters=3)


# -- Collection.images: sorted and filtered in the catalogue -------------------------------------

@pytest.mark.slow  # over a second on the 2-core machine
def test_images_sort_by_outlier_and_filter_by_cluster_flag_and_ids(site):
    live, col, flagged = site
    found = analysed(col)
    _, every = col.images(limit=None)
    assert ids_of(every) == sorted(found.ids.tolist())

    total, rows = col.images(limit=None, sort="outlier")
    most_unusual = found.ids[np.lexsort((found.ids, -found.outlier))].tolist()
    assert total == len(found) and ids_of(rows) == most_unusual
    pages = [ids_of(col.images(offset, 5, sort="outlier")[1]) for offset in range(0, total, 5)]
    assert sum(pages, []) == most_unusual      # pages follow on from each other
    third = most_unusual[2]
    assert col.position(third, sort="outlier") == 2

    for c in set(found.cluster.tolist()):
        total, rows = col.images(limit=None, cluster=c)
        assert ids_of(rows) == found.ids[found.cluster == c].tolist() and total == len(rows)

    for flag in FLAGS:                        # the catalogue's filter agrees with the flags
        total, rows = col.images(limit=None, flag=flag)
        assert ids_of(rows) == found.ids[found.flags[flag]].tolist(), flag
    by_path = {r["path"]: r["id"] for r in every}
    for flag, path in flagged.items():
        assert by_path[path] in ids_of(col.images(limit=None, flag=flag)[1]), flag
    assert col.images(limit=None, flag="dark")[0] == 1

    chosen = [by_path[p] for p in flagged.values()]
    total, rows = col.images(limit=None, ids=chosen + [10**9])
    assert total == 4 and ids_of(rows) == sorted(chosen)
    total, rows = col.images(limit=None, ids=chosen, category="flagged", flag="dark",
                             sort="outlier")
    assert ids_of(rows) == [by_path[flagged["dark"]]]
    assert col.position(by_path[flagged["blurry"]], ids=chosen) == sorted(chosen).index(
        by_path[flagged["blurry"]])
    assert col.position(every[0]["id"], ids=chosen) is None


@pytest.mark.slow  # over a second on the 2-core machine
def test_sorting_without_a_current_analysis_says_to_run_analyze(tmp_path):
    col, _ = make_collection(tmp_path)
    with col:
        with pytest.raises(LookalikeError, match="run `lookalike analyze`"):
            col.images(sort="outlier")
        with pytest.raises(LookalikeError, match="run `lookalike analyze`"):
            col.images(cluster=0)
        assert col.images(flag="dark")[0] == 1     # flags were measured while indexing
        with pytest.raises(LookalikeError, match="no quality flag 'blury'"):
            col.images(flag="blury")
        with pytest.raises(LookalikeError, match="no sort 'unusual'"):
            col.images(sort="unusual")
        col.analyze()
        assert col.images(sort="outlier")[0] == len(col)


# -- over HTTP -------------------------------------------------------------------------------

def test_images_route_sorts_filters_and_takes_chosen_ids(site):
    live, col, flagged = site
    found = analysed(col)
    answer = live.client.get("/api/images", params={"sort": "outlier", "limit": 4}).json()
    assert [i["id"] for i in answer["items"]] == found.most_unusual(4)
    assert answer["total"] == len(found)
    biggest = found.clusters[0]
    answer = live.client.get("/api/images", params={"cluster": biggest.cluster,
                                                    "limit": 1000}).json()
    assert answer["total"] == biggest.size
    answer = live.client.get("/api/images", params={"flag": "greyscale"}).json()
    assert [i["path"] for i in answer["items"]] == [flagged["greyscale"]]
    chosen = found.most_unusual(5)
    answer = live.client.post("/api/images", json={"ids": chosen, "sort": "outlier",
                                                   "limit": 2, "offset": 1}).json()
    assert answer["total"] == 5 and [i["id"] for i in answer["items"]] == chosen[1:3]
    where = live.client.get(f"/api/images/{chosen[3]}/position",
                            params={"sort": "outlier"}).json()
    assert where["position"] == 3
    assert "no quality flag 'fuzzy'" in json_error(
        live.client.get("/api/images", params={"flag": "fuzzy"}), 400)


def test_analysis_route_gives_arrays_by_id(site):
    live, col, _ = site
    found = analysed(col)
    answer = live.client.get("/api/analysis").json()
    assert answer["ids"] == found.ids.tolist() and answer["cluster"] == found.cluster.tolist()
    assert answer["outlier"] == pytest.approx(found.outlier.tolist(), abs=1e-4)
    assert answer["flag_names"] == list(FLAGS)
    dark = FLAGS.index("dark")
    assert [bool(b >> dark & 1) for b in answer["flags"]] == found.flags["dark"].tolist()
    assert [c["size"] for c in answer["clusters"]] == [c.size for c in found.clusters]
    assert answer["method"] == found.method == "kmeans"  # the clusters last asked for: kept


def hold_the_worker(live) -> threading.Event:
    """Keep the app's worker busy until the returned event is set: what is asked meanwhile
    waits, as behind a long UMAP."""
    gate = threading.Event()
    live.app.state.viewer.jobs._worker.submit(gate.wait)
    return gate


def test_a_map_being_computed_is_answered_computing_then_given(site):
    live, col, _ = site
    gate = hold_the_worker(live)
    try:
        first = live.client.get("/api/map", params={"method": "pca", "wait": 0})
        assert first.status_code == 202
        body = first.json()
        assert body["status"] == "computing" and body["method"] == "pca"
        assert body["progress"].startswith(f"Laying out {len(col)} images by PCA")
        assert "waiting for" in body["progress"]
        busy = live.client.get("/api/analysis", params={"wait": 0})
        assert busy.status_code == 202 and busy.json()["progress"].startswith("Analysing")
    finally:
        gate.set()
    answer = live.client.get("/api/map", params={"method": "pca", "wait": 30})
    assert answer.status_code == 200
    body = answer.json()
    assert body["ids"] == sorted(body["ids"]) and len(body["ids"]) == len(col)
    assert body["categories"] == ["astronaut", "chelsea", "coffee", "flagged", "rocket"]
    assert "did you mean 'umap'" in json_error(
        live.client.get("/api/map", params={"method": "uamp"}), 400)


@pytest.mark.slow  # over a second on the 2-core machine
def test_duplicate_groups_colour_the_map_once_computed(site):
    live, col, _ = site
    asked = {"tier": "similar", "threshold": 0.2}
    before = live.client.get("/api/map/duplicates", params=asked).json()
    assert before == {"computed": False, "tier": "similar"}
    groups = live.client.get("/api/duplicates", params=asked).json()["groups"]
    assert groups
    answer = live.client.get("/api/map/duplicates", params=asked).json()
    assert answer["computed"] and answer["groups"] == len(groups)
    assert answer["ids"] == [i["id"] for g in groups for i in g["images"]]
    assert answer["group"] == [g["group"] for g in groups for _ in g["images"]]
    near = {"tier": "near", "compute": True}
    answer = live.client.get("/api/map/duplicates", params=near)
    for _ in range(1200):                      # 202 while they are computed
        if answer.status_code == 200:
            break
        assert answer.json()["progress"].startswith("Finding the near copies among")
        time.sleep(0.05)
        answer = live.client.get("/api/map/duplicates", params=near)
    assert answer.json()["computed"] is True


def decode_binary(data: bytes) -> dict:
    """/api/map?format=binary read back as its docstring lays it out."""
    length = int(np.frombuffer(data[:4], "<u4")[0])
    assert (4 + length) % 8 == 0
    header = json.loads(data[4:4 + length])
    at = 4 + length
    for name, kind, count in header["arrays"]:
        dtype = np.dtype({"int32": "<i4", "float32": "<f4", "float64": "<f8"}[kind])
        assert at % dtype.itemsize == 0
        header[name] = np.frombuffer(data, dtype, count, at)
        at += count * dtype.itemsize
    assert at == len(data)
    return header


def test_the_binary_map_is_the_json_map(site):
    live, col, _ = site
    plain = live.client.get("/api/map", params={"method": "pca", "wait": 30}).json()
    answer = live.client.get("/api/map", params={"method": "pca", "wait": 30,
                                                 "format": "binary"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    packed = decode_binary(answer.content)
    assert [a[:2] for a in packed["arrays"]] == [["ids", "int32"], ["x", "float32"],
                                                 ["y", "float32"], ["category", "int32"]]
    for key in ("categories", "method", "model", "fitted_on", "placed", "action"):
        assert packed[key] == plain[key], key
    assert packed["ids"].tolist() == plain["ids"] == col.map(method="pca").ids.tolist()
    assert packed["category"].tolist() == plain["category"]
    assert min(plain["category"]) >= 0 and len(set(plain["category"])) == 5
    extent = max(np.ptp(packed["x"]), np.ptp(packed["y"]))
    for axis in ("x", "y"):  # JSON rounds to 1/100,000 of the extent; binary is exact
        assert np.abs(packed[axis] - np.asarray(plain[axis])).max() <= 1e-5 * extent
        assert packed[axis].tolist() == getattr(col.map(method="pca"), axis).tolist()
    bad = live.client.get("/api/map", params={"method": "pca", "format": "xml"})
    assert bad.status_code in (400, 422)
