"""The Python API as a data miner meets it in a notebook: what a collection and a result say
about themselves (repr), a result drawn as thumbnails (Jupyter's _repr_html_), and its errors."""

import base64
import io
import os
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import lookalike
from lookalike.api import HTML_IMAGES, BadReferenceError, Neighbors
from lookalike.ingest import decode as images
from lookalike.formats import thumbnails
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
    assert by_name["clear.png"].format == "PNG" and by_name["clear.png"].size == (40, 30)  # not enlarged
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
