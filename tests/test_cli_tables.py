"""`lookalike index TABLE` as a user runs it: a real process, a real table of paths and URLs
served by a real HTTP server; the table's columns in `similar` and `export`."""

import csv
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from imageserver import ImageServer, png_bytes
from test_cli import run
from test_tables import write_images

MODEL = "squeezenet"


@pytest.fixture(scope="module")
def served():
    with ImageServer() as server:
        yield server


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, served):
    tmp = tmp_path_factory.mktemp("cli-tables")
    write_images(tmp / "imgs", 3)
    urls = [served.add(f"/u{i}.png", png_bytes(seed=10 + i)) for i in range(2)]
    missing = served.url("/missing.png")
    table = tmp / "mixed.xlsx"
    pd.DataFrame({
        "picture": ["imgs/p0.png", "imgs/p1.png", "imgs/p2.png"] + urls + [missing],
        "kind": ["file", "file", "file", "web", "web", "web"],
        "quality": [1, 2, 3, 4, 5, 6],
        "note": ["a", "b", "c", "d", "e", "f"],
    }).to_excel(table, index=False)
    db = tmp / "t.db"
    proc = run("index", table, "--db", db, "--model", MODEL, "--quiet", "--category-column",
               "kind", "--download-retries", 0)
    return tmp, table, db, urls, missing, proc


def test_index_says_which_columns_it_used_and_what_it_skipped(indexed, served):
    tmp, table, db, urls, missing, proc = indexed
    out = proc.stdout
    assert (f"table {table}: 6 rows, images from column 'picture' (chosen: 100% of its values "
            "look like image files or URLs); category from 'kind'; kept as metadata: "
            "'quality', 'note'") in out
    assert "3 images named by URL" in out
    assert "downloaded         2" in out and "embedded           5" in out
    assert "skipped            1" in out and "download failed: HTTP 404 Not Found" in out
    skipped = json.loads(run("skipped", "--db", db, "--format", "json").stdout)
    assert skipped == [{"path": missing, "reason": "download failed: HTTP 404 Not Found"}]

    hits = sum(served.hits.values())
    again = run("index", table, "--db", db, "--model", MODEL, "--quiet", "--category-column",
                "kind", "--download-retries", 0).stdout
    assert "unchanged          5" in again and "embedded           0" in again
    assert served.hits["/u0.png"] == served.hits["/u1.png"] == 1       # from the cache
    assert sum(served.hits.values()) == hits + 1                        # the 404, tried again


@pytest.mark.slow  # over a second on the 2-core machine
def test_similar_shows_the_table_columns_in_every_format(indexed, tmp_path):
    tmp, table, db, urls, missing, proc = indexed
    ref = tmp / "imgs" / "p0.png"
    records = json.loads(run("similar", ref, "--db", db, "--all", "--format", "json").stdout)
    assert len(records) == 4
    by_path = {r["path"]: r for r in records}
    assert by_path[urls[0]]["quality"] == 4 and by_path[urls[0]]["note"] == "d"
    assert by_path[urls[0]]["category"] == "web" and by_path[urls[0]]["name"] == "u0"
    assert by_path[str(tmp / "imgs" / "p2.png")]["quality"] == 3

    rows = list(csv.DictReader(io.StringIO(
        run("similar", ref, "--db", db, "--all", "--format", "csv").stdout)))
    assert {r["path"]: r["note"] for r in rows} == {r["path"]: r["note"] for r in records}

    run("similar", ref, "--db", db, "--all", "--output", tmp_path / "n.parquet")
    back = pq.read_table(tmp_path / "n.parquet").to_pylist()
    assert {r["path"]: r["quality"] for r in back} == {r["path"]: r["quality"] for r in records}

    tab = run("similar", ref, "--db", db, "-k", 2, "--format", "tab").stdout.splitlines()
    names = next(csv.reader([tab[0]], delimiter="\t"))
    assert "quality" in names and "note" in names
    assert next(csv.reader([tab[1]], delimiter="\t"))[names.index("quality")] == "continuous"

    shown = run("similar", ref, "--db", db, "-k", 4).stdout.splitlines()
    assert shown[0] == "look-alikes by squeezenet, Cosine distance"
    assert shown[1].split() == ["rank", "distance", "category", "pixels", "size", "quality",
                                "note", "path"]
    assert any(line.endswith(urls[1]) and " e " in line for line in shown)


