"""Collections listed in tables: every format, Orange's headers, the image column, paths, URLs,
metadata kept with each image, incremental re-indexing."""

import base64
import io
import json
import os
import shutil

import pandas as pd
import pytest
from PIL import Image

import lookalike
from imagefactory import pattern
from imageserver import ImageServer, png_bytes
from lookalike.ingest.downloads import Downloader
from lookalike.ingest.folders import ImageFile, RemoteImage, Unreadable
from lookalike.ingest.tables import (
    TableError,
    TableOptions,
    choose_image_column,
    is_table,
    looks_like_image,
    read_table,
    table_images,
)

MODEL = "squeezenet"


def write_images(folder, n=4):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.png"
        Image.fromarray(pattern(seed=i)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def frame():
    return pd.DataFrame({"id": [1, 2, 3, 4], "file": [f"imgs/p{i}.png" for i in range(4)],
                         "label": ["cat", "dog", "cat", None], "score": [0.5, 1.0, None, 2.5]})


WRITERS = {
    "csv": lambda df, p: df.to_csv(p, index=False),
    "tsv": lambda df, p: df.to_csv(p, sep="\t", index=False),
    "xlsx": lambda df, p: df.to_excel(p, index=False),
    "parquet": lambda df, p: df.to_parquet(p),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_format_lists_its_images_with_the_other_columns(tmp_path, frame, kind):
    write_images(tmp_path / "imgs")
    table = tmp_path / f"photos.{kind}"
    WRITERS[kind](frame, table)
    assert is_table(table)
    info, items = table_images(table)
    assert info.image_column == "file" and info.rows == 4 and info.images == 4
    assert info.chosen_because == "100% of its values look like image files or URLs"
    assert info.extra_columns == ["id", "label", "score"]
    assert [i.path for i in items] == [str(tmp_path / "imgs" / f"p{i}.png") for i in range(4)]
    assert all(isinstance(i, ImageFile) and i.root == str(table) for i in items)
    extras = [json.loads(i.extras) for i in items]
    assert extras[0] == {"id": 1, "label": "cat", "score": 0.5}
    assert extras[2]["score"] is None and extras[3]["label"] is None
    assert type(extras[1]["id"]) is int


def test_the_category_column_and_a_base_folder(tmp_path, frame):
    write_images(tmp_path / "elsewhere" / "imgs")
    frame.to_csv(tmp_path / "t.csv", index=False)
    info, items = table_images(tmp_path / "t.csv", TableOptions(
        category_column="LABEL", base_dir=tmp_path / "elsewhere"))   # names match in any case
    assert info.category_column == "label" and info.extra_columns == ["id", "score"]
    assert [i.category for i in items] == ["cat", "dog", "cat", None]
    assert items[0].path == str(tmp_path / "elsewhere" / "imgs" / "p0.png")
    assert "label" not in json.loads(items[0].extras)


def test_missing_files_empty_cells_and_repeated_rows(tmp_path):
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "t.csv").write_text(
        "image,note\nimgs/p0.png,a\n,no image\nimgs/p1.png,b\nimgs/nope.png,c\n?,d\n"
        "imgs/p0.png,again\ngopher://example.org/x.png,e\n", encoding="utf-8")
    info, items = table_images(tmp_path / "t.csv")
    assert (info.images, info.without_image, info.duplicates) == (4, 2, 1)
    missing = [i for i in items if isinstance(i, Unreadable)]
    assert [(os.path.basename(m.path), m.reason) for m in missing] == [
        ("nope.png", "no such file (named in the table)"),
        ("x.png", "no file system for gopher:// URLs is known to fsspec")]
    assert json.loads(items[0].extras) == {"note": "a"}   # the first row of a repeated image


def test_urls_become_remote_images_named_by_their_path(tmp_path):
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    pd.DataFrame({"Image": ["https://example.org/bones/Knee%201.jpg?x=1", data_url],
                  "healed": [True, False]}).to_excel(tmp_path / "bones.xlsx", index=False)
    info, items = table_images(tmp_path / "bones.xlsx")
    assert info.image_column == "Image" and info.urls == 2
    assert all(isinstance(i, RemoteImage) for i in items)
    assert items[0].locator == b"https://example.org/bones/Knee%201.jpg?x=1"
    assert (items[0].name, items[1].name) == ("Knee 1", "row 2")
    assert json.loads(items[0].extras) == {"healed": True}


def orange_tab(path, origin, rows, image_flags=None):
    """A .tab as Orange writes it: names, types, flags (type=image origin=... on the image)."""
    flags = image_flags or f"meta type=image origin={origin.replace(' ', chr(92) + ' ')}"
    lines = ["image name\timage\tgroup\tweight", "string\tstring\tdiscrete\tcontinuous",
             f"meta\t{flags}\tclass\t"]
    lines += ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_orange_tab_image_column_origin_and_class(tmp_path):
    folder = tmp_path / "my photos"
    write_images(folder / "a", 2)
    orange_tab(tmp_path / "t.tab", str(folder), [["p0", "a/p0.png", "x", "1.5"],
                                                 ["p1", "a/p1.png", "?", "2"]])
    table = read_table(tmp_path / "t.tab")
    image = next(c for c in table.columns if c.name == "image")
    assert image.attributes == {"type": "image", "origin": str(folder)}
    assert image.flags == {"meta"}
    info, items = table_images(tmp_path / "t.tab")
    assert info.chosen_because == "marked type=image"
    assert (info.category_column, info.category_because) == ("group", "the class column")
    assert [i.path for i in items] == [str(folder / "a" / "p0.png"), str(folder / "a" / "p1.png")]
    assert [i.category for i in items] == ["x", None]
    assert [json.loads(i.extras) for i in items] == [{"image name": "p0", "weight": 1.5},
                                                    {"image name": "p1", "weight": 2}]


def test_a_moved_tab_finds_its_folder_again_as_orange_does(tmp_path):
    old = tmp_path / "old" / "pics"
    orange_tab(tmp_path / "t.tab", str(old), [["p0", "p0.png", "x", "1"]])
    moved = tmp_path / "new"
    write_images(moved / "pics", 1)
    shutil.move(tmp_path / "t.tab", moved / "t.tab")        # the origin no longer exists
    info, items = table_images(moved / "t.tab")
    assert info.base_dir == str(moved / "pics")
    assert items[0].path == str(moved / "pics" / "p0.png") and isinstance(items[0], ImageFile)


def test_a_marked_image_column_wins_over_one_that_looks_like_images(tmp_path):
    orange_tab(tmp_path / "t.tab", str(tmp_path), [["x.png", "https://h/1", "a", "1"]])
    info, _ = table_images(tmp_path / "t.tab")
    assert info.image_column == "image"                     # not "image name", though .png


def test_choosing_a_column_by_its_values_and_when_none_fits(tmp_path):
    (tmp_path / "a.csv").write_text("name,where\nx,https://h/a\ny,b.JPG\nz,\n", encoding="utf-8")
    column, why = choose_image_column(read_table(tmp_path / "a.csv"))
    assert column.name == "where" and why == "100% of its values look like image files or URLs"
    (tmp_path / "b.csv").write_text("name,size\nx,1\ny,2\n", encoding="utf-8")
    with pytest.raises(TableError, match=r"no column looks like image paths or URLs; name the "
                                         r"one that holds them with --image-column \(its "
                                         r"columns: 'name', 'size'\)"):
        table_images(tmp_path / "b.csv")
    with pytest.raises(TableError, match=r"no column named 'picture' for --image-column"):
        table_images(tmp_path / "b.csv", TableOptions(image_column="picture"))
    assert looks_like_image("data:image/png;base64,xx") and not looks_like_image("data:,x")
    assert looks_like_image("https://h/img?id=3") and not looks_like_image("report.pdf")


def test_pictures_win_over_a_column_of_web_pages(tmp_path):
    (tmp_path / "p.csv").write_text("page,picture\nhttps://h/a,https://h/a.jpg\n"
                                    "https://h/b,https://h/b.PNG?w=2\n", encoding="utf-8")
    assert table_images(tmp_path / "p.csv")[0].image_column == "picture"


def test_a_data_url_larger_than_a_csv_field_usually_is(tmp_path):
    import numpy as np

    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "PNG")
    url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
    assert len(url) > 200_000
    pd.DataFrame({"label": ["noise"], "image": [url]}).to_csv(tmp_path / "d.csv", index=False)
    info, items = table_images(tmp_path / "d.csv")
    assert info.image_column == "image" and items[0].path == url


