"""OME-Zarr folders (zarr v2 and v3 stores, as `zarr` 3 writes them) as images: found by a
folder scan without being walked, read with the collection's options and pyramid levels,
re-indexed only when their files change, and skipped with a reason when broken."""

import io
import os
import shutil

import numpy as np
import pytest
import zarr
from PIL import Image

import lookalike
from lookalike.formats.thumbnails import make_thumbnail, read_image
from lookalike.ingest import decode as images, omezarr
from lookalike.ingest.folders import scan
from lookalike.ingest.reading import ReadingOptions

MODEL = "squeezenet"  # the fastest model
C, Z, Y, X = 4, 3, 48, 64


def cz_values(lit=None):
    """(C, Z, Y, X) uint16: channel c lights the c-th quarter of the columns at a brightness
    of 1000 + 100 * z (or only channel `lit`, in a square in the middle)."""
    values = np.full((C, Z, Y, X), 10, np.uint16)
    for c in range(C):
        for z in range(Z):
            if lit is None:
                values[c, z, :, c * 16:(c + 1) * 16] = 1000 + 100 * z
            elif c == lit:
                values[c, z, 12:36, 16:48] = 3000 + 100 * z
    return values


def write_ome_zarr(folder, values, zarr_format=3, chunks=(1, 1, 16, 16)):
    """An OME-Zarr image with two levels (full, half), axes c/z/y/x, as OME-NGFF 0.4 (v2
    store) or 0.5 (v3 store, metadata under `ome`) says."""
    group = zarr.open_group(str(folder), mode="w", zarr_format=zarr_format)
    group.create_array("0", data=values, chunks=chunks)
    group.create_array("1", data=values[..., ::2, ::2], chunks=chunks)
    axes = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space"} for n in "zyx"]
    scale = [{"type": "scale", "scale": [1, 1, s, s]} for s in (1, 2)]
    multiscales = [{"version": "0.4" if zarr_format == 2 else "0.5", "axes": axes,
                    "datasets": [{"path": p, "coordinateTransformations": [t]}
                                 for p, t in zip("01", scale)]}]
    if zarr_format == 2:
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}
    return folder


