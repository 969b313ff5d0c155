"""The map: a collection's images as points of a 2-D layout (UMAP, t-SNE, PCA), kept beside
the database, with images added later placed into it rather than refitted.

The collections are written straight into the catalogue: groups of vectors around well
separated centres, each group a category, so a good map keeps the groups apart. UMAP compiles
its numba code on first use in a process (about 30 s here), so its tests are marked slow.
"""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import lookalike
from lookalike.analysis import layout, maps
from lookalike.catalogue.paths import maps_folder, vectors_folder
from lookalike.catalogue.store import ImageRow, Store
from lookalike.cli import main

MODEL = "efficientnet-lite0-gem"
DIM = 64


def _vectors(groups: int, per: int, seed: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, group of each): `per` noisy vectors around each of `groups` random centres."""
    centres = np.random.default_rng(1234).normal(size=(8, DIM))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(groups), per)
    vectors = centres[labels] + 0.15 * rng.normal(size=(len(labels), DIM))
    return vectors.astype(np.float32), labels


def write_collection(db, groups: int = 4, per: int = 12, seed: int = 0, prefix: str = "img"):
    """Add `groups` x `per` images with vectors to the catalogue `db`; returns their labels."""
    vectors, labels = _vectors(groups, per, seed)
    rows, embeddings = [], []
    for i, (v, g) in enumerate(zip(vectors, labels)):
        h = f"{prefix}{i}".encode().ljust(16, b"\0")[:16]
        path = f"/pics/group{g}/{prefix}{i}.png"
        rows.append(ImageRow(path.encode(), path, "/pics", f"{prefix}{i}", f"group{g}", 100, 1,
                             8, 8, h))
        embeddings.append((h, MODEL, v))
    with Store(db) as store:
        store.write(rows, embeddings)
    return labels


def knn_accuracy(points: np.ndarray, labels, k: int = 5) -> float:
    """The share of points whose k nearest others on the map mostly share their label."""
    labels = np.asarray(labels)
    d = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = (labels[nearest] == labels[:, None]).mean(axis=1)
    return float((votes > 0.5).mean())


def _labels_of(layout_: lookalike.api.MapLayout):
    return [c for c in layout_.categories]


def _points(m) -> np.ndarray:
    return np.column_stack([m.x, m.y])


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "col.db"
    write_collection(path)
    return path


@pytest.mark.parametrize("method", ["pca", pytest.param("tsne", marks=pytest.mark.slow),
                                    pytest.param("umap", marks=pytest.mark.slow)])
def test_separated_groups_stay_apart_on_the_map(db, method):
    with lookalike.Collection.open(db) as col:
        m = col.map(method=method)
    assert len(m) == 48 and m.method == method and m.action == "fitted"
    assert m.fitted_on == 48 and m.placed == 0 and m.model == MODEL
    assert knn_accuracy(_points(m), _labels_of(m)) >= 0.95
    frame = m.to_pandas()
    assert list(frame.columns) == ["id", "path", "category", "x", "y"]
    assert frame["id"].is_monotonic_increasing and np.isfinite(frame[["x", "y"]]).all().all()
    assert m.to_records()[0]["path"].startswith("/pics/group0/")


@pytest.mark.parametrize("method", ["pca", pytest.param("tsne", marks=pytest.mark.slow)])
def test_the_same_seed_gives_the_same_map(tmp_path, db, method):
    with lookalike.Collection.open(db) as col:
        first = col.map(method=method)
        again = col.map(method=method, refit=True)
        other = col.map(method=method, refit=True, seed=7)
    assert again.action == "fitted"
    np.testing.assert_array_equal(_points(first), _points(again))
    if method != "pca":  # PCA has no randomness
        assert not np.allclose(_points(first), _points(other))


def test_a_second_call_reads_the_kept_map(db):
    with lookalike.Collection.open(db) as col:
        fitted = col.map(method="pca")
        assert (maps_folder(db) / f"{MODEL}-pca.npz").is_file()
        assert col.map(method="pca").action == "cached"
    with lookalike.Collection.open(db) as col:  # another process: from the file
        kept = col.map(method="pca")
    assert kept.action == "cached"
    np.testing.assert_array_equal(_points(fitted), _points(kept))


def test_a_kept_map_up_to_date_is_read_without_the_vectors(db):
    """What makes the Map view's first load of a million-image map take seconds, not 30."""
    with lookalike.Collection.open(db) as col:
        fitted = col.map(method="pca")
    shutil.rmtree(vectors_folder(db))           # the vector matrix's cache, made by the fit
    with lookalike.Collection.open(db) as col:
        kept = col.map(method="pca")
        assert kept.action == "cached"
        assert not vectors_folder(db).exists()  # the vectors were not loaded
        assert kept.model == fitted.model == MODEL
        assert kept.paths == fitted.paths and kept.categories == fitted.categories
        by_scan = col.store.paths_and_categories(kept.ids, scan_from=0)
        assert by_scan == (fitted.paths, fitted.categories)
        assert col.store.paths_and_categories(kept.ids[::5], scan_from=0) == (
            fitted.paths[::5], fitted.categories[::5])
        gone = np.append(kept.ids[:3], kept.ids.max() + 1)  # an id not in the table
        assert col.store.paths_and_categories(gone, scan_from=0)[0] == fitted.paths[:3]
    np.testing.assert_array_equal(_points(fitted), _points(kept))


