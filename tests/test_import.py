"""Vectors computed elsewhere, imported: found by `nearest`, `similar` and the viewer, read back
from every format `export` writes, and refused whole when the input is bad."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import lookalike
from lookalike.errors import LookalikeError
from test_cli import run
from test_web_api import serve
from test_web_browser import browser  # noqa: F401  (the chromium fixture)

DIM = 24


def clustered(n, seed=0):
    """n vectors in n // 5 tight clusters: each one's nearest are its cluster's."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 5, DIM))
    return (np.repeat(centres, 5, axis=0) + 0.05 * rng.normal(size=(n, DIM))).astype(np.float32)


def fake_paths(n, folder="/data/pics"):
    return [f"{folder}/img{i:03d}.jpg" for i in range(n)]


def one_line_error(proc, *words):
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_imported_vectors_are_searched_under_a_model_of_ones_own(tmp_path):
    vectors, paths = clustered(40), fake_paths(40)
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        report = col.add_vectors(paths, vectors, model="my-clip",
                                 categories=["a"] * 20 + ["b"] * 20,
                                 extras=[{"label": i % 5} for i in range(40)])
        assert (report.added, report.updated, report.attached, report.dim) == (40, 0, 0, DIM)
        assert col.models == {"my-clip": 40} and col.default_model == "my-clip"
        res = col.nearest(paths[7], k=4, model="my-clip")
        assert set(res.paths) == set(paths[5:10]) - {paths[7]}
        row = res.rows[0]
        assert (row["width"], row["height"], row["size"], row["category"]) == \
            (None, None, None, "a")
        assert json.loads(col.store.find(paths[8].encode())["extras"]) == {"label": 3}
        # Re-importing a path replaces its vector (and is counted as such).
        again = col.add_vectors([paths[7]], vectors[30][None] + 0.001, model="my-clip")
        assert (again.added, again.updated) == (0, 1) and len(col) == 40
        assert col.nearest(paths[7], k=1).paths == [paths[30]]
        with pytest.raises(LookalikeError, match="imported from elsewhere"):
            col.nearest(np.zeros(3, np.uint8).tobytes(), k=1)


