"""Scanning folders like Orange's Import Images, without hanging on strange entries."""

import os

import pytest

from imagefactory import make_fifo, write_formats
from lookalike.ingest.folders import ImageFile, SourceError, Unreadable, scan


def test_folder_scan_gives_orange_columns(tmp_path):
    write_formats(tmp_path / "a" / "b")
    (tmp_path / "top.png").write_bytes((tmp_path / "a" / "b" / "plain.png").read_bytes())
    (tmp_path / "README.txt").write_text("not an image")
    found = {os.path.basename(f.path): f for f in scan(tmp_path)}
    assert "README.txt" not in found
    top = found["top.png"]
    assert isinstance(top, ImageFile)
    assert top.category is None and top.name == "top" and top.root == str(tmp_path)
    plain = found["plain.png"]
    assert plain.category == os.path.join("a", "b")
    assert plain.size == os.path.getsize(plain.path) and plain.mtime_ns > 0


def test_dot_files_and_dot_folders_are_skipped(tmp_path):
    write_formats(tmp_path / ".hidden")
    (tmp_path / ".secret.png").write_bytes(b"x")
    (tmp_path / "shown.png").write_bytes(b"x")
    assert [os.path.basename(f.path) for f in scan(tmp_path)] == ["shown.png"]


def test_symlink_loops_are_survived_and_links_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "real" / "loop")           # a loop back to the root
    os.symlink(tmp_path / "real", tmp_path / "alias")          # a second name for a folder
    os.symlink(tmp_path / "missing.png", tmp_path / "broken.png")
    found = list(scan(tmp_path))
    names = sorted(os.path.relpath(f.path, tmp_path) for f in found)
    assert names == ["broken.png", os.path.join("real", "x.png")]
    broken = next(f for f in found if f.path.endswith("broken.png"))
    assert isinstance(broken, Unreadable) and "broken symbolic link" in broken.reason


def test_a_pipe_and_a_folder_named_like_images_do_not_hang(tmp_path):
    make_fifo(tmp_path / "pipe.jpg")
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "folder.jpg" / "inside.png").write_bytes(b"x")
    found = {os.path.basename(f.path): f for f in scan(tmp_path)}
    assert isinstance(found["pipe.jpg"], Unreadable) and "named pipe" in found["pipe.jpg"].reason
    assert found["inside.png"].category == "folder.jpg"


def test_names_that_are_not_utf8_are_kept_exactly(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.png"
    with open(raw, "wb") as fh:
        fh.write(b"x")
    (item,) = scan(tmp_path)
    assert item.locator == raw
    assert "\\xe9" in item.path          # printable, and the bytes are still reachable
    with open(item.locator, "rb") as fh:
        assert fh.read() == b"x"


def test_single_files_and_missing_paths(tmp_path):
    f = tmp_path / "one.data"            # a file given by name is taken whatever its ending
    f.write_bytes(b"x")
    (item,) = scan(f)
    assert item.name == "one" and item.category is None
    with pytest.raises(SourceError, match="no such file"):
        list(scan(tmp_path / "nope"))
