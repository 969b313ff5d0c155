"""Indexing a real folder with a real model: counts, caching by content, changes, look-alikes."""

import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image, ImageEnhance

import lookalike
from imagefactory import pattern, write_bad_files, write_exif_rotated, write_formats
from lookalike.errors import LookalikeError
from lookalike.ingest import decode as images, pipeline as indexing
from lookalike.search.checks import nearest_names

MODEL = "squeezenet"  # the fastest model; the others share all of this code


def photo_families(folder, size=(160, 120)):
    """Four photos from scikit-image, each with three variants: a look-alike ground truth."""
    from skimage import data

    out = {}
    for name in ["chelsea", "coffee", "rocket", "astronaut"]:
        base = Image.fromarray(getattr(data, name)()).convert("RGB").resize(size)
        variants = {
            "orig": base,
            "bright": ImageEnhance.Brightness(base).enhance(1.25),
            "small": base.resize((size[0] // 2, size[1] // 2)),
            "crop": base.crop((8, 6, size[0] - 8, size[1] - 6)),
        }
        for kind, im in variants.items():
            path = folder / name / f"{kind}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path, quality=92)
            out[(name, kind)] = path
    return out


@pytest.fixture
def families(tmp_path):
    root = tmp_path / "photos"
    return root, photo_families(root)


def test_look_alikes_are_the_variants_of_the_same_photo(families, tmp_path):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    assert col.last_report.embedded == 16 and not col.last_report.skipped
    for name in ["chelsea", "coffee", "rocket", "astronaut"]:
        res = col.nearest(files[(name, "orig")], k=3)
        assert {os.path.basename(os.path.dirname(p)) for p in res.paths} == {name}, res.paths
        assert str(files[(name, "orig")]) not in res.paths
        assert np.all(np.diff(res.distances) >= 0)
    res = col.nearest(files[("coffee", "orig")], k=1, include_references=True)
    assert res.paths == [str(files[("coffee", "orig")])] and res.distances[0] < 1e-5


def test_several_references_and_outside_files(families, tmp_path):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    refs = [files[("rocket", "orig")], files[("chelsea", "orig")]]
    res = col.nearest(refs, k=6)
    assert {os.path.basename(os.path.dirname(p)) for p in res.paths} == {"rocket", "chelsea"}
    outside = tmp_path / "outside.png"
    Image.open(files[("rocket", "bright")]).rotate(3).save(outside)
    res = col.nearest(outside, k=4)
    assert {os.path.basename(os.path.dirname(p)) for p in res.paths} == {"rocket"}
    assert col.store.find(os.fsencode(outside)) is None     # not added to the collection
    every = col.nearest(files[("rocket", "orig")], k=None)
    assert len(every) == 15
    only = col.nearest(files[("rocket", "orig")], k=None, category="coffee")
    assert len(only) == 4 and all("/coffee/" in p for p in only.paths)


def test_metrics_and_vectors_as_references(families, tmp_path):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    ids, matrix = col.vectors()
    for metric in lookalike.METRICS:
        if metric == "Mahalanobis":
            with pytest.warns(lookalike.LookalikeWarning):
                res = col.nearest(matrix[0], k=16, metric=metric)
        else:
            res = col.nearest(matrix[0], k=16, metric=metric)
        want = np.sort(lookalike.distances(matrix, matrix[:1], metric)[:, 0])
        np.testing.assert_allclose(res.distances, want, rtol=1e-4, atol=1e-4, err_msg=metric)


def test_mahalanobis_on_too_few_images_comes_with_a_note(families, tmp_path, recwarn):
    """16 images of 1000 dimensions: the covariance is mostly its regularisation."""
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    res = col.nearest(files[("chelsea", "orig")], k=3, metric="mahalanobis")
    assert res.notes == [str(w.message) for w in recwarn
                         if issubclass(w.category, lookalike.LookalikeWarning)]
    assert len(res.notes) == 1 and "needs about 2,000 images" in res.notes[0]
    assert "has 16" in res.notes[0] and "Cosine" in res.notes[0]
    by_id = col.nearest_to_ids([res.ids[0]], k=3, metric="mahalanobis")
    assert by_id.notes == res.notes
    recwarn.clear()
    assert col.nearest(files[("chelsea", "orig")], k=3).notes == []
    assert not [w for w in recwarn if issubclass(w.category, lookalike.LookalikeWarning)]


def test_reindexing_an_unchanged_folder_opens_no_file(families, tmp_path, monkeypatch):
    root, _ = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    opened = []
    monkeypatch.setattr(indexing, "read_file", lambda *a, **k: opened.append(a) or b"")
    generation = col.store.generation
    report = col.add([root], model=MODEL)
    assert report.unchanged == 16 and report.embedded == 0 and opened == []
    # nothing written, so the search matrix and every cache derived from it stay valid
    assert col.store.generation == generation


def test_renamed_copied_changed_and_deleted_files(families, tmp_path, monkeypatch):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    os.rename(files[("coffee", "orig")], root / "coffee" / "renamed.jpg")
    shutil.copy(files[("rocket", "orig")], root / "rocket-copy.jpg")
    Image.fromarray(pattern(seed=5)).save(files[("chelsea", "small")])  # new content
    os.remove(files[("astronaut", "crop")])
    decoded = []
    real_decode = images.decode
    monkeypatch.setattr(images, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    report = col.add([root], model=MODEL)
    assert report.from_cache == 2            # the renamed file and the copy: no new embedding
    assert report.embedded == 1 and len(decoded) == 1
    assert report.removed == 2               # the old name and the deleted file
    assert report.unchanged == 13
    every = col.nearest(root / "rocket-copy.jpg", k=None, include_references=True)
    assert str(files[("astronaut", "crop")]) not in every.paths
    assert str(files[("coffee", "orig")]) not in every.paths
    assert str(root / "coffee" / "renamed.jpg") in every.paths
    copy = col.nearest(root / "rocket-copy.jpg", k=1)
    assert copy.paths == [str(files[("rocket", "orig")])] and copy.distances[0] < 1e-6


def test_bad_files_are_skipped_with_reasons_and_good_ones_indexed(tmp_path):
    root = tmp_path / "mixed"
    good = write_formats(root / "good")
    bad = write_bad_files(root / "bad")
    os.mkfifo(root / "bad" / "pipe.jpg")
    (root / "bad" / "dir.jpg").mkdir()
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    report = col.last_report
    assert report.embedded + report.from_cache == len(good)
    reasons = dict(report.skipped)
    assert len(reasons) == len(bad) + 1
    assert "empty file" in reasons[str(bad["empty"])]
    assert "truncated" in reasons[str(bad["truncated_jpeg"])]
    assert "not an image" in reasons[str(bad["text"])]
    assert "too many pixels" in reasons[str(bad["bomb"])]
    assert "named pipe" in reasons[str(root / "bad" / "pipe.jpg")]
    assert {r["path"] for r in col.skipped()} == set(reasons)
    again = col.add([root], model=MODEL)
    assert again.embedded == 0 and len(again.skipped) == len(reasons)
    with pytest.raises(LookalikeError, match="skipped when indexed"):
        col.nearest(bad["text"])


def test_rotated_photo_embeds_like_the_upright_one(tmp_path):
    from skimage import data

    upright = np.asarray(Image.fromarray(data.chelsea()).resize((300, 200)))
    folder = tmp_path / "rot"
    folder.mkdir()
    Image.fromarray(upright).save(folder / "upright.jpg", quality=95)
    write_exif_rotated(folder / "rotated.jpg", upright, 6, quality=95)
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(folder / "sideways.jpg",
                                                                       quality=95)
    col = lookalike.Collection.index([folder], db=tmp_path / "c.db", model=MODEL)
    res = col.nearest(folder / "upright.jpg", k=2)
    assert res.paths[0] == str(folder / "rotated.jpg")
    assert res.distances[0] < 0.01 < res.distances[1]
    assert col.store.find(os.fsencode(folder / "rotated.jpg"))["width"] == 300


def test_clear_errors_for_wrong_references_and_models(families, tmp_path):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    with pytest.raises(LookalikeError, match="no such file"):
        col.nearest(tmp_path / "nope.jpg")
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    with pytest.raises(LookalikeError, match=r"text.jpg: not an image \(unrecognised format\)$"):
        col.nearest(text)
    with pytest.raises(LookalikeError, match="efficientnet-lite1"):
        col.nearest(files[("coffee", "orig")], model="efficientnet-lite1")
    with pytest.raises(LookalikeError, match="k must be"):
        col.nearest(files[("coffee", "orig")], k=0)
    with pytest.raises(LookalikeError, match="unknown metric"):
        col.nearest(files[("coffee", "orig")], metric="hamming")
    one = lookalike.Collection.index([files[("coffee", "orig")]], db=tmp_path / "one.db",
                                     model=MODEL)
    with pytest.raises(LookalikeError, match="every image in the collection is a reference"):
        one.nearest(files[("coffee", "orig")])


def test_two_models_live_side_by_side(families, tmp_path):
    root, files = families
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    report = col.add([root], model="efficientnet-lite0")
    assert report.embedded == 16
    assert col.models == {"squeezenet": 16, "efficientnet-lite0": 16}
    assert col.default_model == "efficientnet-lite0"
    a = col.nearest(files[("rocket", "orig")], k=3, model="squeezenet")
    b = col.nearest(files[("rocket", "orig")], k=3)
    assert a.model == "squeezenet" and b.model == "efficientnet-lite0"
    assert {os.path.basename(os.path.dirname(p)) for p in b.paths} == {"rocket"}


def test_a_long_lived_collection_counts_what_another_process_adds(families, tmp_path):
    """Counts are cached per catalogue generation (the web viewer asks with every grid page);
    images another writer adds must show in them."""
    root, files = families
    db = tmp_path / "c.db"
    reader = lookalike.Collection.index([root / "chelsea"], db=db, model=MODEL)
    assert (len(reader), reader.images(limit=1)[0], reader.categories()) == (4, 4, {})
    with lookalike.Collection.open(db) as writer:
        writer.add([root / "coffee", root / "rocket"], model=MODEL)
    assert len(reader) == 12 and reader.images(limit=1)[0] == 12
    assert reader.images(name="bright")[0] == 3


def test_a_file_named_by_several_paths_is_listed_once(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        report = col.add([tmp_path, tmp_path / "x.png", tmp_path], model=MODEL)
    assert report.found == 1 and len(report.skipped) == 1


def test_an_unknown_category_is_an_error_naming_the_nearest_ones(families, tmp_path):
    root, files = families
    nested = root / "coffee" / "cups"
    nested.mkdir()
    shutil.copy(files[("chelsea", "orig")], nested / "cat.jpg")
    col = lookalike.Collection.index([root], db=tmp_path / "c.db", model=MODEL)
    ref = files[("rocket", "orig")]
    with pytest.raises(lookalike.api.UnknownCategory, match="no category 'cofee'.*'coffee'"):
        col.nearest(ref, category="cofee")
    with pytest.raises(LookalikeError, match="nearest are 'coffee/cups'"):
        col.nearest(ref, category="cup")             # a sub-folder named without its parent
    with pytest.raises(LookalikeError, match="top categories are 'astronaut', 'chelsea'"):
        col.nearest(ref, category="xyzzy")
    # A category holds its sub-folders: "coffee" has 5 images, "coffee/cups" one.
    assert len(col.nearest(ref, k=None, category="coffee")) == 5
    assert col.nearest(ref, k=None, category="coffee/cups").paths == [str(nested / "cat.jpg")]


def test_a_mistyped_category_finds_the_category_it_starts_like():
    """"Smily" for Twemoji's "Smileys & Emotion": a whole-name comparison preferred
    "People & Body/family" (it shares "mily")."""
    names = ["People & Body/family", "Objects/mail", "Smileys & Emotion",
             "Smileys & Emotion/face-smiling", "Smileys & Emotion/cat-face", "Objects/medical"]
    assert nearest_names("Smily", names)[:2] == [
        "Smileys & Emotion", "Smileys & Emotion/cat-face"]
    assert nearest_names("OBJECTS", names)[0] == "Objects/mail"
    assert nearest_names("qqq", names) == []


def test_images_per_second_counts_only_the_images_embedded_and_the_time_spent_on_them(
        families, tmp_path):
    from lookalike.catalogue.store import Store
    from lookalike.models import load_model

    root, files = families

    def slow_load(*args, **kw):
        time.sleep(1.0)
        return load_model(*args, **kw)

    with Store(tmp_path / "c.db") as store:
        first = indexing.index_paths(store, [root], MODEL, progress=False, load_model=slow_load)
        assert first.embedded == 16
        # Loading the model is not embedding: a second it spent loading is not in the rate.
        assert first.embed_seconds <= first.seconds - 1.0
        assert first.images_per_second == first.embedded / first.embed_seconds
        # Unchanged files are not images embedded: no rate at all.
        shutil.copy(files[("coffee", "orig")], root / "coffee" / "copy.jpg")
        again = indexing.index_paths(store, [root], MODEL, progress=False)
        assert (again.embedded, again.from_cache, again.unchanged) == (0, 1, 16)
        assert again.images_per_second == 0 and again.embed_seconds == 0