@pytest.mark.parametrize("method", ["pca", pytest.param("tsne", marks=pytest.mark.slow),
                                    pytest.param("umap", marks=pytest.mark.slow)])
def test_added_images_are_placed_near_their_group(db, method):
    with lookalike.Collection.open(db) as col:
        before = col.map(method=method)
    write_collection(db, groups=4, per=2, seed=99, prefix="new")  # 8 new: 17% of 48
    with lookalike.Collection.open(db) as col:
        after = col.map(method=method)
    assert after.action == "placed" and after.placed == 8 and after.fitted_on == 48
    old = np.isin(after.ids, before.ids)
    np.testing.assert_array_equal(_points(after)[old], _points(before))  # nothing moved
    # each new image lies among its own group's fitted points
    points, labels = _points(after), np.asarray(_labels_of(after))
    for i in np.flatnonzero(~old):
        d = np.linalg.norm(points[old] - points[i], axis=1)
        nearest = labels[old][np.argsort(d)[:5]]
        assert (nearest == labels[i]).mean() >= 0.6, (labels[i], nearest)


def test_removed_images_are_dropped_and_growth_refits(db):
    with lookalike.Collection.open(db) as col:
        col.map(method="pca")
        gone = col.images(limit=3)[1]
        col.store.remove([r["id"] for r in gone])
        smaller = col.map(method="pca")
    assert smaller.action == "placed" and len(smaller) == 45 and smaller.placed == 0
    assert not set(r["id"] for r in gone) & set(smaller.ids.tolist())
    write_collection(db, groups=4, per=4, seed=5, prefix="more")  # 16 new: 33% of 48
    with lookalike.Collection.open(db) as col:
        grown = col.map(method="pca")
    assert grown.action == "fitted" and grown.fitted_on == 61 and grown.placed == 0


@pytest.mark.parametrize("damage, method", [("garbage", "pca"), ("empty", "pca"),
                                           ("reducer", "tsne"), ("foreign key", "tsne")])