def test_orange_one_row_headers_semicolons_and_a_bom(tmp_path):
    (tmp_path / "o.csv").write_bytes("\ufeffmS#pic;C#age;cD#kind\na.png;3;x\nb.png;4;y\n"
                                     .encode("utf-8"))
    table = read_table(tmp_path / "o.csv")
    assert [(c.name, c.type, c.flags) for c in table.columns] == [
        ("pic", "string", {"meta"}), ("age", "continuous", set()), ("kind", "discrete", {"class"})]
    assert table.columns[1].values == [3, 4]


def test_unreadable_tables_are_one_clear_error(tmp_path):
    (tmp_path / "latin.csv").write_bytes("image\nt\xe9te.png\n".encode("latin-1"))
    with pytest.raises(TableError, match="not UTF-8 text .* save it as UTF-8"):
        read_table(tmp_path / "latin.csv")
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip file")
    with pytest.raises(TableError, match=r"bad.xlsx: not a readable xlsx file"):
        read_table(tmp_path / "bad.xlsx")
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(TableError, match="the table is empty"):
        read_table(tmp_path / "empty.csv")


# -- indexing a table -------------------------------------------------------------------------

def test_index_a_table_keeps_its_columns_and_re_indexes_incrementally(tmp_path, frame):
    write_images(tmp_path / "imgs")
    table = tmp_path / "t.csv"
    frame.to_csv(table, index=False)
    db = tmp_path / "c.db"
    col = lookalike.Collection.index([table], db=db, model=MODEL, category_column="label")
    report = col.last_report
    assert report.embedded == 4 and report.tables[0].category_column == "label"
    row = col.store.find(os.fsencode(tmp_path / "imgs" / "p1.png"))
    assert (row["category"], json.loads(row["extras"])) == ("dog", {"id": 2, "score": 1.0})
    assert col.store.extra_columns() == ["id", "score"]

    res = col.nearest(str(tmp_path / "imgs" / "p0.png"), k=3)
    records = res.to_records()
    assert {r["id (1)"] for r in records} == {2, 3, 4}    # the table's "id" beside ours
    by_path = {r["path"]: r for r in records}
    assert by_path[str(tmp_path / "imgs" / "p1.png")]["score"] == 1.0

    # The same table again: nothing embedded. Then one row changes its columns, one row goes.
    col.add([table], model=MODEL, category_column="label")
    assert (col.last_report.unchanged, col.last_report.embedded) == (4, 0)
    frame.loc[1, "score"] = 9.0
    frame.drop(index=3).to_csv(table, index=False)
    col.add([table], model=MODEL, category_column="label")
    again = col.last_report
    assert (again.unchanged, again.embedded, again.removed, again.metadata_updated) == (3, 0, 1, 1)
    assert json.loads(col.store.find(os.fsencode(tmp_path / "imgs" / "p1.png"))["extras"]) == \
        {"id": 2, "score": 9.0}
    assert col.store.find(os.fsencode(tmp_path / "imgs" / "p3.png")) is None
    assert len(col) == 3
    col.close()


