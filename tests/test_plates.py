"""Screening plates: the synthetic plate generator, plate/well/field columns from OME-XML and
from file-name patterns, and per-plate normalisation of the vectors in a search."""

import json

import numpy as np
import pytest
import tifffile

import lookalike
from lookalike.ingest.plate_columns import FileNamePattern, PatternError, ome_columns
from lookalike.synthetic_plates import CONDITIONS, write_plates
from test_cli import run

# -- the generator ----------------------------------------------------------------------------


def test_plates_are_16_bit_multi_channel_ome_tiffs_that_name_their_well(tmp_path):
    plates = write_plates(tmp_path / "p", plates=2, conditions=3, wells_per_condition=2,
                          fields=2, channels=4, size=64, seed=1)
    assert len(plates.images) == 2 * 3 * 2 * 2
    assert plates.control_wells == ("A01", "A02")
    first = plates.images[0]
    assert first.path.name == "P1_A01_s1.ome.tif" and first.control
    with tifffile.TiffFile(first.path) as tif:
        assert tif.is_ome
        pixels = tif.series[0].asarray()
    assert pixels.shape == (4, 64, 64) and pixels.dtype == np.uint16
    assert pixels.max() > 1000  # 16-bit values, beyond what 8 bits hold
    assert {i.condition for i in plates.images} == {c.name for c in CONDITIONS[:3]}
    assert {i.well for i in plates.images if i.condition == "enlarged"} == {"B01", "B02"}


def test_the_same_seed_writes_the_same_plates(tmp_path):
    a = write_plates(tmp_path / "a", plates=1, conditions=2, fields=1, size=48, seed=7)
    b = write_plates(tmp_path / "b", plates=1, conditions=2, fields=1, size=48, seed=7)
    c = write_plates(tmp_path / "c", plates=1, conditions=2, fields=1, size=48, seed=8)
    pix = [tifffile.imread(s.images[-1].path) for s in (a, b, c)]
    assert np.array_equal(pix[0], pix[1]) and not np.array_equal(pix[0], pix[2])


def test_plates_differ_by_their_acquisition(tmp_path):
    """The plate effect: the same condition's images are brighter on one plate than another."""
    s = write_plates(tmp_path / "p", plates=3, conditions=1, fields=2, size=48, seed=0)
    means = [np.mean([tifffile.imread(i.path).mean() for i in s.images if i.plate == p])
             for p in ("P1", "P2", "P3")]
    assert max(means) > 1.2 * min(means)


# -- columns from OME-XML and from file names ----------------------------------------------------

def test_ome_xml_gives_plate_well_field_channels_and_acquisition(tmp_path):
    s = write_plates(tmp_path / "p", plates=2, conditions=2, wells_per_condition=2, fields=3,
                     size=32)
    image = next(i for i in s.images if (i.plate, i.well, i.field) == ("P2", "B02", 3))
    columns = ome_columns(image.path.read_bytes())
    assert columns == {"plate": "P2", "well": "B02", "well_row": "B", "well_column": 2,
                       "field": 3, "acquisition": "P2 run 1", "channels": "DNA,Actin,Mito",
                       "acquired": columns["acquired"]}
    assert columns["acquired"].startswith("2026-")
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((8, 8), np.uint16))
    assert ome_columns(plain.read_bytes()) == {} and ome_columns(b"\x89PNG....") == {}


def test_a_file_name_pattern_gives_columns():
    p = FileNamePattern("{plate}_{well}_s{field}_w{channel}.tif")
    assert p.columns("/data/run3/Plate7_c5_s12_w2.tif") == {
        "plate": "Plate7", "well": "C05", "well_row": "C", "well_column": 5, "field": 12,
        "channel": 2}
    assert p.columns("/data/Plate7_C05_s1_w2.png") is None          # another ending
    assert p.columns("/data/Plate7_C05_s1_w2.TIF")["channel"] == 2  # any case
    loose = FileNamePattern("{plate}_{well}_s{field}*.tif")          # * skips a part
    assert loose.columns("/x/P1_A01_s3_w1_thumb.tif")["field"] == 3
    nested = FileNamePattern("{plate}/{well}/f{field}.tif")           # folders too
    assert nested.columns("/screen/P9/H12/f2.tif") == {
        "plate": "P9", "well": "H12", "well_row": "H", "well_column": 12, "field": 2}
    assert nested.columns("/screen/f2.tif") is None
    with pytest.raises(PatternError, match="names no column"):
        FileNamePattern("plate.tif")