@pytest.mark.slow  # over a second on the 2-core machine
def test_a_damaged_or_foreign_map_file_is_refitted(db, damage, method, monkeypatch, tmp_path):
    with lookalike.Collection.open(db) as col:
        col.map(method=method)
    npz, reducer = maps.map_files(maps_folder(db), MODEL, method)
    if damage == "garbage":
        npz.write_bytes(b"not a map at all")
    elif damage == "empty":
        npz.write_bytes(b"")
    write_collection(db, groups=4, per=1, seed=3, prefix="late")  # something to place
    if damage == "reducer":
        reducer.write_bytes(reducer.read_bytes()[:-20])
    elif damage == "foreign key":  # a map folder made by someone else: its pickle is not run
        monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "another-user"))
    with lookalike.Collection.open(db) as col:
        m = col.map(method=method)
    assert m.action == "fitted" and len(m) == 52 and m.fitted_on == 52
    assert knn_accuracy(_points(m), _labels_of(m)) >= 0.95


def test_a_stale_map_of_another_format_is_refitted(db):
    with lookalike.Collection.open(db) as col:
        col.map(method="pca")
    npz = maps.map_files(maps_folder(db), MODEL, "pca")[0]
    with np.load(npz) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.asarray(json.dumps({**meta, "format": 0}))
    np.savez(npz, **arrays)
    with lookalike.Collection.open(db) as col:
        assert col.map(method="pca").action == "fitted"


def test_tiny_collections_and_bad_method_names(tmp_path):
    one = tmp_path / "one.db"
    write_collection(one, groups=1, per=1)
    with lookalike.Collection.open(one) as col:
        m = col.map(method="umap")  # too few for UMAP: PCA, said so
        assert (m.method, len(m), m.x[0], m.y[0]) == ("pca", 1, 0.0, 0.0)
        with pytest.raises(lookalike.LookalikeError, match=r"no map method 'tnse' \(did you mean "
                                                            r"'tsne'\?\); use one of: umap, tsne"):
            col.map(method="tnse")
    three = tmp_path / "three.db"
    write_collection(three, groups=3, per=1)
    with lookalike.Collection.open(three) as col:
        m = col.map(method="tsne")
        assert m.method == "pca" and len(m) == 3 and np.isfinite(_points(m)).all()
    empty = tmp_path / "empty.db"
    Store(empty).close()
    with lookalike.Collection.open(empty) as col, pytest.raises(lookalike.LookalikeError,
                                                                match="no indexed images"):
        col.map()


def test_fit_and_place_on_plain_vectors():
    vectors, labels = _vectors(3, 20, seed=1)
    fitted = layout.fit(vectors[::2], "pca")
    np.testing.assert_allclose(layout.place(fitted, vectors[::2]), fitted.coords, atol=1e-5)
    placed = layout.place(fitted, vectors[1::2])
    assert knn_accuracy(np.vstack([fitted.coords, placed]),
                        np.concatenate([labels[::2], labels[1::2]])) >= 0.95


# -- exports ----------------------------------------------------------------------------------

def test_export_has_x_and_y_once_a_map_exists(db, tmp_path):
    with lookalike.Collection.open(db) as col:
        col.export(tmp_path / "before.csv", vectors=False)
        m = col.map(method="pca")
        for ext in ("csv", "json", "parquet", "tab"):
            col.export(tmp_path / f"all.{ext}")
    assert "x" not in pd.read_csv(tmp_path / "before.csv").columns
    by_id = dict(zip(m.ids.tolist(), zip(m.x.tolist(), m.y.tolist())))
    for frame in (pd.read_csv(tmp_path / "all.csv"), pd.read_json(tmp_path / "all.json"),
                  pd.read_parquet(tmp_path / "all.parquet")):
        assert list(frame.columns[:9]) == ["id", "path", "name", "category", "width", "height",
                                           "size", "x", "y"]
        for row in frame.itertuples():
            assert (row.x, row.y) == pytest.approx(by_id[row.id], abs=1e-6)
    header = (tmp_path / "all.tab").read_text().splitlines()[:3]
    names, types, flags = (line.split("\t") for line in header)
    x = names.index('"x"')
    assert (names[x + 1], types[x], types[x + 1], flags[x], flags[x + 1]) == (
        '"y"', '"continuous"', '"continuous"', '"meta"', '"meta"')


