"""Tags: each image's ImageNet classes kept while indexing, and images found by tag words."""

import sqlite3

import numpy as np
import pytest

import lookalike
from lookalike.analysis import tags
from lookalike.analysis.tags import UnknownTagWord, match_words, rank_tagged, tags_from_logits
from lookalike.catalogue.store import MIGRATIONS, Store
from lookalike.errors import LookalikeError
from lookalike.models.imagenet_classes import class_words
from test_indexing import photo_families

MODEL = "squeezenet"  # the fastest model with a classifier
TABBY, TIGER_CAT, PERSIAN, SIAMESE, EGYPTIAN, ESPRESSO, GOLDEN = 281, 282, 283, 284, 285, 967, 207


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("tags")
    files = photo_families(root / "photos")
    col = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    yield col, files, root
    col.close()


# -- words --------------------------------------------------------------------------------------

def test_class_words_are_imagenets_synonyms_with_the_wordnet_nouns_above_them():
    words = class_words()
    assert len(words.names) == 1000
    assert words.names[TABBY] == ("tabby", "tabby cat") and words.name(ESPRESSO) == "espresso"
    assert words.has_hierarchy
    assert {"domestic cat", "cat", "feline", "animal"} <= set(words.above[TABBY])
    assert "coffee" in words.above[ESPRESSO] and "dog" in words.above[GOLDEN]


def test_a_word_finds_its_classes_and_those_below_it_case_and_plurals_aside():
    (cat,) = match_words(["Cats"])
    assert {TABBY, TIGER_CAT, PERSIAN, SIAMESE, EGYPTIAN} <= cat.classes
    (dog,) = match_words(["DOGS"])
    assert GOLDEN in dog.classes and len(dog.classes) >= 100      # every breed
    assert match_words(["tabby cat"])[0].classes == {TABBY}       # a synonym
    assert match_words(["espressos"])[0].classes == {ESPRESSO}
    assert len(match_words(["mice"])[0].classes) >= 1             # WordNet's irregular plural
    assert match_words(["German-Shepherd"])[0].classes == {235}


def test_several_words_are_read_as_the_longest_names_they_make():
    terms = match_words(["golden", "retriever", "cat"])
    assert [t.text for t in terms] == ["golden retriever", "cat"]
    assert terms[0].classes == {GOLDEN}


def test_a_word_that_names_no_class_says_the_nearest_names():
    with pytest.raises(UnknownTagWord, match=r"no ImageNet class is called 'catt'; the "
                                             r"nearest names are .*'cat'") as err:
        match_words(["catt"])
    assert "\n" not in str(err.value)
    with pytest.raises(UnknownTagWord, match="give a word"):
        match_words(["  ", "!"])


# -- from logits to tags, and ranking -----------------------------------------------------------

def test_tags_are_the_top_classes_above_the_floor_and_always_the_first():
    logits = np.full((2, 1000), -10.0, np.float32)
    logits[0, [TABBY, TIGER_CAT, 5]] = [5.0, 4.0, 0.0]   # 5: far below the floor
    out = tags_from_logits(logits)
    assert [c for c, _ in out[0]] == [TABBY, TIGER_CAT]
    total = np.exp(5) + np.exp(4) + 1 + 997 * np.exp(-10)
    assert out[0][0][1] == pytest.approx(np.exp(5) / total, rel=1e-5)
    assert len(out[1]) == 1                                # flat: only the first, whatever it is


def test_images_are_ranked_by_the_probability_of_the_classes_matched_summed():
    terms = match_words(["cat"])
    hits = [(1, TABBY, 0.3), (2, TABBY, 0.5), (1, TIGER_CAT, 0.4), (3, ESPRESSO, 0.9)]
    ranked = rank_tagged(hits, terms)
    assert [(i, round(s, 3)) for i, s, _ in ranked] == [(1, 0.7), (2, 0.5)]
    assert ranked[0][2] == [(TIGER_CAT, 0.4), (TABBY, 0.3)]
    assert len(rank_tagged(hits, terms, k=1)) == 1


# -- kept while indexing, searched through the API ----------------------------------------------

def test_real_photos_are_found_by_what_they_show(photos):
    col, files, _ = photos
    cats = col.tagged("cat")
    assert {r["path"] for r in cats} == {str(files[("chelsea", k)])
                                         for k in ("orig", "bright", "small", "crop")}
    assert all(r["score"] > 0.2 for r in cats) and cats[0]["tags"][0]["name"] in {
        "tabby", "tiger cat", "Egyptian cat"}
    coffee = col.tagged(["coffee"], k=2)
    assert len(coffee) == 2 and all("coffee" in r["path"] for r in coffee)
    assert coffee[0]["tags"][0]["name"] == "espresso"
    either = col.tagged(["cats", "espresso"])
    assert {r["path"].split("/")[-2] for r in either} == {"chelsea", "coffee"}