def lit_columns(picture, colour):
    row = picture[picture.shape[0] // 2, :, colour].astype(int)
    quarter = picture.shape[1] // 4
    return [q for q in range(4) if row[q * quarter + quarter // 2] > 128]


@pytest.fixture(scope="module", params=[2, 3], ids=["zarr-v2", "zarr-v3"])
def image(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"v{request.param}") / "cells.ome.zarr"
    write_ome_zarr(folder, cz_values(), request.param)
    return omezarr.read_folder(os.fsencode(folder))


def test_an_ome_zarr_reads_as_a_stack_of_channels_and_planes(image):
    out = images.decode(image)
    assert (out.width, out.height) == (X, Y) and out.pixels.shape == (Y, X, 3)
    assert [lit_columns(out.pixels, c) for c in range(3)] == [[0], [1], [2]]
    assert images.read_size(image) == (X, Y)
    chosen = images.decode(image, reading=ReadingOptions(channels=(3,), colours=("magenta",)))
    assert [lit_columns(chosen.pixels, c) for c in range(3)] == [[3], [], [3]]


def test_z_planes_projections_and_per_channel(image):
    values = cz_values()
    planes = omezarr.zarr_planes(image, ReadingOptions(z=2, channels=(1,)), None, 10**8)
    np.testing.assert_array_equal(planes.values[0], values[1, 2])
    highest = omezarr.zarr_planes(image, ReadingOptions(z="max"), None, 10**8)
    np.testing.assert_array_equal(highest.values[2], values[2].max(axis=0))
    mean = omezarr.zarr_planes(image, ReadingOptions(z="mean"), None, 10**8)
    np.testing.assert_allclose(mean.values[0], values[0].mean(axis=0))
    each = images.decode(image, 32, reading=ReadingOptions(channels=(0, 1, 2, 3),
                                                           per_channel=True))
    assert each.channels.shape == (4, 32, 32, 3)
    assert [[q for q in range(4) if each.channels[c, 16, q * 8 + 4, 0] > 128]
            for c in range(4)] == [[0], [1], [2], [3]]


def test_the_window_and_the_level_are_chosen_as_for_a_tiff(image, tmp_path):
    values = cz_values()
    values[0, 0, 0, 0] = 65535                                 # one hot pixel
    hot = omezarr.read_folder(os.fsencode(write_ome_zarr(tmp_path / "hot.zarr", values)))
    whole = images.decode(hot, reading=ReadingOptions(window=(0, 100))).pixels
    default = images.decode(hot).pixels
    assert whole[Y // 2, 8, 0] < 5 and default[Y // 2, 8, 0] == 255
    reduced = images.decode(image, max_pixels=X * Y // 4)      # level 1 fits the limit
    assert reduced.pixels.shape == (Y // 2, X // 2, 3) and (reduced.width, reduced.height) == (X, Y)
    assert images.decode(image, 8).pixels.shape == (8, 8, 3)


@pytest.mark.parametrize("reading, reason", [
    (ReadingOptions(channels=(0, 7)), r"no channel 7 \(--channels\); the image has 4 channels"),
    (ReadingOptions(z=3), r"no z plane 3 \(--z\); the image has 3 z planes \(0-2\)"),
    (ReadingOptions(t=1), r"no time point 1 \(--t\); the image has 1 time point \(0\)"),
])
def test_what_the_image_does_not_have_is_one_plain_reason(image, reading, reason):
    with pytest.raises(images.ImageSkipped, match=reason):
        images.decode(image, 16, reading=reading)


def test_its_identity_is_its_files_not_its_path(tmp_path):
    first = write_ome_zarr(tmp_path / "a.ome.zarr", cz_values())
    before = omezarr.read_folder(os.fsencode(first))
    moved = tmp_path / "b.zarr"
    os.rename(first, moved)
    after = omezarr.read_folder(os.fsencode(moved))
    assert bytes(after) == bytes(before) and after.folder == os.fsencode(moved)
    zarr.open_array(str(moved / "0"), mode="r+")[0, 0, 0, 0] = 7   # one chunk rewritten
    assert bytes(omezarr.read_folder(os.fsencode(moved))) != bytes(before)
    assert not isinstance(b"lookalike ome-zarr identity 1\n", omezarr.ZarrFolder)


def test_a_folder_scan_lists_an_ome_zarr_as_one_image_and_does_not_walk_it(tmp_path):
    write_ome_zarr(tmp_path / "plate" / "well A1.ome.zarr", cz_values(), 2)
    write_ome_zarr(tmp_path / "plate" / "b.zarr", cz_values(), 3)
    Image.new("RGB", (8, 8)).save(tmp_path / "plate" / "photo.png")
    found = list(scan(tmp_path))
    assert sorted(f.name for f in found) == ["b", "photo", "well A1"]
    zarrs = [f for f in found if f.name != "photo"]
    assert all(f.category == "plate" for f in found)
    folder = tmp_path / "plate" / "b.zarr"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert [f.size for f in zarrs if f.name == "b"] == [sum(p.stat().st_size for p in files)]
    alone = list(scan(folder))                          # a .zarr folder given itself
    assert [(f.name, f.category) for f in alone] == [("b", None)]


def test_its_thumbnail_is_rendered_with_the_reading_options(image):
    reading = ReadingOptions(channels=(3,), colours=("red",))
    picture = np.asarray(Image.open(io.BytesIO(make_thumbnail(image, 64, reading))))
    assert picture.shape == (Y, X, 3)
    assert [lit_columns(picture, c) for c in range(3)] == [[3], [], []]
    again = read_image(os.fsdecode(image.folder))
    assert isinstance(again, omezarr.ZarrFolder) and bytes(again) == bytes(image)


# -- in a collection --------------------------------------------------------------------------

def break_metadata(folder):
    for name in ("zarr.json", ".zattrs"):
        if (folder / name).exists():
            (folder / name).write_text('{"zarr_format": 3, "node_type": "group"}'
                                       if name == "zarr.json" else "{}")


def break_chunks(folder):
    for level in ("0", "1"):
        for path in (folder / level).rglob("*"):
            if path.is_file() and path.name not in omezarr.METADATA_FILES:
                path.unlink()


def damage_a_chunk(folder):
    chunk = next(p for p in sorted((folder / "0").rglob("*"))
                 if p.is_file() and p.name not in omezarr.METADATA_FILES)
    chunk.write_bytes(chunk.read_bytes()[:5])


@pytest.mark.slow
def test_a_collection_of_ome_zarr_is_indexed_reindexed_and_searched(tmp_path):
    folder = tmp_path / "images"
    for lit in range(2):
        for field in range(2):
            write_ome_zarr(folder / f"c{lit}_f{field}.ome.zarr", cz_values(lit) + 40 * field,
                           2 + field)
    db = tmp_path / "c.db"
    col = lookalike.Collection.index([folder], db=db, model=MODEL)
    assert col.last_report.embedded == 4 and not col.skipped()
    assert col.nearest([folder / "c1_f0.ome.zarr"], k=1).paths[0].endswith("c1_f1.ome.zarr")
    col.add([folder], model=MODEL)
    assert col.last_report.unchanged == 4 and col.last_report.embedded == 0

    write_ome_zarr(folder / "c0_f1.ome.zarr", cz_values(1), 3)   # rewritten: now like c1
    col.add([folder], model=MODEL)
    assert col.last_report.embedded == 1 and col.last_report.unchanged == 3
    assert col.nearest([folder / "c0_f1.ome.zarr"], k=1).paths[0].startswith(str(folder / "c1"))

    moved = tmp_path / "elsewhere" / "c1_f0.ome.zarr"           # moved: vectors reused
    moved.parent.mkdir()
    shutil.copytree(folder / "c1_f0.ome.zarr", moved, copy_function=shutil.copy2)
    col.add([moved.parent], model=MODEL)
    assert col.last_report.from_cache == 1 and col.last_report.embedded == 0
    col.close()


@pytest.mark.slow
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_broken_ome_zarr_is_skipped_with_its_reason(tmp_path, zarr_format):
    folder = tmp_path / "images"
    for name, harm in [("no-metadata", break_metadata), ("no-chunks", break_chunks),
                       ("damaged", damage_a_chunk), ("fine", None)]:
        write_ome_zarr(folder / f"{name}.ome.zarr", cz_values(), zarr_format)
        if harm is not None:
            harm(folder / f"{name}.ome.zarr")
    (folder / "not-an-image.zarr").mkdir()
    col = lookalike.Collection.index([folder], db=tmp_path / "c.db", model=MODEL)
    reasons = {os.path.basename(row["path"]): row["reason"] for row in col.skipped()}
    assert reasons == {
        "no-metadata.ome.zarr": "not an OME-Zarr image (no multiscales metadata in .zattrs or "
                                "zarr.json)",
        "no-chunks.ome.zarr": "a broken OME-Zarr: level 0 has none of its chunk files (an "
                              "unfinished copy, or an empty image)",
        "damaged.ome.zarr": reasons["damaged.ome.zarr"],
        "not-an-image.zarr": "not an OME-Zarr image (no zarr group metadata: .zgroup or "
                             "zarr.json)",
    }
    assert reasons["damaged.ome.zarr"].startswith("a broken OME-Zarr: a chunk cannot be read")
    assert col.last_report.embedded == 1


def test_bioformats2raw_layout_reads_its_first_image_and_a_plate_is_refused(tmp_path):
    top = zarr.open_group(str(tmp_path / "converted.ome.zarr"), mode="w", zarr_format=2)
    top.attrs["bioformats2raw.layout"] = 3
    write_ome_zarr(tmp_path / "converted.ome.zarr" / "0", cz_values(), 2)
    converted = omezarr.read_folder(os.fsencode(tmp_path / "converted.ome.zarr"))
    assert images.read_size(converted) == (X, Y)
    plate = zarr.open_group(str(tmp_path / "plate.ome.zarr"), mode="w", zarr_format=2)
    plate.attrs["plate"] = {"wells": [{"path": "A/1"}]}
    with pytest.raises(images.ImageSkipped, match=r"an OME-Zarr plate \(high-content screening\), "
                                                  "not one image: index it to list its fields"):
        images.decode(omezarr.read_folder(os.fsencode(tmp_path / "plate.ome.zarr")))