def test_vectors_join_images_already_indexed_under_a_second_model(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.new("RGB", (20 + i, 10), (40 * i, 0, 0)).save(folder / f"{i}.png")
    with lookalike.Collection.index([folder], db=tmp_path / "c.db", model="squeezenet") as col:
        files = sorted(str(p) for p in folder.iterdir())
        report = col.add_vectors(files, clustered(5 * 2)[:6], model="mine")
        assert (report.added, report.attached) == (0, 6)
        assert col.models == {"squeezenet": 6, "mine": 6} and len(col) == 6
        assert col.nearest(files[0], k=1, model="mine").rows[0]["width"] is not None


@pytest.mark.parametrize("fmt", ["parquet", "npz", "csv", "json", "tab"])
def test_export_then_import_into_a_new_database_gives_the_same_look_alikes(tmp_path, fmt):
    vectors, paths = clustered(30, seed=3), fake_paths(30)
    with lookalike.Collection.create(tmp_path / "a.db") as col:
        col.add_vectors(paths, vectors, model="emb", categories=["x", "y", "z"] * 10)
        col.export(tmp_path / f"all.{fmt}")
        before = [col.nearest(p, k=5).paths for p in paths[::7]]
        distances = [col.nearest(p, k=5).distances for p in paths[::7]]
    with lookalike.Collection.create(tmp_path / "b.db") as col:
        report = col.import_vectors(tmp_path / f"all.{fmt}", model=None if fmt in (
            "parquet", "npz") else "emb")
        assert report.added == 30 and report.model == "emb"
        assert [col.nearest(p, k=5).paths for p in paths[::7]] == before
        for p, d in zip(paths[::7], distances):
            np.testing.assert_array_equal(col.nearest(p, k=5).distances, d)
        if fmt != "npz":  # npz holds no categories
            assert col.categories() == {"x": 10, "y": 10, "z": 10}


def test_common_layouts_relative_paths_urls_and_numbered_columns(tmp_path):
    vectors = clustered(10)
    frame = pd.DataFrame({"file": [f"sub/{i}.png" for i in range(9)] + ["https://e.org/p.jpg"],
                          "label": list("abcdeabcde")})
    for j in range(DIM):
        frame[f"emb_{j}"] = vectors[:, j]
    frame.to_csv(tmp_path / "mine.csv", index=False)
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        report = col.import_vectors(tmp_path / "mine.csv", model="m")
        assert report.columns == {"path": "file", "vector": f"emb_0 ... emb_{DIM - 1}"}
        _, rows = col.images(limit=None)
        assert rows[0]["path"] == str(tmp_path / "sub" / "0.png")
        assert rows[-1]["path"] == "https://e.org/p.jpg" and rows[-1]["name"] == "p"
        assert json.loads(rows[1]["extras"]) == {"label": "b"}
    # A list column of another name, and a path column named on the command line.
    pd.DataFrame({"where": ["/x/1.jpg", "/x/2.jpg"], "feats": list(vectors[:2])}).to_parquet(
        tmp_path / "other.parquet")
    with lookalike.Collection.create(tmp_path / "d.db") as col:
        col.import_vectors(tmp_path / "other.parquet", "m", path_column="where",
                           vector_column="feats")
        assert col.nearest("/x/1.jpg", k=1).paths == ["/x/2.jpg"]


def write_parquet(path, paths, vectors):
    pd.DataFrame({"path": paths, "vector": [list(map(float, v)) for v in vectors]}).to_parquet(path)


BAD = {
    "a dimension the model's vectors do not have": (
        lambda t: write_parquet(t, fake_paths(3, "/new"), clustered(5)[:3, :10]), "10 dimensions"),
    "a known model's dimension": (
        lambda t: write_parquet(t, fake_paths(3, "/new"), clustered(5)[:3]), "squeezenet"),
    "a NaN": (lambda t: write_parquet(t, fake_paths(3, "/new"),
                                      np.where(np.eye(3, DIM) > 0, np.nan, 1)), "NaN"),
    "an infinity": (lambda t: write_parquet(t, fake_paths(2, "/new"),
                                            np.full((2, DIM), np.inf)), "infinite"),
    "a path given twice": (lambda t: write_parquet(t, ["/new/a.jpg", "/new/./a.jpg"],
                                                   clustered(5)[:2]), "listed twice"),
    "no path column": (lambda t: pd.DataFrame({"vector": list(clustered(5))}).to_parquet(t),
                       "--path-column"),
    "no vector column": (lambda t: pd.DataFrame({"path": ["/a.jpg"]}).to_parquet(t),
                         "--vector-column"),
    "no rows": (lambda t: write_parquet(t, [], np.zeros((0, DIM))), "no vectors"),
    "vectors of different lengths": (
        lambda t: pd.DataFrame({"path": ["/a.jpg", "/b.jpg"],
                                "vector": [[1.0, 2.0], [1.0]]}).to_parquet(t), "same length"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    db = tmp_path / "c.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors(fake_paths(10), clustered(10), model="mine")
        generation = col.store.generation
    make, words = BAD[case]
    make(tmp_path / "bad.parquet")
    model = "squeezenet" if "known" in case else "mine"
    proc = run("import", tmp_path / "bad.parquet", "--db", db, "--model", model, check=False)
    one_line_error(proc, "bad.parquet", words)
    with lookalike.Collection.open(db) as col:
        assert col.store.generation == generation and len(col) == 10
        assert col.models == {"mine": 10}


@pytest.mark.slow  # over a second on the 2-core machine
def test_cli_import_then_similar_and_models(tmp_path):
    vectors, paths = clustered(20), fake_paths(20)
    np.savez(tmp_path / "v.npz", paths=np.array(paths), vectors=vectors, model=np.array("dino"))
    db = tmp_path / "new" / "c.db"
    out = run("import", tmp_path / "v.npz", "--db", db).stdout
    assert "imported 20 dino vectors of 24 dimensions" in out and "new images" in out
    similar = run("similar", paths[0], "--db", db, "-k", "4", "--format", "json").stdout
    assert {r["path"] for r in json.loads(similar)} == set(paths[1:5])
    table = run("similar", paths[0], "--db", db, "-k", "2", "--model", "dino").stdout
    assert "None" not in table and "img001.jpg" in table
    listed = json.loads(run("models", "--db", db, "--format", "json").stdout)
    assert listed["collection"] == [{"name": "dino", "dim": DIM, "images": 20, "own": True,
                                   "reading": None,
                                   "search": "exact search (under 20,000 images)"}]
    # A mistyped file leaves no database behind.
    proc = run("import", tmp_path / "missing.npz", "--db", tmp_path / "other.db", check=False)
    one_line_error(proc, "no such file")
    assert not (tmp_path / "other.db").exists()


def test_the_viewer_finds_imported_vectors_and_serves_readable_files(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    paths = []
    for i in range(10):
        Image.new("RGB", (30, 20), (25 * i, 100, 0)).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    paths[9] = str(folder / "gone.png")  # a vector whose file is not here
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add_vectors(paths, clustered(10), model="mine")
        ids = {r["path"]: r["id"] for r in col.images(limit=None)[1]}
    live = serve(tmp_path / "c.db")
    try:
        answer = live.client.post("/api/neighbors",
                                  json={"references": [ids[paths[0]]], "k": 4}).json()
        assert {n["path"] for n in answer["neighbors"]} == set(paths[1:5])
        assert answer["model"] == "mine" and answer["neighbors"][0]["width"] is None
        thumb = live.client.get(f"/api/images/{ids[paths[1]]}/thumbnail", params={"size": 64})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert live.client.get(f"/api/images/{ids[paths[9]]}/thumbnail").status_code == 404
    finally:
        live.stop()


@pytest.mark.browser
def test_the_page_shows_imported_images_without_a_made_up_size(tmp_path, browser):  # noqa: F811
    paths = fake_paths(10)
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add_vectors(paths, clustered(10), model="mine")
        first = col.images(limit=1)[1][0]["id"]
    live = serve(tmp_path / "c.db", warm_up=False)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{live.url}/?ref={first}")
        page.wait_for_selector("#neighbors li")
        shown = page.text_content("#panel") + " ".join(
            page.eval_on_selector_all(".cell[title]", "cells => cells.map(c => c.title)"))
        assert "img001" in shown or "img002" in shown  # a look-alike of img000
        assert "null" not in shown and "undefined" not in shown
    finally:
        context.close()
        live.stop()