def test_an_images_tags_by_id_or_path(photos):
    col, files, _ = photos
    by_path = col.tags(files[("coffee", "orig")])
    assert by_path[0]["name"] == "espresso" and 0 < by_path[0]["score"] <= 1
    assert [t["score"] for t in by_path] == sorted((t["score"] for t in by_path), reverse=True)
    image_id = col.store.find(bytes(str(files[("coffee", "orig")]), "utf-8"))["id"]
    assert col.tags(image_id) == by_path
    with pytest.raises(LookalikeError, match="not a usable image"):
        col.tags("/no/such/image.png")


def test_the_grid_filters_by_tag_words(photos):
    col, files, _ = photos
    total, rows = col.images(tag="cat")
    assert total == 4 and all("chelsea" in r["path"] for r in rows)
    assert col.position(rows[1]["id"], tag="cat") == 1
    assert col.position(col.tagged("coffee")[0]["id"], tag="cat") is None
    with pytest.raises(UnknownTagWord, match="catt"):
        col.images(tag="catt")


def test_tags_are_kept_by_content_and_not_taken_twice(photos, tmp_path):
    col, _, root = photos
    with Store(root / "photos.db") as store:
        per_content = store.conn.execute(
            "SELECT content_hash, count(*), max(score) FROM tags GROUP BY content_hash").fetchall()
    assert len(per_content) == 16 and all(1 <= n <= tags.TOP for _, n, _ in per_content)
    again = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    assert again.last_report.embedded == 0 and again.last_report.unchanged == 16
    again.close()


def test_a_collection_from_before_tags_gets_them_when_asked_and_only_then(tmp_path):
    files = photo_families(tmp_path / "photos")
    db = tmp_path / "old.db"
    lookalike.Collection.index([tmp_path / "photos"], db=db, model=MODEL).close()
    con = sqlite3.connect(db)
    con.execute("DROP TABLE tags")        # what a schema-5 database holds, upgraded
    con.executescript(MIGRATIONS[6])
    con.commit()
    con.close()
    with lookalike.Collection.open(db) as col:
        with pytest.raises(LookalikeError, match="run `lookalike index --retag`"):
            col.tagged("cat")
        report = col.add([tmp_path / "photos"], model=MODEL)   # re-indexing reads no pixel
        assert report.embedded == 0 and report.unchanged == 16
        with pytest.raises(LookalikeError, match="no image has tags"):
            col.tagged("cat")
        report = col.add([tmp_path / "photos"], model=MODEL, retag=True)
        assert report.embedded == 16
        assert len(col.tagged("cat")) == 4 and str(files[("chelsea", "orig")]) in {
            r["path"] for r in col.tagged("cat")}


# -- the command line ---------------------------------------------------------------------------

@pytest.mark.slow  # five runs of the command, ~4 s
def test_lookalike_tags_prints_the_images_and_an_images_tags(photos):
    import json

    from test_cli import run

    col, files, root = photos
    db = root / "photos.db"
    out = run("tags", "Cats", "--db", db, "-k", "2").stdout.splitlines()
    assert len(out) == 3 and out[-1] == "2 images"
    assert all("chelsea" in line for line in out[:2])
    found = json.loads(run("tags", "espresso", "--db", db, "--format", "json").stdout)
    assert {r["path"] for r in found} == {str(files[("coffee", k)])
                                          for k in ("orig", "bright", "small", "crop")}
    assert found[0]["tags"][0]["name"] == "espresso"
    listed = run("tags", "--image", files[("chelsea", "orig")], "--db", db).stdout
    assert "tabby (tabby cat)" in listed or "tiger cat" in listed
    bad = run("tags", "catt", "--db", db, check=False)
    assert bad.returncode != 0 and bad.stdout == ""
    assert bad.stderr.startswith("lookalike: error: no ImageNet class is called 'catt'; the "
                                 "nearest names are") and bad.stderr.count("\n") == 1
    neither = run("tags", "--db", db, check=False)
    assert neither.returncode != 0 and "give WORDS" in neither.stderr


def test_per_channel_vectors_have_no_tags_and_say_why(tmp_path):
    """The classifier sees whole pictures: images read channel by channel get no tags, and the
    error says so (not that a built-in model has no classifier)."""
    from lookalike.ingest.reading import ReadingOptions
    from test_scientific import ome_tiff, stack_values

    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "s.ome.tif").write_bytes(ome_tiff(stack_values(), levels=1))
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add([tmp_path / "stacks"], model=MODEL,
                reading=ReadingOptions(channels=(0, 1, 2, 3), per_channel=True))
        for ask in (lambda: col.tagged("cat"), lambda: col.tags(1),
                    lambda: col.tags(1, model=MODEL)):
            with pytest.raises(LookalikeError, match=r"--per-channel\) have no tags") as error:
                ask()
            assert "no ImageNet classifier" not in str(error.value)