@pytest.mark.slow  # waits out a slow server's timeouts; ./test.sh runs it
def test_index_urls_skips_failures_with_reasons_and_never_downloads_twice(tmp_path):
    with ImageServer() as server:
        good = [server.add(f"/g{i}.png", png_bytes(seed=i)) for i in range(3)]
        flaky = server.add("/flaky.png", png_bytes(seed=5), fail_first=1)
        truncated = server.add("/cut.png", png_bytes(seed=6)[:200])
        text = server.add("/text.png", b"hello, not a picture", content_type="image/png")
        slow = server.add("/slow.png", png_bytes(seed=7), delay=4.0)
        huge = server.add("/huge.png", png_bytes(seed=8) + b"\0" * 50_000)
        missing = server.url("/missing.png")
        data_url = "data:image/png;base64," + base64.b64encode(png_bytes(seed=9)).decode()
        urls = good + [flaky, truncated, text, slow, huge, missing, data_url]
        pd.DataFrame({"url": urls, "n": range(len(urls))}).to_parquet(tmp_path / "u.parquet")
        # A timeout with room to spare: threads of the suite's other tests share the CPU.
        downloader = Downloader(cache=tmp_path / "cache", timeout=1.5, retries=1, backoff=0.01,
                                max_bytes=40_000)
        col = lookalike.Collection.index([tmp_path / "u.parquet"], db=tmp_path / "u.db",
                                         model=MODEL, downloader=downloader)
        report = col.last_report
        assert (report.embedded, report.downloaded) == (5, 5)
        reasons = {path: reason for path, reason in report.skipped}
        assert reasons == {
            truncated: reasons[truncated],
            text: "not an image (the server sent image/png, 20 bytes starting "
                  "'hello, not a picture')",
            slow: "download failed: timed out, nothing received for 1.5 s (2 tries)",
            huge: f"download too large ({len(png_bytes(seed=8)) + 50_000:,} bytes; the limit "
                  "is 40,000)",
            missing: "download failed: HTTP 404 Not Found"}
        assert reasons[truncated] == "truncated file"
        assert {r["path"]: r["reason"] for r in col.skipped()} == reasons
        assert server.hits["/flaky.png"] == 2 and server.hits["/missing.png"] == 1

        row = col.store.find(good[1].encode())
        assert row["name"] == "g1" and row["size"] == len(png_bytes(seed=1))
        assert json.loads(row["extras"]) == {"n": 1}
        res = col.nearest(good[0], k=len(urls))
        assert good[0] not in res.paths and data_url in res.paths
        assert {r["path"]: r["n"] for r in res.to_records()}[flaky] == 3
        assert col.nearest(good[0], k=10, path_prefix=server.url("/g")).paths == \
            sorted(good[1:], key=col.nearest(good[0], k=10).paths.index)

        hits = sum(server.hits.values())
        col.add([tmp_path / "u.parquet"], model=MODEL, downloader=downloader)
        again = col.last_report
        assert again.unchanged == 5 and again.embedded == 0 and again.downloaded == 0
        # Only the failed URLs are asked for again (a 404 may be fixed, a timeout may pass);
        # the truncated image was an image to the sniffer, so it comes from the cache.
        retried = sum(server.hits.values()) - hits
        assert server.hits["/g0.png"] == 1 and retried == 1 + 2 + 1 + 1
        assert again.download_cache_hits == 1
        downloader.close()
        col.close()


def test_the_table_options_need_a_table(tmp_path):
    write_images(tmp_path / "imgs", 1)
    with pytest.raises(lookalike.LookalikeError, match="are for tables"):
        lookalike.Collection.index([tmp_path / "imgs"], db=tmp_path / "c.db", model=MODEL,
                                   image_column="x")