def test_indexed_plates_carry_their_columns_into_results_and_exports(tmp_path):
    s = write_plates(tmp_path / "p", plates=2, conditions=2, fields=1, channels=2, size=48,
                     per_channel_files=True)
    db = tmp_path / "c.db"
    with lookalike.Collection.index([s.folder], db=db, model="squeezenet",
                                    pattern=s.pattern) as col:
        assert col.last_report.pattern_matched == len(s.images) == 16
        assert {"plate", "well", "well_row", "well_column", "field", "channel"} <= set(
            col.extra_columns())
        res = col.nearest(s.images[0].path, k=3)
        assert {"plate", "well", "channel"} <= set(res.to_records()[0])
        again = col.add([s.folder], model="squeezenet", pattern=s.pattern)
        assert again.unchanged == 16 and again.metadata_updated == 0  # nothing rewritten
        col.export(tmp_path / "all.csv", vectors=False)
    text = (tmp_path / "all.csv").read_text()
    header = text.splitlines()[0].split(",")
    assert {"plate", "well", "field", "channel"} <= set(header)
    assert "P1_A01_s1_w2.tif" in text and ',"P2","B01",1,2,' in text


def test_ome_columns_stay_when_a_pattern_is_added_later(tmp_path):
    s = write_plates(tmp_path / "p", plates=1, conditions=1, wells_per_condition=1, fields=2,
                     size=48)
    with lookalike.Collection.index([s.folder], db=tmp_path / "c.db", model="squeezenet") as col:
        col.add([s.folder], model="squeezenet", pattern="{name}_s{site}.ome.tif")
        rows = col.store.rows(col.vectors()[0].tolist())
        extras = [json.loads(r["extras"]) for r in rows]
    assert [(e["plate"], e["well"], e["field"], e["site"], e["name"]) for e in extras] == [
        ("P1", "A01", 1, 1, "P1_A01"), ("P1", "A01", 2, 2, "P1_A01")]


@pytest.mark.slow  # a process of its own: about 2.5 s
def test_a_pattern_that_matches_no_file_is_one_line(tmp_path):
    s = write_plates(tmp_path / "p", plates=1, conditions=1, fields=1, size=32)
    db = tmp_path / "c.db"
    proc = run("index", s.folder, "--db", db, "--pattern", "{plate}-{well}.png", check=False)
    assert proc.returncode == 1 and not db.exists()
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "matches none of the 2 images found (for example 'P1_A01_s1.ome.tif')" in proc.stderr


# -- per-plate normalisation -----------------------------------------------------------------------

def _plates_of_vectors(tmp_path, offset=5.0):
    """Two plates x two conditions x 6 images: each plate shifts all its vectors by a large
    offset of its own, which hides the (smaller) difference between the conditions."""
    rng = np.random.default_rng(0)
    dim = 16
    condition = {"ctrl": np.eye(dim)[0], "drug": np.eye(dim)[1]}
    paths, vectors, extras = [], [], []
    for plate, shift in (("P1", offset * np.eye(dim)[2]), ("P2", offset * np.eye(dim)[3])):
        for name, well in (("ctrl", "A01"), ("drug", "B01")):
            for n in range(6):
                paths.append(f"/plates/{plate}_{well}_{n}.tif")
                vectors.append(shift + condition[name] + rng.normal(0, 0.05, dim))
                extras.append({"plate": plate, "well": well, "condition": name})
    db = tmp_path / "v.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors(paths, np.array(vectors, np.float32), model="cells", extras=extras)
    return db


