"""The Python API as a data miner meets it in a notebook.

First a guide, a few lines per step on tiny generated pictures (as the README's Python
section): index a folder; the look-alikes of a file, of several, of a vector, of image bytes,
of images given by id; every image ranked; metrics; a category filter; approximate search;
results and the collection written out; errors; notes. Then what a collection and a result
say about themselves (repr), a result drawn as thumbnails (Jupyter's _repr_html_), and errors.
"""

import base64
import io
import json
import os
import re
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image, ImageDraw

import lookalike
from lookalike.api import HTML_IMAGES, RECORD_FIELDS, BadReferenceError, Neighbors, UnknownCategory
from lookalike.formats import thumbnails
from lookalike.ingest import decode as images
from test_indexing import photo_families

MODEL = "squeezenet"
ODD = '<b>bold<b> & "quoted"'


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    files = photo_families(root / "photos", size=(200, 150))
    Image.open(files[("coffee", "orig")]).save(root / "photos" / "coffee" / f"{ODD}.jpg")
    clear = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (10, 10, 30, 20))
    clear.save(root / "photos" / "coffee" / "clear.png")
    col = lookalike.Collection.index([root / "photos"], db=root / "photos.db", model=MODEL)
    yield col, files, root
    col.close()


class Page(HTMLParser):
    """The pictures and texts of an HTML fragment, as a browser would find them."""

    def __init__(self, html):
        super().__init__()
        self.images, self.texts, self.titles = [], [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if "title" in attrs:
            self.titles.append(attrs["title"])

    def handle_data(self, data):
        self.texts.append(data)


def picture(src):
    kind, encoded = re.fullmatch(r"data:(image/(?:jpeg|png));base64,(.+)", src).groups()
    im = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert im.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[kind]
    return im


# -- the guide ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Eight small pictures in two categories (sub-folders): discs, red ones and blue ones,
    each a little further right; a look-alike of a red disc is a red disc."""
    root = tmp_path_factory.mktemp("guide")
    for category, colour in [("red", (210, 30, 30)), ("blue", (30, 60, 210))]:
        (root / "shapes" / category).mkdir(parents=True)
        for n in range(4):
            im = Image.new("RGB", (64, 48), "white")
            ImageDraw.Draw(im).ellipse((6 + 4 * n, 8, 38 + 4 * n, 40), fill=colour)
            im.save(root / "shapes" / category / f"{n}.png")
    col = lookalike.Collection.index([root / "shapes"], db=root / "shapes.db", model=MODEL)
    yield col, root / "shapes"
    col.close()


def test_index_a_folder(shapes):
    col, folder = shapes        # Collection.index([folder], db="shapes.db", model="squeezenet")
    assert col.last_report.embedded == 8 and not col.last_report.skipped
    assert len(col) == 8 and col.models == {MODEL: 8} and col.default_model == MODEL
    with lookalike.Collection.open(col.store.path) as again:  # later, or in another process
        assert len(again) == 8


def test_a_failed_first_index_leaves_no_empty_collection(tmp_path, shapes):
    db = tmp_path / "new" / "folder" / "c.db"
    with pytest.raises(lookalike.LookalikeError, match="nope"):
        lookalike.Collection.index([tmp_path / "nope"], db=db, model=MODEL)
    assert not (tmp_path / "new").exists()  # nor its -wal file nor the folders made for it
    col, _ = shapes  # an existing collection is never removed, whatever fails
    with pytest.raises(lookalike.LookalikeError):
        lookalike.Collection.index([tmp_path / "nope"], db=col.store.path, model=MODEL)
    assert col.store.path.is_file() and len(col) == 8


def test_the_look_alikes_of_a_file(shapes):
    col, folder = shapes
    res = col.nearest(folder / "red" / "0.png", k=3)
    assert len(res) == 3 and res.model == MODEL and res.metric == "Cosine"
    assert all(os.sep + "red" + os.sep in path for path in res.paths)
    assert str(folder / "red" / "0.png") not in res.paths   # a reference is left out ...
    assert list(res.distances) == sorted(res.distances)        # ... and the nearest come first
    both = col.nearest(folder / "red" / "0.png", k=3, include_references=True)
    assert both.paths[0] == str(folder / "red" / "0.png") and both.distances[0] < 1e-6


def test_the_look_alikes_of_several_files(shapes):
    col, folder = shapes
    refs = [folder / "red" / "0.png", folder / "blue" / "0.png"]
    res = col.nearest(refs, k=6)                 # distance: to the nearest of the references
    assert res.references == [str(r) for r in refs]
    for path, nearest in zip(res.paths, res.nearest_references):
        assert os.path.dirname(path) == os.path.dirname(nearest)


def test_the_look_alikes_of_a_vector(shapes):
    col, folder = shapes
    ids, vectors = col.vectors()                  # one row per image, ids sorted
    res = col.nearest(vectors[0], k=2)            # a vector is not an image: never left out
    assert res.ids[0] == ids[0] and res.distances[0] < 1e-6
    assert res.references == ["vector 0"]


def test_the_look_alikes_of_image_bytes(shapes):
    col, folder = shapes
    data = (folder / "blue" / "2.png").read_bytes()   # an upload, say: no file needed
    res = col.nearest(data, k=3)
    assert res.references == ["uploaded image"]
    same = col.nearest(folder / "blue" / "2.png", k=3, include_references=True)
    assert res.paths == same.paths
    np.testing.assert_allclose(res.distances, same.distances, atol=1e-6)
    assert col.nearest(data, k=1, name="disc.png").references == ["disc.png"]


def test_the_look_alikes_of_images_given_by_id(shapes):
    col, folder = shapes
    total, rows = col.images(limit=2)             # the catalogue, a page at a time
    res = col.nearest_to_ids([rows[0]["id"]], k=3)
    assert res.paths == col.nearest(rows[0]["path"], k=3).paths
    assert res.references == [rows[0]["path"]]


def test_every_image_ranked(shapes):
    col, folder = shapes
    res = col.nearest(folder / "red" / "1.png", k=None)
    assert len(res) == 7
    assert {os.path.basename(os.path.dirname(p)) for p in res.paths[:3]} == {"red"}


def test_metrics(shapes):
    col, folder = shapes
    for metric in lookalike.METRICS:              # Orange's distances, by name in any case
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lookalike.LookalikeWarning)
            res = col.nearest(folder / "red" / "0.png", k=2, metric=metric.lower())
        assert res.metric == metric and len(res) == 2


def test_a_category_filter(shapes):
    col, folder = shapes
    assert col.categories() == {"blue": 4, "red": 4}
    res = col.nearest(folder / "red" / "0.png", k=None, category="blue")
    assert len(res) == 4 and {r["category"] for r in res.rows} == {"blue"}


def test_approximate_search(shapes):
    col, folder = shapes
    exact = col.nearest(folder / "red" / "0.png", k=3)
    for approximate in (True, "scan", "ivf", "ivfpq"):  # FAISS candidates, re-ranked exactly
        res = col.nearest(folder / "red" / "0.png", k=3, approximate=approximate)
        assert res.paths == exact.paths
        assert res.method == (approximate if isinstance(approximate, str) else "scan")
        np.testing.assert_allclose(res.distances, exact.distances, rtol=1e-6)
    assert (folder.parent / "shapes.db.faiss").is_dir()   # kept beside the database


def test_results_and_the_collection_written_out(shapes, tmp_path):
    col, folder = shapes
    res = col.nearest(folder / "red" / "0.png", k=3)
    records = res.to_records()
    assert [tuple(r)[:len(RECORD_FIELDS)] for r in records] == [RECORD_FIELDS] * 3
    assert [r["path"] for r in records] == res.paths
    assert [r["path"] for r in json.loads(res.to_json())] == res.paths
    assert res.to_csv().splitlines()[0].startswith("rank,path,distance,")
    report = col.export(tmp_path / "shapes.csv")  # every image with its vector
    assert report.rows == 8 and report.model == MODEL and report.dim == col.vectors()[1].shape[1]


def test_a_result_as_a_data_frame(shapes):
    col, folder = shapes
    frame = col.nearest(folder / "red" / "0.png", k=3).to_pandas()
    assert list(frame.columns[:len(RECORD_FIELDS)]) == list(RECORD_FIELDS)
    assert frame["rank"].tolist() == [1, 2, 3]


def test_errors(shapes, tmp_path):
    col, folder = shapes
    with pytest.raises(BadReferenceError, match="no such file"):
        col.nearest(tmp_path / "missing.png")
    with pytest.raises(BadReferenceError, match="uploaded image: "):
        col.nearest(b"not an image")
    with pytest.raises(UnknownCategory, match="the nearest are 'blue'"):
        col.nearest(folder / "red" / "0.png", category="bleu")
    assert issubclass(UnknownCategory, lookalike.LookalikeError)


def test_notes(shapes):
    col, folder = shapes
    with pytest.warns(lookalike.LookalikeWarning, match="Mahalanobis distances are unreliable"):
        res = col.nearest(folder / "red" / "0.png", k=2, metric="mahalanobis")
    assert res.notes and res.notes[0].startswith("Mahalanobis distances are unreliable")


# -- several Collections on one database ------------------------------------------------------

def test_collections_on_one_database_can_share_what_they_load(shapes, tmp_path):
    """A server answers requests on one Collection while another warms up on a connection of
    its own: what the second loads and counts, the first uses."""
    col, folder = shapes
    with lookalike.Collection.open(col.store.path, share_with=col) as side:
        ids, matrix = side.vectors()
        assert col.vectors()[1] is matrix and side.models == col.models
        assert side.nearest(folder / "red" / "0.png", k=3).paths == \
            col.nearest(folder / "red" / "0.png", k=3).paths
    with lookalike.Collection.create(tmp_path / "other.db") as other, \
            pytest.raises(ValueError, match="share_with is open on"):
        lookalike.Collection(other.store, share_with=col)


# -- repr --------------------------------------------------------------------------------------

def test_a_collection_says_where_it_is_and_what_it_holds(photos, tmp_path):
    col, files, root = photos
    assert repr(col) == f"<Collection {str(root / 'photos.db')!r}: 18 images, models: {MODEL} (18)>"
    with lookalike.Collection.create(tmp_path / "empty.db") as empty:
        assert repr(empty) == f"<Collection {str(tmp_path / 'empty.db')!r}: 0 images, models: none>"


def test_a_collections_repr_counts_once_per_change(photos):
    """A repr is shown often (every echo in a notebook): its counts are not made again."""
    col, files, root = photos
    repr(col)
    statements = []
    col.store.conn.set_trace_callback(statements.append)
    try:
        repr(col)
        repr(col)
    finally:
        col.store.conn.set_trace_callback(None)
    assert not [s for s in statements if "count(" in s.lower()], statements


def test_a_result_says_what_it_is(photos):
    col, files, root = photos
    res = col.nearest([files[("chelsea", "orig")], files[("rocket", "orig")]], k=5)
    first = os.path.basename(res.paths[0])
    assert repr(res) == (f"<Neighbors of 2 references by {MODEL}, Cosine: 5 images, "
                         f"nearest {res.distances[0]:.4g} ({first})>")
    one = col.nearest(files[("chelsea", "orig")], k=1, metric="euclidean")
    assert re.fullmatch(rf"<Neighbors of 1 reference \(orig\.jpg\) by {MODEL}, Euclidean: "
                        r"1 image, nearest [0-9.e+-]+ \((bright|small|crop)\.jpg\)>", repr(one))
    none = Neighbors(rows=[], distances=np.zeros(0), model="m", metric="Cosine",
                     references=["data:image/png;base64,AAAA"])
    assert repr(none) == "<Neighbors of 1 reference (data:image/png) by m, Cosine: 0 images>"


# -- in Jupyter ----------------------------------------------------------------------------------

def test_a_result_is_a_strip_of_thumbnails_with_rank_and_distance(photos):
    col, files, root = photos
    refs = [files[("chelsea", "orig")], files[("coffee", "orig")]]
    res = col.nearest(refs, k=None)
    html = res._repr_html_()
    page = Page(html)
    assert len(page.images) == len(res) == 16
    for im in page.images:
        thumb = picture(im["src"])
        assert max(thumb.size) <= 96
    assert max(picture(page.images[0]["src"]).size) == 96          # photos are made smaller
    by_name = {im["alt"]: picture(im["src"]) for im in page.images}
    clear = by_name["clear.png"]
    assert clear.format == "PNG" and clear.size == (40, 30)          # not enlarged
    text = " ".join(page.texts)
    for rank, d in enumerate(res.distances, 1):
        assert f"#{rank} · {d:.4f}" in text
    assert ODD + ".jpg" in text                                  # escaped in, read back intact
    assert "<b>" not in html and "&lt;b&gt;bold&lt;b&gt; &amp; &quot;quoted&quot;" in html
    assert repr(res) in text
    chelsea_variant = [t for t in page.titles if "chelsea" + os.sep + "bright.jpg" in t]
    assert chelsea_variant == [f"{files[('chelsea', 'bright')]}\nnearest to {refs[0]}"]
    # Both references are orig.jpg: they are numbered, each look-alike names its number.
    assert f"reference 1: {refs[0]}" in text and f"reference 2: {refs[1]}" in text
    numbers = re.findall(r"nearest to ref\. (\d)", text)
    assert numbers == [str(i + 1) for i in res.reference_index]
    assert "nearest to ref" not in col.nearest(refs[0], k=3)._repr_html_()
    assert not re.search(r"\bsrc=\"(?!data:)", html)                     # self-contained


def test_an_unreadable_image_is_a_note_in_the_strip(photos, tmp_path):
    col, files, root = photos
    res = col.nearest(files[("rocket", "orig")], k=3)
    rows = [dict(res.rows[0], path=str(tmp_path / "gone.jpg")), res.rows[1],
            dict(res.rows[2], path=str(tmp_path))]
    broken = Neighbors(rows=rows, distances=res.distances, model=res.model, metric=res.metric,
                       references=res.references)
    page = Page(broken._repr_html_())
    assert len(page.images) == 1
    text = " ".join(page.texts)
    assert "cannot be read: No such file or directory" in text
    assert "cannot be read: not a regular file" in text


def test_a_long_result_shows_its_first_images_and_says_how_many_more(photos):
    col, files, root = photos
    res = col.nearest(files[("rocket", "orig")], k=2)
    many = Neighbors(rows=res.rows * 40, distances=np.repeat(res.distances, 40), model=res.model,
                     metric=res.metric, references=res.references)
    page = Page(many._repr_html_())
    assert len(page.images) == HTML_IMAGES == 50
    assert "… and 30 more" in " ".join(page.texts)


def test_thumbnails_never_wait_on_a_named_pipe(tmp_path):
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)
    with pytest.raises(images.ImageSkipped, match="not a regular file"):
        thumbnails.data_url(str(pipe), 96)


# -- errors ------------------------------------------------------------------------------------

def test_a_reference_that_cannot_be_used_is_a_bad_reference(photos, tmp_path):
    col, files, root = photos
    (tmp_path / "notes.jpg").write_text("not an image")
    for ref, reason in [(tmp_path / "missing.jpg", "no such file"), (tmp_path, "is a folder"),
                        (tmp_path / "notes.jpg", "not an image"),
                        ("https://example.org/x.jpg", "must be indexed first")]:
        with pytest.raises(BadReferenceError, match=reason):
            col.nearest(ref, k=1)
    with pytest.raises(BadReferenceError, match="not in the collection"):
        col.nearest_to_ids([10**9], k=1)
    assert issubclass(BadReferenceError, lookalike.LookalikeError)


# -- the README ----------------------------------------------------------------------------------

@pytest.mark.slow  # over a second on the 2-core machine
def test_the_readme_names_only_files_that_come_with_it():
    """A newcomer reads the README alone: every file it points to is in the repository."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(top, "README.md"), encoding="utf-8") as f:
        text = f.read()
    present = set()
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        present.update(os.path.relpath(os.path.join(folder, n), top) for n in names)
    named = {n.removeprefix("./") for n in re.findall(r"[\w./-]+\.(?:md|py|sh|toml)\b", text)}
    missing = {n for n in named if not any(p == n or p.endswith("/" + n) for p in present)}
    assert not missing, missing