@pytest.mark.slow  # over a second on the 2-core machine
def test_export_has_the_table_columns(indexed, tmp_path):
    tmp, table, db, urls, missing, proc = indexed
    run("export", "--db", db, "--output", tmp_path / "all.csv", "--no-vectors", "--quiet")
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[-2:] == ["quality", "note"]
    assert {r["path"]: (r["category"], r["quality"]) for r in rows} == {
        str(tmp / "imgs" / "p0.png"): ("file", "1"), str(tmp / "imgs" / "p1.png"): ("file", "2"),
        str(tmp / "imgs" / "p2.png"): ("file", "3"), urls[0]: ("web", "4"), urls[1]: ("web", "5")}
    run("export", "--db", db, "--output", tmp_path / "all.json", "--quiet")
    exported = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert {r["path"]: r["note"] for r in exported}[urls[1]] == "e"
    assert all(len(r["vector"]) == 1000 for r in exported)


@pytest.mark.slow  # over a second on the 2-core machine
def test_an_exported_tab_indexes_again_as_the_same_collection(indexed, tmp_path):
    tmp, table, db, urls, missing, proc = indexed
    run("export", "--db", db, "--output", tmp / "all.tab", "--no-vectors", "--quiet")
    out = run("index", tmp / "all.tab", "--db", tmp_path / "again.db", "--model", MODEL,
              "--quiet").stdout
    assert "images from column 'image' (chosen: marked type=image); category from 'category' " \
           "(the class column)" in out
    assert "embedded           5" in out and "skipped            0" in out


@pytest.mark.slow  # over a second on the 2-core machine
def test_table_errors_are_one_line(indexed, tmp_path):
    tmp, table, db, urls, missing, proc = indexed
    wrong = run("index", table, "--db", tmp_path / "x.db", "--image-column", "photo",
                check=False)
    assert wrong.returncode == 1
    assert wrong.stderr == (f"lookalike: error: {table}: no column named 'photo' for "
                            "--image-column (its columns: 'picture', 'kind', 'quality', "
                            "'note')\n")
    folder = run("index", tmp / "imgs", "--db", tmp_path / "x.db", "--image-column", "x",
                 check=False)
    assert folder.returncode == 1 and "are for tables" in folder.stderr
    assert len(folder.stderr.splitlines()) == 1
    outside = run("similar", "https://example.org/cat.png", "--db", db, check=False)
    assert outside.returncode == 1 and "a reference URL must be indexed first" in outside.stderr
    bad = run("index", table, "--db", tmp_path / "x.db", "--download-timeout", "0", check=False)
    assert bad.returncode == 2 and "must be a positive number" in bad.stderr


def test_a_url_reference_in_the_collection(indexed):
    tmp, table, db, urls, missing, proc = indexed
    records = json.loads(run("similar", urls[0], "--db", db, "-k", 1, "--include-references",
                             "--format", "json").stdout)
    assert records[0]["path"] == urls[0] and records[0]["distance"] < 1e-5


def test_the_download_limit_is_in_mebibytes_like_the_librarys(served, tmp_path):
    """--download-limit 1 lets a 1,020,000-byte image through (1 MiB is 1,048,576 bytes; the
    option once counted millions of bytes) and skips a 1,100,000-byte one."""
    def padded(seed: int, size: int) -> bytes:
        data = png_bytes(seed=seed)
        return data + b"\0" * (size - len(data))   # Pillow ignores bytes after the PNG's end

    fits = served.add("/fits.png", padded(40, 1_020_000))
    too_big = served.add("/too-big.png", padded(41, 1_100_000))
    table = tmp_path / "urls.csv"
    table.write_text(f"image\n{fits}\n{too_big}\n")
    db = tmp_path / "u.db"
    run("index", table, "--db", db, "--model", MODEL, "--quiet", "--download-limit", 1,
        "--download-retries", 0)
    skipped = json.loads(run("skipped", "--db", db, "--format", "json").stdout)
    assert [entry["path"] for entry in skipped] == [too_big]
    assert "larger than" in skipped[0]["reason"] or "too large" in skipped[0]["reason"]