def test_normalising_per_plate_finds_the_same_condition_on_the_other_plate(tmp_path):
    db = _plates_of_vectors(tmp_path)
    ref = "/plates/P1_B01_0.tif"
    with lookalike.Collection.open(db) as col:
        plain = col.nearest(ref, k=10)
        assert all("/P1_" in p for p in plain.paths)  # the plate dominates
        for controls in ("A01", ["A01"], "condition=ctrl", None):
            res = col.nearest(ref, k=6, normalise="plate", controls=controls)
            assert all("_B01_" in p for p in res.paths), (controls, res.paths)
            assert sum("/P2_" in p for p in res.paths) >= 3  # across plates
        by_id = col.nearest_to_ids([plain.ids[0]], k=5, normalise="plate", controls="A01")
        assert all("_B01_" in p for p in by_id.paths)
        unlike = col.nearest(ref, k=5, normalise="plate", unlike=["/plates/P2_A01_0.tif"])
        assert all("_B01_" in p for p in unlike.paths)


def test_normalisation_leaves_the_stored_vectors_as_they_were(tmp_path):
    db = _plates_of_vectors(tmp_path)
    with lookalike.Collection.open(db) as col:
        before = np.array(col.vectors()[1])
        col.nearest("/plates/P1_B01_0.tif", k=3, normalise="plate")
        assert np.array_equal(np.array(col.vectors()[1]), before)


@pytest.mark.parametrize("options, message", [
    ({"normalise": "batch"}, "no image has a 'batch' column (the collection's columns: "
                             "condition, plate, well)"),
    ({"normalise": "plate", "controls": "Z99"}, "--controls Z99: no image is in these wells"),
    ({"normalise": "plate", "controls": "condition=dmso"},
     "no image has that value (its values: ctrl, drug)"),
    ({"controls": "A01"}, "give --normalise plate with it"),
    ({"normalise": "plate", "approximate": True}, "leave out --approximate"),
])
def test_bad_normalisation_is_one_clear_line(tmp_path, options, message):
    db = _plates_of_vectors(tmp_path)
    with lookalike.Collection.open(db) as col, \
            pytest.raises(lookalike.LookalikeError, match="^[^\n]*$") as err:
        col.nearest("/plates/P1_B01_0.tif", **options)
    assert message in str(err.value)


def test_a_plate_without_the_control_wells_is_named(tmp_path):
    db = _plates_of_vectors(tmp_path)
    with lookalike.Collection.open(db) as col:
        col.add_vectors(["/plates/P3_C01_0.tif"], np.ones((1, 16), np.float32), model="cells",
                        extras=[{"plate": "P3", "well": "C01"}])
        with pytest.raises(lookalike.LookalikeError, match="plate P3 has no image in the "
                                                           "control wells A01; its wells: C01"):
            col.nearest("/plates/P1_B01_0.tif", normalise="plate", controls="A01")


def test_a_reference_outside_the_collection_cannot_be_normalised(tmp_path):
    db = _plates_of_vectors(tmp_path)
    with lookalike.Collection.open(db) as col, \
            pytest.raises(lookalike.api.BadReferenceError, match="vector 0: not an image of the "
                                                                 "collection; with normalised "
                                                                 "per plate"):
        col.nearest(np.ones(16, np.float32), normalise="plate")


@pytest.mark.slow  # two processes of their own: about 4 s
def test_similar_normalises_from_the_command_line(tmp_path):
    db = _plates_of_vectors(tmp_path)
    out = run("similar", "/plates/P1_B01_0.tif", "--db", db, "--normalise", "plate",
              "--controls", "A01", "-k", "6", "--format", "json").stdout
    assert {r["well"] for r in json.loads(out)} == {"B01"}
    bad = run("similar", "/plates/P1_B01_0.tif", "--db", db, "--normalise", "plate",
              "--controls", "Q7", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("lookalike: error: --controls Q07")
    assert bad.stderr.count("\n") == 1
