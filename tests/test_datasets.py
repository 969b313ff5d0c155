"""Sample collections: written out offline, with their licence credits shown beside results."""

import shutil
import subprocess
import sys

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
