"""Sample collections: written out offline, with their licence credits shown beside results."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike import datasets


@pytest.mark.slow  # over a second on the 2-core machine
def test_twemoji_is_written_by_category_and_subcategory(tmp_path):
    out = datasets.get("twemoji", tmp_path / "tw")
    pngs = list(out.path.rglob("*.png"))
    assert out.count == len(pngs) > 1800
    grinning = out.path / "Smileys & Emotion" / "face-smiling" / "grinning.png"
    assert Image.open(grinning).size == (72, 72)
    assert "CC-BY 4.0" in (out.path / "ATTRIBUTION.txt").read_text()
    categories = {p.relative_to(out.path).parts[0] for p in pngs}
    assert {"Smileys & Emotion", "Animals & Nature", "Flags"} <= categories


@pytest.mark.slow  # over a second on the 2-core machine
def test_the_attribution_is_printed_with_twemoji_results(tmp_path):
    full = datasets.get("twemoji", tmp_path / "tw").path
    small = tmp_path / "small"
    shutil.copytree(full / "Smileys & Emotion" / "face-smiling", small / "face-smiling")
    shutil.copy(full / "ATTRIBUTION.txt", small)
    db = tmp_path / "t.db"

    def run(*a):
        return subprocess.run([sys.executable, "-m", "lookalike", *map(str, a)],
                              capture_output=True, text=True, check=True).stdout

    run("index", small, "--db", db, "--model", "squeezenet", "--quiet")
    out = run("similar", small / "face-smiling" / "grinning.png", "--db", db, "-k", 3)
    assert out.strip().splitlines()[-1] == datasets.TWEMOJI_ATTRIBUTION
    assert len(out.strip().splitlines()) == 1 + 2 + 3 + 1   # model and metric, header, rows


def test_fashion_mnist_test_split_is_ten_classes_of_a_thousand():
    images, labels, classes = datasets.fashion_mnist()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.dtype.kind == "i"
    assert np.bincount(labels).tolist() == [1000] * 10
    assert classes[0] == "T-shirt/top" and classes[9] == "Ankle boot" and len(classes) == 10
    # The published order: the first test images are an ankle boot, a pullover, two trousers.
    assert labels[:4].tolist() == [9, 2, 1, 1]
    # White garments on a black background, as published (not inverted).
    assert np.median(images[:, 0, 0]) == 0 and images.mean() < 100 and images.max() == 255


def test_fashion_mnist_train_split_has_six_thousand_per_class():
    images, labels, _ = datasets.fashion_mnist("train")
    assert images.shape == (60_000, 28, 28)
    assert np.bincount(labels).tolist() == [6000] * 10


def test_fashion_mnist_missing_files_name_the_install_command(tmp_path):
    with pytest.raises(datasets.DatasetUnavailable, match="apt-get install dataset-fashion-mnist"):
        datasets.fashion_mnist(directory=tmp_path)
    with pytest.raises(datasets.LookalikeError, match="train or test"):
        datasets.fashion_mnist("validation")


def files_with_times(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_fashion_mnist_pngs_hold_the_same_pixels_by_class_name(tmp_path):
    images, labels, classes = datasets.fashion_mnist("test")
    out = datasets.get("fashion-mnist", tmp_path / "fm", limit=3)
    pngs = sorted(out.path.rglob("*.png"))
    assert out.count == out.written == len(pngs) == 30
    assert {p.parent.name for p in pngs} == {c.replace("/", "-") for c in classes}
    for png in pngs:
        split, index = png.stem.split("-")
        assert split == "test"
        index = int(index)
        assert png.parent.name == classes[labels[index]].replace("/", "-")
        with Image.open(png) as im:
            assert im.mode == "L"
            assert np.array_equal(np.asarray(im), images[index])
    # --limit takes the first images of each class, in the file's order.
    sneakers = sorted(int(p.stem[5:]) for p in (out.path / "Sneaker").glob("*.png"))
    assert sneakers == np.flatnonzero(labels == classes.index("Sneaker"))[:3].tolist()
    assert out.example == out.path / "Sneaker" / "test-00009.png"
    assert "Zalando" in (out.path / "ATTRIBUTION.txt").read_text()
    assert "Permission is hereby granted" in (out.path / "LICENSE.txt").read_text()


def test_getting_a_sample_again_rewrites_nothing_and_a_larger_limit_adds_the_rest(tmp_path):
    first = datasets.get("fashion-mnist", tmp_path / "fm", limit=2)
    before = files_with_times(first.path)
    again = datasets.get("fashion-mnist", tmp_path / "fm", limit=2)
    assert (again.count, again.written) == (20, 0)
    assert files_with_times(first.path) == before           # not one file touched
    more = datasets.get("fashion-mnist", tmp_path / "fm", limit=5)
    assert (more.count, more.written) == (50, 30)
    after = files_with_times(first.path)
    assert len(after) == 50 + 2 and all(after[p] == t for p, t in before.items())


@pytest.mark.slow
def test_fashion_mnist_all_splits_start_with_the_test_images(tmp_path):
    _, train_labels, classes = datasets.fashion_mnist("train")
    out = datasets.get("fashion-mnist", tmp_path / "all", split="all", limit=1001)
    bags = sorted(p.stem for p in (out.path / "Bag").glob("*.png"))
    assert len(bags) == 1001 and out.count == 10_010
    assert sum(name.startswith("test-") for name in bags) == 1000
    first_train_bag = np.flatnonzero(train_labels == classes.index("Bag"))[0]
    assert f"train-{first_train_bag:05d}" in bags
    train = datasets.get("fashion-mnist", tmp_path / "train", split="train", limit=1)
    assert {p.stem[:6] for p in train.path.rglob("*.png")} == {"train-"}


def test_skimage_images_are_copied_as_shipped_by_category(tmp_path):
    from skimage import data

    out = datasets.get("skimage", tmp_path / "sk")
    files = sorted(p for p in out.path.rglob("*") if p.suffix in (".png", ".jpg"))
    assert out.count == len(files) == len(datasets.SKIMAGE_IMAGES) == 26
    assert {p.parent.name for p in files} == {"photos", "textures", "microscopy & medical",
                                              "graphics"}
    for p in files:
        with Image.open(p) as im:
            im.load()
            assert min(im.size) >= 100
    with Image.open(out.path / "photos" / "coffee.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), data.coffee())
    with Image.open(out.path / "textures" / "brick.png") as im:
        assert np.array_equal(np.asarray(im), data.brick())
    assert (out.path / "photos" / "chelsea.png").read_bytes() == \
        (Path(data.__file__).parent / "chelsea.png").read_bytes()
    assert "BSD-3-Clause" in (out.path / "ATTRIBUTION.txt").read_text()
    assert datasets.get("skimage", tmp_path / "sk", limit=1).written == 0


def test_twemoji_limit_is_per_subcategory(tmp_path):
    out = datasets.get("twemoji", tmp_path / "tw", limit=1)
    leaves = [p.parent for p in out.path.rglob("*.png")]
    assert out.count == len(leaves) == len(set(leaves)) > 90   # one per subcategory
    assert out.example == out.path / "Smileys & Emotion" / "face-smiling" / "grinning.png"


def test_every_listed_sample_is_available_here_and_says_how_to_install_it():
    assert set(datasets.DATASETS) == {"twemoji", "fashion-mnist", "skimage"}
    for d in datasets.DATASETS.values():
        assert d.available, d.name
        assert d.install.startswith(("pip install", "sudo apt-get install"))
    assert datasets.DATASETS["fashion-mnist"].install == \
        "sudo apt-get install dataset-fashion-mnist"


def test_wrong_names_and_options_are_clear_errors(tmp_path):
    with pytest.raises(datasets.LookalikeError, match="choose one of: twemoji, fashion-mnist"):
        datasets.get("mnist", tmp_path)
    with pytest.raises(datasets.LookalikeError, match="--split applies to fashion-mnist only"):
        datasets.get("skimage", tmp_path, split="train")
    with pytest.raises(datasets.LookalikeError, match="choose test, train or all"):
        datasets.get("fashion-mnist", tmp_path, split="val")
    assert not any(tmp_path.iterdir())


def test_twemoji_is_described_with_its_real_numbers_of_categories():
    """`lookalike datasets` and the README say how many categories and subcategories the
    Twemoji sample has: the numbers of folders `get` writes."""
    import re

    entries = datasets.twemoji_entries()
    categories = {c for c, *_ in entries}
    subcategories = {(c, s) for c, s, *_ in entries}
    said = re.search(r"(\d+) categories / (\d+) subcategories",
                     datasets.DATASETS["twemoji"].content)
    assert (int(said[1]), int(said[2])) == (len(categories), len(subcategories))
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"({len(categories)} categories, {len(subcategories)} subcategories)" in readme
    assert len(entries) == datasets.DATASETS["twemoji"].size
