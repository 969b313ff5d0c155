"""The collection as a whole (`Collection.analyze`, `lookalike analyze`): clusters, outliers,
the diverse sample and the quality flags, on collections with a known structure."""

from __future__ import annotations

import io
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from sklearn.metrics import adjusted_rand_score

import lookalike
from lookalike.analysis import quality
from lookalike.analysis.clusters import find_clusters
from lookalike.analysis.outliers import outlier_scores
from lookalike.analysis.sample import farthest_first
from lookalike.analysis.space import reduce
from lookalike.catalogue.store import MIGRATIONS, SCHEMA_VERSION, ImageRow, Store
from lookalike.cli import main
from lookalike.errors import LookalikeError
from lookalike.ingest import decode
from lookalike.models import DEFAULT_MODEL

DIM = 256


def groups_of_vectors(groups: int = 6, size: int = 40, outliers: int = 0, seed: int = 0):
    """(vectors, group of each; -1 for a planted outlier): tight groups around random
    non-negative directions, like pooled ReLU features, and lone vectors far from all."""
    rng = np.random.default_rng(seed)
    centres = rng.gamma(0.3, 1.0, (groups, DIM))
    labels = np.repeat(np.arange(groups), size)
    vectors = centres[labels] + rng.normal(0, 0.08, (len(labels), DIM))
    lone = rng.gamma(0.3, 1.0, (outliers, DIM))
    return (np.vstack([vectors, lone]).astype(np.float32),
            np.concatenate([labels, np.full(outliers, -1)]))


def collection_of(tmp_path, vectors: np.ndarray, name: str = "c.db") -> lookalike.Collection:
    """A collection whose images have these vectors (files that are not there: the vectors
    are what is analysed)."""
    db = tmp_path / name
    with Store(db) as store:
        rows = [ImageRow(f"/nowhere/{i:04d}.png".encode(), f"/nowhere/{i:04d}.png", "/nowhere",
                         f"{i:04d}", "", 100, 1, 64, 48, i.to_bytes(16, "big"))
                for i in range(len(vectors))]
        store.write(rows, [(r.content_hash, DEFAULT_MODEL, v) for r, v in zip(rows, vectors)])
        store.set_setting("last_model", DEFAULT_MODEL)
    return lookalike.Collection.open(db)


# -- the computations ---------------------------------------------------------------------------

def test_separated_groups_are_found_as_clusters():
    vectors, truth = groups_of_vectors()
    space = reduce(vectors)
    auto = find_clusters(space.clustering)
    assert auto.method == "hdbscan" and adjusted_rand_score(truth, auto.labels) > 0.95
    asked = find_clusters(space.clustering, 6)
    assert asked.method == "kmeans" and adjusted_rand_score(truth, asked.labels) > 0.95
    assert ((asked.typicality >= 0) & (asked.typicality <= 1)).all()
    assert np.bincount(asked.labels).tolist() == sorted(np.bincount(asked.labels), reverse=True)


def test_planted_outliers_get_the_highest_scores():
    vectors, truth = groups_of_vectors(outliers=4)
    scores = outlier_scores(reduce(vectors).distances)
    assert set(np.argsort(-scores)[:4]) == set(np.flatnonzero(truth == -1))


def test_the_diverse_sample_covers_every_group_before_repeating_one():
    vectors, truth = groups_of_vectors(groups=7, size=30)
    picked = farthest_first(reduce(vectors).distances, 7, start=0)
    assert sorted(truth[picked]) == list(range(7))
    again = farthest_first(reduce(vectors).distances, 12, start=0)
    assert again[:7].tolist() == picked.tolist() and len(set(again.tolist())) == 12


# -- quality flags ----------------------------------------------------------------------------

def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((320, 320))


def flags_of(*images: Image.Image, size: tuple[int, int] = (320, 320)) -> list[set[str]]:
    def pixels(im):
        out = io.BytesIO()
        im.convert("RGB").save(out, "PNG")
        return decode.decode(out.getvalue(), 224).pixels
    measures = np.array([quality.measure(pixels(im)) for im in images])
    found = quality.flags(measures, [size[0]] * len(images), [size[1]] * len(images))
    return [{name for name, v in found.items() if v[i]} for i in range(len(images))]


