"""Explaining a match (analysis/explain.py, Collection.explain): a crop of a photo lights up the
region it came from, an image and its mirror have mirrored maps, and bad input is one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from lookalike import Collection
from lookalike.analysis.explain import CannotExplain, Explanation, heat_maps, normalised
from lookalike.api import BadReferenceError
from lookalike.errors import LookalikeError
from lookalike.models import DEFAULT_MODEL, load_onnx_model, register_model
from test_cli import run
from test_own_models import MEAN, SIZE, STD, write_model

# The cat's head in scikit-image's chelsea, as fractions (left, top, right, bottom).
HEAD = (0.35, 0.05, 0.80, 0.75)
# The astronaut's face and helmet-less head.
FACE = (0.30, 0.00, 0.70, 0.50)


def crop(image: np.ndarray, box) -> np.ndarray:
    h, w = image.shape[:2]
    return image[int(box[1] * h):int(box[3] * h), int(box[0] * w):int(box[2] * w)]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A collection of chelsea and astronaut; their crops and chelsea's mirror stay outside."""
    root = tmp_path_factory.mktemp("explain")
    (root / "photos").mkdir()
    files = {}
    for name, image in (("chelsea", data.chelsea()), ("astronaut", data.astronaut())):
        files[name] = root / "photos" / f"{name}.png"
        Image.fromarray(image).save(files[name])
    files["head"] = root / "head.png"
    Image.fromarray(crop(data.chelsea(), HEAD)).save(files["head"])
    files["face"] = root / "face.png"
    Image.fromarray(crop(data.astronaut(), FACE)).save(files["face"])
    files["mirror"] = root / "mirror.png"
    Image.fromarray(data.chelsea()[:, ::-1]).save(files["mirror"])
    col = Collection.index([root / "photos"], db=root / "c.db", model=DEFAULT_MODEL)
    yield col, files
    col.close()


def inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.mark.parametrize("photo,part,box", [("chelsea", "head", HEAD),
                                             ("astronaut", "face", FACE)])
def test_a_crop_lights_up_the_region_it_came_from(pictures, photo, part, box):
    col, files = pictures
    why = col.explain(files[photo], files[part])
    assert isinstance(why, Explanation) and why.model == DEFAULT_MODEL
    on_photo, _ = why.peaks()
    assert inside(on_photo, box), on_photo
    # Upsampled to the photo's own size, the heat is hotter inside the box than outside it.
    heat = why.heat_at(0)
    assert heat.shape == (why.images[0].height, why.images[0].width)
    h, w = heat.shape
    mask = np.zeros_like(heat, bool)
    mask[int(box[1] * h):int(box[3] * h), int(box[0] * w):int(box[2] * w)] = True
    assert heat[mask].mean() > heat[~mask].mean()


def test_the_maps_are_on_the_feature_grid_in_0_1(pictures):
    col, files = pictures
    why = col.explain(files["chelsea"], files["astronaut"])
    for heat in why.heat:
        assert heat.shape == (7, 7) and heat.dtype == np.float32
        assert heat.min() == 0 and heat.max() == pytest.approx(1.0)
    assert why.images[0].name.endswith("chelsea.png") and why.images[0].id is not None
    assert (why.images[0].width, why.images[0].height) == (451, 300)
    assert why.images[0].picture(100).shape == (67, 100, 3)


def test_an_image_and_its_mirror_have_mirrored_maps(pictures):
    col, files = pictures
    why = col.explain(files["chelsea"], files["mirror"])
    assert why.images[1].id is None  # outside the collection
    original, mirrored = why.heat
    assert np.corrcoef(original.ravel(), mirrored[:, ::-1].ravel())[0, 1] > 0.9
    assert np.abs(original - mirrored[:, ::-1]).mean() < 0.1


def test_the_distance_is_the_one_a_search_shows(pictures):
    col, files = pictures
    found = col.nearest(files["chelsea"], k=1)
    chelsea = col.explain(files["chelsea"], files["chelsea"]).images[0].id
    why = col.explain(chelsea, found.ids[0])  # by id
    assert why.images[1].name == found.paths[0]
    assert why.distance == pytest.approx(float(found.distances[0]), abs=1e-5)


def test_the_same_image_twice_is_fine(pictures):
    col, files = pictures
    why = col.explain(files["chelsea"], files["chelsea"])
    assert why.distance == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_array_equal(why.heat[0], why.heat[1])


def test_as_json_values(pictures):
    col, files = pictures
    out = col.explain(files["chelsea"], files["head"]).to_dict()
    assert out["model"] == DEFAULT_MODEL and out["metric"] == "Cosine"
    first, second = out["images"]
    assert len(first["heat"]) == 7 and len(first["heat"][0]) == 7
    assert second["id"] is None and inside(first["peak"], HEAD)


