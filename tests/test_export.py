"""Exports as a user reads them back: CSV, JSON, Parquet, NumPy and Orange's .tab, from the
API and from the command line."""

import ast
import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lookalike
from imagefactory import write_bad_files
from lookalike.analysis.quality import FLAGS
from lookalike.api import RECORD_FIELDS, Neighbors
from lookalike.catalogue.store import ImageRow, Store
from lookalike.errors import LookalikeError
from lookalike.formats import export
from test_indexing import photo_families

MODEL = "squeezenet"

#: File names that a .tab must carry: a tab, a newline, both quote characters, '#' (a URL
#: fragment to Orange's Image Viewer), unicode, spaces.
ODD_NAMES = ["tab\there", "new\nline", "quote \"q\" 'x'", "hash #1", "ünï 写真", "it's 'a' 'b' 'c'"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    root = tmp / "photos"
    files = photo_families(root)
    coffee = Image.open(files[("coffee", "orig")])
    (root / "odd names").mkdir()
    for name in ODD_NAMES:
        coffee.rotate(len(name)).save(root / "odd names" / f"{name}.jpg")
    write_bad_files(root / "bad")
    col = lookalike.Collection.index([root], db=tmp / "c.db", model=MODEL)
    assert col.last_report.skipped, "the bad files must be skipped"
    yield col, root, files, tmp
    col.close()


def catalogue(col):
    """Usable images by id, as the catalogue has them."""
    ids, _ = col.vectors()
    return {r["id"]: r for r in col.store.rows(ids)}


# -- an independent reader that follows Orange's rules (Orange.data.io, io_base) -------------

ORANGE_TYPES = {"continuous", "c", "numeric", "n", "discrete", "d", "categorical", "string", "s",
                "text", "time", "t", ""}
ORANGE_MISSING = {"?", "nan", ".", "", "NA", "~"}


def orange_flags(cell):
    """Orange's Flags: split on unescaped spaces; key=value, the value evaluated as a Python
    literal unless it starts with a letter or '_' (kept as text if that fails to parse)."""
    flags, attributes = set(), {}
    for item in (i.replace("\\ ", " ") for i in re.split(r"(?<!\\) ", cell)):
        item = item.strip()
        if not item:
            continue
        assert re.match(r"^(class|c|ignore|i|meta|m|weight|w|.+?=.*?)$", item), item
        if "=" in item:
            key, value = item.split("=", 1)
            if not re.match(r"^[a-zA-Z_]", value):
                try:
                    value = ast.literal_eval(value)
                except SyntaxError:
                    pass
            attributes[key] = value
        else:
            flags.add(item)
    return flags, attributes


def read_orange_tab(path):
    """(columns, rows): columns as dicts name/type/flags/attributes, rows as lists of str,
    read as Orange's TabReader does: the quote character sniffed from the first ten lines,
    three header rows, every value stripped, rows with no value dropped."""
    with open(path, newline="", encoding="utf-8") as f:
        sample = "".join(f.readline() for _ in range(10))
        try:
            dialect = csv.Sniffer().sniff(sample, "\t")
            delimiter, quotechar = dialect.delimiter, dialect.quotechar
        except csv.Error:
            delimiter, quotechar = "\t", '"'
        f.seek(0)
        lines = list(csv.reader(f, delimiter=delimiter, quotechar=quotechar,
                               skipinitialspace=True))
    assert quotechar == '"' and delimiter == "\t", (quotechar, delimiter)
    names, types, flag_cells = lines[:3]
    assert all(t.strip() in ORANGE_TYPES for t in types), types
    columns = []
    for name, type_, cell in zip(names, types, flag_cells):
        flags, attributes = orange_flags(cell)
        columns.append({"name": name, "type": type_, "flags": flags, "attributes": attributes})
    rows = [[v.strip() for v in row] for row in lines[3:] if any(row)]
    assert all(len(row) == len(columns) for row in rows)
    return columns, rows


def tab_column(columns, rows, name):
    i = [c["name"] for c in columns].index(name)
    return columns[i], [row[i] for row in rows]


# -- Neighbors -----------------------------------------------------------------------------

def test_neighbors_csv_round_trips_through_the_csv_module(collection, tmp_path):
    col, root, files, _ = collection
    res = col.nearest(files[("coffee", "orig")], k=None)
    assert res.to_csv(tmp_path / "n.csv") is None
    with open(tmp_path / "n.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == RECORD_FIELDS
    records = res.to_records()
    assert len(rows) == len(records) == len(col) - 1
    for row, rec in zip(rows, records):
        assert row["path"] == rec["path"] and row["name"] == rec["name"]
        assert float(row["distance"]) == rec["distance"]            # exact, not rounded
        assert int(row["rank"]) == rec["rank"] and int(row["id"]) == rec["id"]
        assert (row["category"] or None) == rec["category"]
    assert {r["name"] for r in rows} >= set(ODD_NAMES)
    assert res.to_csv() == (tmp_path / "n.csv").read_bytes().decode("utf-8")  # text when no path


def test_neighbors_json_round_trips(collection, tmp_path):
    col, root, files, _ = collection
    res = col.nearest(files[("rocket", "orig")], k=5)
    res.to_json(tmp_path / "n.json")
    back = json.loads((tmp_path / "n.json").read_text(encoding="utf-8"))
    assert back == res.to_records() == json.loads(res.to_json())
    assert [r["rank"] for r in back] == [1, 2, 3, 4, 5]
    assert set(back[0]) == set(RECORD_FIELDS)


def test_neighbors_to_pandas_and_parquet(collection, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    col, root, files, _ = collection
    res = col.nearest([files[("chelsea", "orig")], files[("astronaut", "orig")]], k=None)
    df = res.to_pandas()
    assert list(df.columns) == list(RECORD_FIELDS)
    assert df["distance"].is_monotonic_increasing and len(df) == len(col) - 2
    assert df["rank"].tolist() == list(range(1, len(df) + 1))
    assert str(df["width"].dtype) == "int64" and str(df["distance"].dtype) == "float64"
    assert df["path"].tolist() == res.paths

    res.to_parquet(tmp_path / "n.parquet")
    back = pd.read_parquet(tmp_path / "n.parquet")
    assert back["path"].tolist() == res.paths
    assert back["distance"].tolist() == [float(d) for d in res.distances]
    assert back["id"].tolist() == res.ids
    meta = json.loads(pq.read_schema(tmp_path / "n.parquet").metadata[b"lookalike"])
    assert meta["model"] == MODEL and meta["metric"] == res.metric
    assert meta["references"] == [str(files[("chelsea", "orig")]),
                                  str(files[("astronaut", "orig")])]
    with pytest.raises(LookalikeError, match="file path"):
        export.write_neighbors(res, "parquet", None)


def test_neighbors_tab_opens_as_orange_import_images_plus_distance(collection, tmp_path):
    col, root, files, _ = collection
    res = col.nearest(files[("coffee", "orig")], k=None)
    res.to_tab(tmp_path / "n.tab")
    assert res.to_tab() == (tmp_path / "n.tab").read_text(encoding="utf-8")
    columns, rows = read_orange_tab(tmp_path / "n.tab")
    by_name = {c["name"]: c for c in columns}
    image, values = tab_column(columns, rows, "image")
    assert image["type"] == "string" and image["flags"] == {"meta"}
    assert image["attributes"] == {"type": "image", "origin": str(root)}
    records = res.to_records()
    assert [os.path.join(image["attributes"]["origin"], v) for v in values] == \
        [r["path"] for r in records]
    # Import Images writes paths relative to origin; we do too where Image Viewer's QUrl
    # reads them right (not "hash #1.jpg": '#' starts a URL fragment).
    names = [r["name"] for r in records]
    assert values[names.index("bright")] == os.path.join("coffee", "bright.jpg")
    assert os.path.isabs(values[names.index("hash #1")])
    assert by_name["category"]["flags"] == {"class"} and by_name["category"]["type"] == "discrete"
    for name in ["distance", "rank", "width", "height", "size", "id"]:
        assert by_name[name]["type"] == "continuous" and by_name[name]["flags"] == {"meta"}
    assert by_name["image name"]["type"] == "string" and by_name["image name"]["flags"] == {"meta"}
    _, distances = tab_column(columns, rows, "distance")
    assert [float(d) for d in distances] == [r["distance"] for r in records]
    _, names = tab_column(columns, rows, "image name")
    assert names == [r["name"] for r in records]                  # tabs, newlines, quotes
    _, categories = tab_column(columns, rows, "category")
    assert categories == [r["category"] or "" for r in records]


def test_tab_origin_with_spaces_and_control_characters_reads_back(tmp_path):
    for origin in ["/data/my photos", "/data/tab\there", "/data/new\nline", "/data/back\\ slash",
                   "/data/it's", "/data/ends with space ", "C:\\Users\\me\\Pictures"]:
        cell = export.orange_flags(["meta"], {"type": "image", "origin": origin})
        assert orange_flags(cell) == ({"meta"}, {"type": "image", "origin": origin}), cell
        assert "\n" not in cell
    # Orange's own way where it reads back: plain text, spaces escaped.
    assert export.orange_flags(["meta"], {"origin": "/data/my photos"}) == \
        "meta origin=/data/my\\ photos"


def test_image_values_relative_to_origin_where_orange_resolves_them():
    # Checked against Qt's QUrl as Image Viewer uses it: '#', '?', '%' and ':' break a
    # relative path; tabs, quotes and unicode do not.
    paths = ["/p/a/x.jpg", "/p/b/y #1.jpg", "/p/b/z:1.jpg", "https://example.org/i.png",
             "/p/a/ü é.jpg", "/p/a/100%.jpg", "/p/a/q?.jpg", "/p/a/t\tx 'y'.jpg"]
    origin = export.orange_origin(paths, ["/p"] * len(paths))
    assert origin == "/p"
    assert [export.orange_image_value(p, origin) for p in paths] == \
        ["a/x.jpg", "/p/b/y #1.jpg", "/p/b/z:1.jpg", "https://example.org/i.png", "a/ü é.jpg",
         "/p/a/100%.jpg", "/p/a/q?.jpg", "a/t\tx 'y'.jpg"]
    assert export.orange_origin(["/p/a/x.jpg", "/q/y.jpg"], [None, None]) == "/"
    assert export.orange_origin(["https://example.org/i.png"], [None]) is None


def test_extras_become_columns_in_every_format(tmp_path):
    import pyarrow.parquet as pq

    rows = [{"id": 1, "path": "/p/a.jpg", "root": "/p", "name": "a", "category": None, "width": 2,
             "height": 3, "size": 10, "extras": {"label": "cat", "score": 0.5, "name": "clash"}},
            {"id": 2, "path": "/p/b.jpg", "root": "/p", "name": "b", "category": None, "width": 2,
             "height": 3, "size": 11, "extras": {"label": None, "score": 2}}]
    res = Neighbors(rows=rows, distances=np.array([0.25, 0.5]), model="m", metric="Cosine")
    records = res.to_records()
    assert records[0]["label"] == "cat" and records[1]["score"] == 2
    assert records[0]["name"] == "a" and records[0]["name (1)"] == "clash"
    header = next(csv.reader(io.StringIO(res.to_csv())))
    assert header == list(RECORD_FIELDS) + ["label", "score", "name (1)"]
    assert res.to_pandas()["score"].tolist() == [0.5, 2.0]
    res.to_parquet(tmp_path / "x.parquet")
    assert pq.read_table(tmp_path / "x.parquet").column("label").to_pylist() == ["cat", None]
    res.to_tab(tmp_path / "x.tab")
    columns, table = read_orange_tab(tmp_path / "x.tab")
    label, values = tab_column(columns, table, "label")
    assert label["type"] == "string" and label["flags"] == {"meta"} and values == ["cat", ""]
    score, values = tab_column(columns, table, "score")
    assert score["type"] == "continuous" and values == ["0.5", "2"]
    assert "category" not in [c["name"] for c in columns]   # no category: no class, as in Orange


# -- whole collections -----------------------------------------------------------------------

def test_export_csv_has_every_usable_image_with_its_vector(collection, tmp_path):
    col, root, files, _ = collection
    report = col.export(tmp_path / "all.csv")
    ids, matrix = col.vectors()
    assert (report.rows, report.model, report.dim, report.format) == (len(col), MODEL, 1000, "csv")
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    # The quality flags, measured while indexing, come after the catalogue (test_analyze.py)
    assert header[:7 + len(FLAGS)] == list(export.CATALOGUE_FIELDS) + list(FLAGS)
    assert header[7 + len(FLAGS):] == [f"f{j}" for j in range(1000)]
    assert [int(r[0]) for r in rows[1:]] == ids.tolist()
    back = np.array([[float(v) for v in r[7 + len(FLAGS):]] for r in rows[1:]], np.float32)
    assert np.array_equal(back, matrix)                          # float32 exactly
    cat = catalogue(col)
    assert [r[1] for r in rows[1:]] == [cat[i]["path"] for i in ids]
    assert not any("/bad/" in r[1] for r in rows[1:])           # skipped files are left out


def test_export_tab_loads_as_orange_image_embedding_output(collection, tmp_path):
    col, root, files, _ = collection
    col.export(tmp_path / "all.tab")
    columns, rows = read_orange_tab(tmp_path / "all.tab")
    features = [c for c in columns if c["name"].startswith("f") and c["name"][1:].isdigit()]
    assert len(features) == 1000
    assert all(c["type"] == "continuous" and not c["flags"] for c in features)
    image, values = tab_column(columns, rows, "image")
    assert image["flags"] == {"meta"} and image["attributes"]["type"] == "image"
    ids, matrix = col.vectors()
    cat = catalogue(col)
    assert [os.path.join(image["attributes"]["origin"], v) for v in values] == \
        [cat[i]["path"] for i in ids]
    first = [c["name"] for c in columns].index("f0")
    back = np.array([[float(v) for v in row[first:]] for row in rows], np.float32)
    assert np.array_equal(back, matrix)
    category, _ = tab_column(columns, rows, "category")
    assert category["flags"] == {"class"}


def test_export_json_parquet_and_npz(collection, tmp_path):
    import pyarrow.parquet as pq

    col, root, files, _ = collection
    ids, matrix = col.vectors()
    cat = catalogue(col)

    col.export(tmp_path / "all.json")
    back = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in back] == ids.tolist()
    assert set(back[0]) == set(export.CATALOGUE_FIELDS) | set(FLAGS) | {"vector"}
    assert np.array_equal(np.array([r["vector"] for r in back], np.float32), matrix)
    assert [r["path"] for r in back] == [cat[i]["path"] for i in ids]
    assert back[0]["width"] == cat[ids[0]]["width"]

    col.export(tmp_path / "all.parquet")
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.column("id").to_pylist() == ids.tolist()
    assert np.array_equal(np.array(table.column("vector").to_pylist(), np.float32), matrix)
    assert json.loads(table.schema.metadata[b"lookalike"]) == {"model": MODEL, "dim": 1000}

    col.export(tmp_path / "all.npz")
    with np.load(tmp_path / "all.npz") as npz:               # no pickles needed
        assert np.array_equal(npz["ids"], ids) and np.array_equal(npz["vectors"], matrix)
        assert npz["vectors"].dtype == np.float32
        assert npz["paths"].tolist() == [cat[i]["path"] for i in ids]
        assert str(npz["model"]) == MODEL


def test_export_without_vectors_and_bad_requests(collection, tmp_path):
    col, root, files, _ = collection
    report = col.export(tmp_path / "cat.csv", vectors=False)
    assert report.model is None and report.dim == 0 and report.rows == len(col)
    header = (tmp_path / "cat.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(export.CATALOGUE_FIELDS + FLAGS)
    col.export(tmp_path / "cat.json", vectors=False)
    assert "vector" not in json.loads((tmp_path / "cat.json").read_text(encoding="utf-8"))[0]
    with pytest.raises(LookalikeError, match="npz"):
        col.export(tmp_path / "x.npz", vectors=False)
    with pytest.raises(LookalikeError, match="extension"):
        col.export(tmp_path / "x.txt")
    with pytest.raises(LookalikeError, match="unknown format"):
        col.export(tmp_path / "x.csv", "xlsx")
    with pytest.raises(LookalikeError, match="does not exist"):
        col.export(tmp_path / "nowhere" / "x.csv")
    with pytest.raises(LookalikeError, match="vector"):
        col.export(tmp_path / "x.csv", model="mobilenet-v2")
    assert sorted(os.listdir(tmp_path)) == ["cat.csv", "cat.json"]    # nothing half-written


@pytest.mark.slow
def test_export_of_a_large_collection_in_chunks(tmp_path):
    """5,000 images with 1280-d vectors (written straight into a store), exported in chunks."""
    n, dim = 5000, 1280
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    db = tmp_path / "big.db"
    with Store(db) as store:
        rows = [ImageRow(locator=f"/big/c{i % 7}/img{i}.png".encode(),
                         path=f"/big/c{i % 7}/img{i}.png",
                         root="/big", name=f"img{i}", category=f"c{i % 7}", size=1000 + i,
                         mtime_ns=0, width=32, height=32, content_hash=i.to_bytes(16, "little"))
                for i in range(n)]
        store.write(rows, [(r.content_hash, "efficientnet-lite0", v) for r, v in zip(rows, matrix)])
    with lookalike.Collection.open(db) as col:
        ids, stored = col.vectors()
        assert np.array_equal(stored, matrix)
        for fmt in ["csv", "tab", "parquet"]:
            report = export.export_collection(col, tmp_path / f"big.{fmt}", chunk_rows=700)
            assert report.rows == n and report.dim == dim
        with open(tmp_path / "big.csv", newline="") as f:
            lines = list(csv.reader(f))
        assert len(lines) == n + 1
        assert np.array_equal(np.array(lines[4321][7:], np.float32), stored[4320])
        columns, table = read_orange_tab(tmp_path / "big.tab")
        assert len(table) == n
        image, values = tab_column(columns, table, "image")
        assert image["attributes"]["origin"] == "/big" and values[0] == "c0/img0.png"
        assert np.array_equal(np.array(table[-1][-dim:], np.float32), stored[-1])


# -- the command line ------------------------------------------------------------------------

def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "lookalike", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_line_error(proc, status, *words):
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow
def test_cli_similar_writes_every_format(collection, tmp_path):
    col, root, files, tmp = collection
    db, ref = col.store.path, files[("coffee", "orig")]
    tab = run("similar", ref, "--db", db, "-k", 4, "--format", "tab").stdout
    (tmp_path / "stdout.tab").write_text(tab, encoding="utf-8")
    columns, rows = read_orange_tab(tmp_path / "stdout.tab")
    assert len(rows) == 4 and "image" in [c["name"] for c in columns]

    out = run("similar", ref, "--db", db, "-k", 4, "--output", tmp_path / "n.parquet")
    assert "wrote 4 look-alikes" in out.stdout                 # format from the extension
    import pandas as pd

    assert len(pd.read_parquet(tmp_path / "n.parquet")) == 4
    run("similar", ref, "--db", db, "-k", 4, "--format", "csv", "-o", tmp_path / "n.txt")
    with open(tmp_path / "n.txt", newline="") as fh:
        assert list(csv.DictReader(fh))[0]["rank"] == "1"
    run("similar", ref, "--db", db, "-k", 2, "--output", tmp_path / "n.tab")
    assert read_orange_tab(tmp_path / "n.tab")[1][0][0] == "coffee"
    table = run("similar", ref, "--db", db, "-k", 2, "-o", tmp_path / "t.txt")
    assert "rank" in (tmp_path / "t.txt").read_text() and "wrote 2" in table.stdout

    one_line_error(run("similar", ref, "--db", db, "--format", "parquet", check=False), 2,
                   "--output")
    one_line_error(run("similar", ref, "--db", db, "-o", tmp_path / "n.npz", check=False), 2,
                   "npz")
    one_line_error(run("similar", ref, "--db", db, "--format", "csv", "-o",
                       tmp_path / "no" / "x.csv", check=False), 1, "does not exist")


@pytest.mark.slow  # over a second on the 2-core machine
def test_cli_export(collection, tmp_path):
    col, root, files, tmp = collection
    db = col.store.path
    out = run("export", "--db", db, "--output", tmp_path / "all.npz", "-q")
    assert f"wrote {len(col):,} images, {MODEL} vectors of 1000 dimensions" in out.stdout
    with np.load(tmp_path / "all.npz") as npz:
        assert npz["vectors"].shape == (len(col), 1000)
    run("export", "--db", db, "--format", "tab", "--output", tmp_path / "all.txt",
        "--model", MODEL, "-q")
    columns, rows = read_orange_tab(tmp_path / "all.txt")
    assert len(rows) == len(col) and len(columns) == 7 + len(FLAGS) + 1000
    out = run("export", "--db", db, "--format", "csv", "--no-vectors", "-o", tmp_path / "c.csv")
    assert "wrote" in out.stdout and "vectors" not in out.stdout
    header = (tmp_path / "c.csv").read_text().splitlines()[0]
    assert header == ",".join(export.CATALOGUE_FIELDS + FLAGS)

    one_line_error(run("export", "--db", db, "-o", tmp_path / "x.npz", "--no-vectors",
                       check=False), 2, "npz")
    one_line_error(run("export", "--db", db, "-o", tmp_path / "x.xlsx", check=False), 1,
                   "extension")
    one_line_error(run("export", "--db", tmp_path / "none.db", "-o", tmp_path / "x.csv",
                       check=False), 1, "no collection")
    one_line_error(run("export", "--db", db, "-o", tmp_path / "x.csv", "--model", "mobilenet-v2",
                       check=False), 1, "mobilenet-v2")


# -- several references: which one each look-alike is nearest to -------------------------------

def nearest_of(col, refs, records, metric="cosine"):
    """The reference each record is nearest to, by brute force over the stored vectors."""
    ids, matrix = col.vectors()
    row = {int(i): n for n, i in enumerate(ids)}
    ref_vectors = matrix[[row[col.store.find(os.fsencode(str(r)))["id"]] for r in refs]]
    d = lookalike.distances(ref_vectors, matrix[[row[r["id"]] for r in records]], metric)
    return [str(refs[i]) for i in d.argmin(0)]


@pytest.mark.parametrize("approximate", [False, "scan"])
def test_each_look_alike_names_the_reference_it_is_nearest_to(collection, tmp_path, approximate):
    col, root, files, _ = collection
    refs = [files[("chelsea", "orig")], files[("astronaut", "orig")]]
    res = col.nearest(refs, k=12, approximate=approximate)
    records = res.to_records()
    assert [r["nearest_reference"] for r in records] == nearest_of(col, refs, records) == \
        res.nearest_references
    by_category = {}
    for r in records:
        by_category.setdefault(r["category"], set()).add(r["nearest_reference"])
    assert by_category["chelsea"] == {str(refs[0])} and by_category["astronaut"] == {str(refs[1])}
    # The same in every format.
    rows = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert [r["nearest_reference"] for r in rows] == res.nearest_references
    assert [r["nearest_reference"] for r in json.loads(res.to_json())] == res.nearest_references
    assert res.to_pandas()["nearest_reference"].tolist() == res.nearest_references
    res.to_tab(tmp_path / "n.tab")
    columns, table = read_orange_tab(tmp_path / "n.tab")
    column, values = tab_column(columns, table, "nearest_reference")
    assert column["type"] == "string" and column["flags"] == {"meta"}
    assert values == res.nearest_references


def test_nearest_reference_of_vectors_and_of_image_ids(collection):
    col, root, files, _ = collection
    refs = [files[("rocket", "orig")], files[("coffee", "orig")]]
    by_path = col.nearest(refs, k=None)
    ids, matrix = col.vectors()
    ref_ids = [col.store.find(os.fsencode(str(r)))["id"] for r in refs]
    by_id = col.nearest_to_ids(ref_ids, k=None)
    assert by_id.to_records() == by_path.to_records()
    assert by_id.nearest_references == nearest_of(col, refs, by_id.to_records())
    vectors = matrix[np.searchsorted(ids, ref_ids)]
    by_vector = col.nearest(vectors, k=None, include_references=True)
    names = {str(refs[0]): "vector 0", str(refs[1]): "vector 1"}
    assert [r["nearest_reference"] for r in by_vector.to_records() if r["id"] not in ref_ids] == \
        [names[p] for p in by_path.nearest_references]
    assert col.nearest([vectors[0], str(refs[1])], k=3).references == ["vector 0", str(refs[1])]
    one = col.nearest(refs[0], k=3)
    assert one.nearest_references == [str(refs[0])] * 3


@pytest.mark.slow  # over a second on the 2-core machine
def test_cli_similar_says_which_reference_each_look_alike_is_nearest_to(collection):
    col, root, files, _ = collection
    db = col.store.path
    refs = [files[("chelsea", "orig")], files[("astronaut", "orig")]]
    records = json.loads(run("similar", *refs, "--db", db, "-k", 8, "--format", "json").stdout)
    assert [r["nearest_reference"] for r in records] == nearest_of(col, refs, records)
    assert {r["nearest_reference"] for r in records if r["category"] == "chelsea"} == {str(refs[0])}
    rows = list(csv.DictReader(io.StringIO(run("similar", *refs, "--db", db, "-k", 8, "--format",
                                               "csv").stdout)))
    assert [r["nearest_reference"] for r in rows] == [r["nearest_reference"] for r in records]
    # The table: a column when there are several references, by file name unless two share
    # one (here both are orig.jpg: whole paths).
    table = run("similar", *refs, "--db", db, "-k", 8).stdout.splitlines()
    assert "nearest reference" in table[1]
    assert any(str(refs[1]) in line for line in table[2:])
    single = run("similar", refs[0], "--db", db, "-k", 3).stdout.splitlines()
    assert "nearest reference" not in single[1]
    named = run("similar", files[("chelsea", "bright")], refs[1], "--db", db, "-k", 8).stdout
    assert "bright.jpg" in named.split("\n", 1)[1] and f"  {refs[1]}  " not in named
