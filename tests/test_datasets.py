"""Sample collections: written out offline, with their licence credits shown beside results."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lookalike import datasets


def test_twemoji_is_written_by_category_and_subcategory(tmp_path):
    out = datasets.get("twemoji", tmp_path / "tw")
    pngs = list(out.path.rglob("*.png"))
    assert out.count == len(pngs) > 1800
    grinning = out.path / "Smileys & Emotion" / "face-smiling" / "grinning.png"
    assert Image.open(grinning).size == (72, 72)
    assert "CC-BY 4.0" in (out.path / "ATTRIBUTION.txt").read_text()
    categories = {p.relative_to(out.path).parts[0] for p in pngs}
    assert {"Smileys & Emotion", "Animals & Nature", "Flags"} <= categories


def test_the_attribution_is_printed_with_twemoji_results(tmp_path):
    full = datasets.get("twemoji", tmp_path / "tw").path
    small = tmp_path / "small"
    shutil.copytree(full / "Smileys & Emotion" / "face-smiling", small / "face-smiling")
    shutil.copy(full / "ATTRIBUTION.txt", small)
    db = tmp_path / "t.db"
    run = lambda *a: subprocess.run([sys.executable, "-m", "lookalike", *map(str, a)],
                                    capture_output=True, text=True, check=True).stdout
    run("index", small, "--db", db, "--model", "squeezenet", "--quiet")
    out = run("similar", small / "face-smiling" / "grinning.png", "--db", db, "-k", 3)
    assert out.strip().splitlines()[-1] == datasets.TWEMOJI_ATTRIBUTION
    assert len(out.strip().splitlines()) == 2 + 3 + 1


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