def test_blurred_dark_bright_flat_and_grey_images_get_their_flags():
    from skimage import data

    im = photo()
    flat = Image.new("RGB", (320, 320), (120, 140, 90))
    normal = [im, Image.fromarray(data.coffee()), Image.fromarray(data.chelsea()),
              Image.fromarray(data.rocket())]
    got = flags_of(im.filter(ImageFilter.GaussianBlur(8)),
                   ImageEnhance.Brightness(im).enhance(0.12),
                   Image.eval(im, lambda v: 190 + v // 4), flat, im.convert("L"), *normal)
    assert "blurry" in got[0] and "dark" in got[1] and "bright" in got[2]
    assert got[3] == {"low_information"} and got[4] == {"greyscale"}
    assert got[5:] == [set()] * len(normal)


def test_odd_size_and_aspect_are_judged_against_the_collection():
    measures = np.full((4, len(quality.MEASURES)), np.nan)  # pixels not measured: no flag
    found = quality.flags(measures, [640, 600, 4000, 1200], [480, 500, 3000, 200])
    assert found["odd_size"].tolist() == [False, False, True, False]
    assert found["odd_aspect"].tolist() == [False, False, False, True]
    assert not found["blurry"].any() and not found["dark"].any()


@pytest.mark.slow
def test_flags_are_measured_while_indexing(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    im = photo()
    im.save(folder / "sharp.png")
    im.filter(ImageFilter.GaussianBlur(8)).save(folder / "blurred.png")
    ImageEnhance.Brightness(im).enhance(0.12).save(folder / "dark.png")
    col = lookalike.Collection.index([folder], db=tmp_path / "p.db", model="squeezenet")
    assert col.store.unmeasured() == []  # measured on the way, not afterwards
    a = col.analyze()
    flagged = {a.row(int(i))["name"]: {k for k, v in a.flags.items() if v[n]}
               for n, i in enumerate(a.ids)}
    assert flagged == {"sharp": set(), "blurred": {"blurry"}, "dark": {"dark"}}


# -- the API: stored, reused, recomputed -------------------------------------------------------

def test_analyze_is_stored_reused_and_recomputed_after_a_change(tmp_path):
    vectors, truth = groups_of_vectors(groups=4, size=25, outliers=2)
    with collection_of(tmp_path, vectors) as col:
        first = col.analyze(sample=4)
        assert not first.reused and len(first) == len(vectors)
        assert adjusted_rand_score(truth[truth >= 0], first.cluster[truth >= 0]) > 0.95
        assert set(first.most_unusual(2)) == {int(i) for i in first.ids[truth == -1]}
        assert len(first.sample) == 4 and first.clusters[0].size >= 25
        frame = first.to_pandas()
        assert list(frame.columns[:8]) == ["id", "path", "name", "category", "cluster",
                                           "typicality", "outlier", "sample_rank"]
        assert set(quality.FLAGS) <= set(frame.columns) and len(frame) == len(vectors)

        again = col.analyze(sample=2)
        assert again.reused and again.sample == first.sample[:2]
        assert np.array_equal(again.cluster, first.cluster)
        assert not col.analyze(sample=6).reused            # a larger sample: computed
        assert col.sample(3) == first.sample[:3]
        assert not col.analyze(clusters=2).reused          # other clusters: computed
        assert col.analyze(clusters=2).reused

        col.store.remove([int(first.ids[0])])
        changed = col.analyze(clusters=2)
        assert not changed.reused and len(changed) == len(vectors) - 1


def test_bad_input_is_one_line(tmp_path):
    vectors, _ = groups_of_vectors(groups=2, size=10)
    with collection_of(tmp_path, vectors[:1], "one.db") as one, \
            pytest.raises(LookalikeError, match="one image"):
        one.analyze()
    with collection_of(tmp_path, vectors) as col:
        for clusters in (0, 21, "many"):
            with pytest.raises(LookalikeError, match="clusters"):
                col.analyze(clusters=clusters)
        with pytest.raises(LookalikeError, match="sample: 21 is out of range"):
            col.analyze(sample=21)


def test_a_schema_4_database_is_upgraded_and_analysed(tmp_path):
    path = tmp_path / "v4.db"
    con = sqlite3.connect(path)
    con.executescript("".join(MIGRATIONS[v] for v in (1, 2, 3, 4)))
    vectors, _ = groups_of_vectors(groups=2, size=6)
    for i, v in enumerate(vectors):
        h = i.to_bytes(16, "big")
        con.execute("INSERT INTO images(locator, path, name, width, height, content_hash,"
                    " indexed_at) VALUES (?, ?, ?, 64, 48, ?, 1)",
                    (f"/old/{i}.png".encode(), f"/old/{i}.png", str(i), h))
        con.execute("INSERT INTO embeddings VALUES (?, ?, ?)", (h, DEFAULT_MODEL,
                                                                v.astype("<f4").tobytes()))
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.close()
    with lookalike.Collection.open(path) as col:
        assert col.store.schema_version == SCHEMA_VERSION and len(col) == 12   # nothing lost
        assert len(col.store.unmeasured()) == 12                  # to measure when analysed
        a = col.analyze()
        assert len(a) == 12 and a.flag_counts["blurry"] == 0     # files gone: no flag


# -- the command line and the exports -------------------------------------------------------

def test_cli_prints_a_summary_and_writes_every_image(tmp_path, capsys):
    vectors, _ = groups_of_vectors(groups=3, size=12, outliers=1)
    collection_of(tmp_path, vectors).close()
    db = tmp_path / "c.db"
    assert main(["analyze", "--db", str(db), "--sample", "3", "-o", str(tmp_path / "a.csv")]) == 0
    out = capsys.readouterr().out
    assert "37 images" in out and "3 clusters (hdbscan)" in out
    assert "most unusual" in out and "/nowhere/0036.png" in out.split("most unusual")[1]
    assert "quality flags: blurry 0" in out and "diverse sample of 3" in out
    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) == 37 and table["cluster"].nunique() == 3
    assert sorted(table["sample_rank"][table["sample_rank"] >= 0]) == [0, 1, 2]

    assert main(["analyze", "--db", str(db), "--clusters", "99"]) == 1
    assert "clusters: 99 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["analyze", "--db", str(db), "--clusters", "some"])


def test_export_carries_the_analysis_and_the_tab_marks_it_for_orange(tmp_path, capsys):
    vectors, _ = groups_of_vectors(groups=3, size=12)
    with collection_of(tmp_path, vectors) as col:
        plain = col.export(tmp_path / "before.csv", vectors=False)
        assert plain.rows == 36
        assert "cluster" not in pd.read_csv(tmp_path / "before.csv").columns  # not yet computed
        sharp = (1000.0, 0.0, 0.9, 7.0, 50.0)  # the files are not there: measures given
        col.store.write_quality([(i.to_bytes(16, "big"), sharp) for i in range(36)])
        a = col.analyze()
        col.export(tmp_path / "e.csv", vectors=False)
        col.export(tmp_path / "e.parquet")
        col.export(tmp_path / "e.json", vectors=False)
        col.export(tmp_path / "e.tab", vectors=False)
    for frame in (pd.read_csv(tmp_path / "e.csv"), pd.read_parquet(tmp_path / "e.parquet"),
                  pd.DataFrame(json.loads((tmp_path / "e.json").read_text()))):
        assert frame["cluster"].tolist() == a.cluster.tolist()
        assert np.allclose(frame["outlier"], a.outlier)
        assert frame["odd_size"].dtype == bool and not frame["odd_size"].any()
    names, types, flags = [line.split("\t") for line in
                           (tmp_path / "e.tab").read_text().splitlines()[:3]]
    column = {n.strip('"'): (t.strip('"'), f.strip('"')) for n, t, f in zip(names, types, flags)}
    assert column["cluster"] == ("discrete", "meta")
    assert column["outlier"] == ("continuous", "meta") == column["typicality"]
    assert column["blurry"] == ("discrete", "meta")
