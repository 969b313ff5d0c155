"""OME-Zarr high-content screening plates (OME-NGFF `plate` and `well` metadata): a plate
folder is listed as its fields, each an image with the plate, well, field, channel and
acquisition columns an OME-TIFF plate gives, and is searched and normalised like one."""

import json
import os

import numpy as np
import pytest
import zarr

import lookalike
from lookalike.ingest import decode as images, omezarr
from lookalike.ingest.folders import ImageFile, Unreadable, scan
from lookalike.ingest.reading import ReadingOptions
from lookalike.synthetic_plates import write_plates
from test_omezarr import C, X, Y, cz_values, write_ome_zarr

MODEL = "squeezenet"  # the fastest model


def write_v3_plate(folder):
    """A plate as zarr v3 / OME-NGFF 0.5 writes it (metadata under `ome`), 1 well x 2 fields,
    with a field whose picture tells it apart, and a second well whose folder is missing."""
    plate = zarr.open_group(str(folder), mode="w", zarr_format=3)
    plate.attrs["ome"] = {"version": "0.5", "plate": {
        "name": "screen 7", "rows": [{"name": "C"}], "columns": [{"name": "05"}, {"name": "6"}],
        "wells": [{"path": "C/05", "rowIndex": 0, "columnIndex": 0},
                  {"path": "C/6", "rowIndex": 0, "columnIndex": 1}],
        "acquisitions": [{"id": 3}]}}
    well = zarr.open_group(str(folder / "C" / "05"), mode="w", zarr_format=3)
    well.attrs["ome"] = {"version": "0.5", "well": {"images": [{"path": "0", "acquisition": 3},
                                                               {"path": "1"}]}}
    write_ome_zarr(folder / "C" / "05" / "0", cz_values(), 3)
    write_ome_zarr(folder / "C" / "05" / "1", cz_values(lit=2), 3)
    return folder


def test_a_plate_is_listed_as_its_fields_with_their_plate_columns(tmp_path):
    plates = write_plates(tmp_path / "p", plates=1, conditions=2, wells_per_condition=1,
                          fields=2, size=32, ome_zarr=True)      # 2 wells x 2 fields, 3 channels
    found = list(scan(tmp_path / "p"))
    assert all(isinstance(f, ImageFile) for f in found)
    assert [f.path for f in found] == [str(i.path) for i in plates.images]
    assert [os.path.relpath(f.path, tmp_path / "p") for f in found] == [
        "P1.ome.zarr/A/1/0", "P1.ome.zarr/A/1/1", "P1.ome.zarr/B/1/0", "P1.ome.zarr/B/1/1"]
    assert [f.name for f in found] == ["P1 A01 field 1", "P1 A01 field 2", "P1 B01 field 1",
                                      "P1 B01 field 2"]
    assert json.loads(found[3].extras) == {
        "plate": "P1", "well": "B01", "well_row": "B", "well_column": 1, "field": 2,
        "channels": "DNA,Actin,Mito", "acquisition": "P1 run 1",
        "acquired": "2026-03-09T09:00:00"}
    files = [p for p in plates.images[0].path.rglob("*") if p.is_file()]
    assert found[0].size == sum(p.stat().st_size for p in files)   # the field's files only
    assert [f.path for f in scan(tmp_path / "p" / "P1.ome.zarr")] == [f.path for f in found]


def test_a_zarr_v3_plate_names_its_wells_by_row_and_column_and_a_missing_well_is_skipped(
        tmp_path):
    folder = write_v3_plate(tmp_path / "s7.zarr")
    found = list(scan(folder))
    fields = [f for f in found if isinstance(f, ImageFile)]
    assert [json.loads(f.extras) for f in fields] == [
        {"plate": "screen 7", "well": "C05", "well_row": "C", "well_column": 5, "field": 1,
         "acquisition": "3"},
        {"plate": "screen 7", "well": "C05", "well_row": "C", "well_column": 5, "field": 2}]
    assert [(f.path, f.reason) for f in found if isinstance(f, Unreadable)] == [
        (str(folder / "C" / "6"), "a broken OME-Zarr plate: well C06 has no well metadata "
                                  "listing its fields")]
    second = omezarr.read_folder(os.fsencode(fields[1].path))      # a field reads as an image
    planes = omezarr.zarr_planes(second, ReadingOptions(z="max", channels=(2,)), None, 10**8)
    np.testing.assert_array_equal(planes.values[0], cz_values(lit=2)[2].max(axis=0))
    assert images.read_size(second) == (X, Y) and C == 4


def test_a_plate_or_a_well_given_as_one_image_says_what_to_give(tmp_path):
    folder = write_v3_plate(tmp_path / "s7.zarr")
    with pytest.raises(images.ImageSkipped, match=r"an OME-Zarr plate .* give one field "
                                                  r"\(PLATE.zarr/A/1/0\)"):
        images.decode(omezarr.read_folder(os.fsencode(folder)))
    with pytest.raises(images.ImageSkipped, match="an OME-Zarr well of a plate, not one image: "
                                                  "give one of its fields"):
        images.decode(omezarr.read_folder(os.fsencode(folder / "C" / "05")))


def test_a_zarr_plate_is_searched_and_normalised_like_the_same_ome_tiff_plate(tmp_path):
    shape = dict(plates=2, conditions=2, wells_per_condition=1, fields=2, size=48, seed=3)
    tiffs = write_plates(tmp_path / "tiff", **shape)
    zarrs = write_plates(tmp_path / "zarr", ome_zarr=True, **shape)   # the same pixels
    with lookalike.Collection.index([tiffs.folder], db=tmp_path / "t.db", model=MODEL) as t, \
            lookalike.Collection.index([zarrs.folder], db=tmp_path / "z.db", model=MODEL) as z:
        assert z.last_report.embedded == 8 and not z.skipped()

        def where(result):
            return [(r["plate"], r["well"], r["field"]) for r in result.to_records()]

        for options in ({}, {"normalise": "plate", "controls": "A01"},
                        {"normalise": "plate", "controls": "well_row=A"}):
            by_tiff = t.nearest(tiffs.images[6].path, k=7, **options)
            by_zarr = z.nearest(zarrs.images[6].path, k=7, **options)
            assert where(by_zarr) == where(by_tiff), options
            np.testing.assert_allclose(by_zarr.distances, by_tiff.distances, atol=1e-5)
        row = z.nearest(zarrs.images[0].path, k=1).to_records()[0]
        assert row["acquisition"] == "P1 run 1" and row["channels"] == "DNA,Actin,Mito"
        z.add([zarrs.folder], model=MODEL)
        assert z.last_report.unchanged == 8 and z.last_report.embedded == 0