def test_bad_input_is_one_line(pictures, tmp_path):
    col, files = pictures
    with pytest.raises(BadReferenceError, match=r"^image 999: no such image in the collection$"):
        col.explain(999, files["chelsea"])
    with pytest.raises(BadReferenceError, match="no such file, and not in the collection"):
        col.explain(files["chelsea"], tmp_path / "gone.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(BadReferenceError, match=r"text\.png: "):
        col.explain(tmp_path / "text.png", files["chelsea"])
    with pytest.raises(LookalikeError, match="unknown model 'nope'"):
        col.explain(files["chelsea"], files["head"], model="nope")


def test_a_model_without_a_feature_map_cannot_explain(pictures, tmp_path):
    col, files = pictures
    path = write_model(tmp_path / "tiny.onnx")
    model = load_onnx_model(path, SIZE, MEAN, STD)
    assert not model.has_feature_map
    with pytest.raises(CannotExplain, match="no feature map"):
        heat_maps(model, np.zeros((2, SIZE, SIZE, 3), np.uint8))
    register_model(path, "tiny-explain", SIZE, MEAN, STD)
    with pytest.raises(CannotExplain) as error:
        col.explain(files["chelsea"], files["head"], model="tiny-explain")
    assert "\n" not in str(error.value) and "cannot explain a match" in str(error.value)


def test_heat_is_the_positive_part_stretched_to_0_1():
    np.testing.assert_allclose(normalised(np.array([[-1.0, 0.5], [2.0, 0.0]])),
                               [[0.0, 0.25], [1.0, 0.0]])
    np.testing.assert_allclose(normalised(np.array([[0.5, 0.75, 1.0]])), [[0.0, 0.5, 1.0]])
    assert not normalised(np.array([[-1.0, -2.0]])).any()
    assert not normalised(np.array([[0.3, 0.3]])).any()


# -- the command line -------------------------------------------------------------------------

@pytest.mark.slow  # a process that loads the model: 2-3 s
def test_the_command_prints_where_each_matches_and_draws_them(pictures, tmp_path):
    col, files = pictures
    out = tmp_path / "why.png"
    proc = run("explain", files["chelsea"], files["head"], "--db", col.store.path, "-o", out)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("distance ") and f"(Cosine, {DEFAULT_MODEL})" in lines[0]
    assert lines[1].startswith(f"{files['chelsea']}: matches {files['head']} most at x ")
    x, y = (float(v) for v in lines[1].split(" at x ")[1].split(", y "))
    assert inside((x, y), HEAD)
    assert lines[-1] == f"wrote {out} (png)"
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 384 + 200 and picture.height > 255
        # The photo's panel is tinted towards red where the head is, not at its far left.
        pixels = np.asarray(picture.convert("RGB"), float)
    original = np.asarray(Image.fromarray(data.chelsea()).resize((384, 255)), float)
    tint = pixels[12:12 + 255, 12:12 + 384, 0] - original[..., 0]
    assert tint[:, int(0.45 * 384):int(0.75 * 384)].mean() > tint[:, :int(0.2 * 384)].mean()


@pytest.mark.slow
def test_the_command_refuses_an_unknown_id_in_one_line(pictures):
    col, files = pictures
    proc = run("explain", "999", files["chelsea"], "--db", col.store.path, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "lookalike: error: image 999: no such image in the collection"


# -- collections that read scientific images their own way ----------------------------------------

@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    """Three OME-TIFF stacks, each lit differently, written to a folder."""
    from test_scientific import ome_tiff, stack_values

    root = tmp_path_factory.mktemp("explain-stacks")
    for i in range(3):
        values = stack_values()
        values[..., :(i + 1) * 12, :] += np.uint16(3000 * (i + 1))
        (root / f"s{i}.ome.tif").write_bytes(ome_tiff(values, levels=1))
    return root


def test_explain_reads_images_as_the_collection_reads_them(stacks, tmp_path):
    from lookalike.ingest import decode as images
    from lookalike.ingest.reading import ReadingOptions

    reading = ReadingOptions(z="max", channels=(3, 1), window=(1, 99))
    with Collection.create(tmp_path / "c.db") as col:
        col.add([stacks], model="squeezenet", reading=reading)
        first, second = stacks / "s0.ome.tif", stacks / "s1.ome.tif"
        searched = col.nearest(first, k=1)
        assert searched.paths == [str(second)]
        why = col.explain(first, second)
        # The network saw the pixels the collection's options choose, not the stack's first
        # three channels of plane 0.
        seen = images.decode(first.read_bytes(), why.images[0].pixels.shape[0],
                             reading=reading).pixels
        np.testing.assert_array_equal(why.images[0].pixels, seen)
        square = images.decode(first.read_bytes(), 64, reading=reading).pixels
        np.testing.assert_array_equal(why.images[0].picture(64), np.asarray(
            Image.fromarray(square).resize((64, 48), Image.Resampling.BILINEAR)))
        # The model named without its options, or a file given as bytes: the same distance.
        assert why.distance == pytest.approx(searched.distances[0], abs=1e-6)
        by_name = col.explain(first, second, model="squeezenet")
        assert by_name.model == col.default_model
        assert by_name.distance == pytest.approx(searched.distances[0], abs=1e-6)
        outside = col.explain(first.read_bytes(), second)
        assert outside.distance == pytest.approx(searched.distances[0], abs=1e-5)


def test_per_channel_vectors_cannot_be_explained_in_one_line(stacks, tmp_path):
    from lookalike.ingest.reading import ReadingOptions

    db = tmp_path / "c.db"
    with Collection.create(db) as col:
        col.add([stacks], model="squeezenet",
                reading=ReadingOptions(channels=(0, 1, 2, 3), per_channel=True))
        with pytest.raises(CannotExplain, match=r"--per-channel\) have no one feature map"):
            col.explain(1, 2)
    proc = run("explain", "1", "2", "--db", db, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("lookalike: error: ") and \
        len(proc.stderr.strip().splitlines()) == 1, proc.stderr