def test_export_places_images_added_since_the_map(db, tmp_path):
    with lookalike.Collection.open(db) as col:
        col.map(method="pca")
    write_collection(db, groups=4, per=1, seed=8, prefix="late")
    with lookalike.Collection.open(db) as col:
        col.export(tmp_path / "all.csv", vectors=False)
    frame = pd.read_csv(tmp_path / "all.csv")
    assert len(frame) == 52 and frame[["x", "y"]].notna().all().all()


# -- the command line ---------------------------------------------------------------------------

def test_cli_map_summary_table_and_picture(db, tmp_path, capsys):
    assert main(["map", "--db", str(db), "--method", "pca", "-o", str(tmp_path / "m.csv")]) == 0
    out = capsys.readouterr().out
    assert "48 images laid out by pca" in out and "fitted" in out
    frame = pd.read_csv(tmp_path / "m.csv")
    assert list(frame.columns) == ["id", "path", "category", "x", "y"] and len(frame) == 48
    assert main(["map", "--db", str(db), "--method", "pca", "--image",
                 str(tmp_path / "m.png")]) == 0
    assert "the map kept beside the database" in capsys.readouterr().out
    from PIL import Image

    with Image.open(tmp_path / "m.png") as picture:
        assert picture.format == "PNG" and picture.width >= 600
        colours = {c for _, c in picture.convert("RGB").getcolors(1 << 20)}
    assert len(colours) >= 6  # white, text and a colour per category at least
    assert main(["map", "--db", str(db), "--method", "pca", "--format", "json", "-o", "-"]) == 0
    printed = capsys.readouterr()
    records = json.loads(printed.out)
    assert printed.err.startswith("48 images laid out by pca")
    assert len(records) == 48 and set(records[0]) == {"id", "path", "category", "x", "y"}


def test_cli_map_errors(db, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse names the choices
        main(["map", "--db", str(db), "--method", "tnse"])
    assert exit_.value.code == 2
    assert "invalid choice: 'tnse'" in capsys.readouterr().err
    assert main(["map", "--db", str(tmp_path / "none.db")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lookalike: error: ") and err.count("\n") == 1
    assert main(["map", "--db", str(db), "--model", "squeezenet"]) == 1
    assert "index with --model squeezenet first" in capsys.readouterr().err


# -- the web viewer's JSON ----------------------------------------------------------------------

def test_api_map_json(db):
    from test_web_api import serve

    live = serve(db)
    try:
        answer = live.client.get("/api/map", params={"method": "pca"})
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) >= {"ids", "x", "y", "method", "fitted_on", "categories", "category",
                             "model"}
        assert len(body["ids"]) == len(body["x"]) == len(body["y"]) == len(body["category"]) == 48
        assert body["categories"] == ["group0", "group1", "group2", "group3"]
        assert body["category"][:13] == [0] * 12 + [1] and body["method"] == "pca"
        with lookalike.Collection.open(db) as col:
            m = col.map(method="pca")
        assert body["ids"] == m.ids.tolist()
        assert body["x"] == pytest.approx(m.x.tolist(), abs=1e-3)
        again = live.client.get("/api/map", params={"method": "pca"}).json()
        assert (again["action"], body["action"]) == ("cached", "fitted")
        assert {**again, "action": "fitted"} == body
        bad = live.client.get("/api/map", params={"method": "tnse"})
        assert bad.status_code == 400 and "did you mean 'tsne'" in bad.json()["error"]
    finally:
        live.stop()


def test_start_up_does_not_import_the_layout_libraries():
    """numba's import takes seconds: `lookalike --help`, `similar` and `serve` must not pay it."""
    import subprocess
    import sys

    code = ("import sys, lookalike.cli, lookalike.web.app\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'umap', 'numba', 'openTSNE', 'pynndescent', 'sklearn'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
