"""The command line as a user runs it: a real process, real files, one-line errors."""

import contextlib
import csv
import io
import json
import os
import random
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from imagefactory import pattern, write_bad_files, write_hostile_folder
from test_indexing import photo_families

MODEL = "squeezenet"


def run(*args, check=True, env=None):
    proc = subprocess.run([sys.executable, "-m", "lookalike", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def served_url(proc, seconds):
    """(the address a starting `serve` or `demo` process prints, everything it printed)."""
    import select

    url, seen, deadline = None, "", time.time() + seconds
    while url is None and time.time() < deadline and proc.poll() is None:
        if select.select([proc.stderr], [], [], 1)[0]:
            line = proc.stderr.readline()
            seen += line
            if "serving" in line:
                url = line.split(" at ")[1].split()[0]
    return url, seen


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "photos"
    files = photo_families(root)
    write_bad_files(root / "bad")
    db = tmp / "c.db"
    proc = run("index", root, "--db", db, "--model", MODEL, "--quiet")
    return root, files, db, proc


def test_index_prints_a_summary(indexed):
    root, files, db, proc = indexed
    out = proc.stdout
    assert "embedded          16" in out and "skipped            5" in out
    assert "empty file" in out and "not an image" in out
    # The hint names the database, so that it works as printed.
    assert f" skipped --db {shlex.quote(str(db))}` (or index --verbose)" in out
    again = run("index", root, "--db", db, "--model", MODEL, "--quiet").stdout
    assert "unchanged         16" in again and "embedded           0" in again


@pytest.mark.slow  # over a second on the 2-core machine
def test_similar_as_json_csv_and_table(indexed):
    root, files, db, _ = indexed
    ref = files[("chelsea", "orig")]
    records = json.loads(run("similar", ref, "--db", db, "-k", 3, "--format", "json").stdout)
    assert [r["rank"] for r in records] == [1, 2, 3]
    for r in records:
        assert {"rank", "path", "distance", "category", "width", "height", "size"} <= set(r)
        assert r["category"] == "chelsea" and os.path.exists(r["path"])
    assert records[0]["distance"] <= records[1]["distance"] <= records[2]["distance"]
    rows = list(csv.DictReader(io.StringIO(
        run("similar", ref, "--db", db, "--all", "--format", "csv").stdout)))
    assert len(rows) == 15 and rows[0]["path"] == records[0]["path"]
    table = run("similar", ref, files[("rocket", "orig")], "--db", db, "-k", 2,
                "--metric", "Absolute Pearson").stdout.splitlines()
    assert table[0] == f"look-alikes by {MODEL}, Absolute Pearson distance"
    assert table[1].split() == ["rank", "distance", "category", "pixels", "size", "nearest",
                                "reference", "path"]
    assert len(table) == 5
    # Pixels as width x height; size in bytes, as everywhere else.
    best = json.loads(run("similar", ref, files[("rocket", "orig")], "--db", db, "-k", 1,
                          "--metric", "Absolute Pearson", "--format", "json").stdout)[0]
    cells = table[3].split()
    assert cells[3] == f"{best['width']}x{best['height']}"
    assert f"{cells[4]} {cells[5]}" == f"{best['size'] / 1000:.1f} kB"
    # Both references are called orig.jpg, so the table names them by their whole paths.
    assert cells[6] == best["nearest_reference"]


@pytest.mark.slow  # eight processes
def test_similar_can_ask_for_each_kind_of_approximate_search(indexed):
    root, files, db, _ = indexed
    ref = files[("chelsea", "orig")]

    def paths(*extra):
        return [r["path"] for r in json.loads(run("similar", ref, "--db", db, "-k", 5,
                                                  "--format", "json", *extra).stdout)]
    exact = paths("--exact")
    for kind in ("hnsw", "ivf", "ivfpq", "scan", "auto"):
        assert paths("--approximate", kind) == exact, kind  # 16 images: every one is found
    assert paths("--approximate") == exact
    bad = run("similar", "--db", db, "--approximate", ref, check=False)
    assert bad.returncode == 2 and "is not a kind of approximate search (hnsw, ivf, ivfpq, " \
        "scan or auto); references go before --approximate" in bad.stderr
    assert "--approximate [KIND]" in run("similar", "--help").stdout


def test_similar_prints_notes_on_stderr(indexed):
    root, files, db, _ = indexed
    ref = files[("chelsea", "orig")]
    proc = run("similar", ref, "--db", db, "-k", 3, "--metric", "mahalanobis", "--format", "json")
    assert len(json.loads(proc.stdout)) == 3
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "Mahalanobis distances are unreliable" in notes[0]
    assert "Warning" not in proc.stderr
    assert "note:" not in run("similar", ref, "--db", db, "-k", 3).stderr


def test_skipped_lists_each_file_with_its_reason(indexed):
    _, _, db, _ = indexed
    rows = json.loads(run("skipped", "--db", db, "--format", "json").stdout)
    assert len(rows) == 5 and all(r["reason"] for r in rows)
    assert any(r["path"].endswith("bomb.png") and "too many pixels" in r["reason"] for r in rows)


def test_models_lists_every_model_and_the_default():
    rows = json.loads(run("models", "--format", "json").stdout)
    names = {r["name"] for r in rows}
    assert {"squeezenet", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",
            "mobilenet-v2"} <= names
    assert sum(r["default"] for r in rows) == 1
    table = run("models").stdout
    assert "efficientnet-lite0" in table and "1280" in table


def test_models_of_a_collection_name_the_built_in_model_and_its_reading_options(tmp_path):
    from lookalike import Collection, ReadingOptions

    for colour in ("red", "blue"):
        Image.new("RGB", (16, 16), colour).save(tmp_path / f"{colour}.png")
    reading = ReadingOptions(channels=(2, 1, 0))
    Collection.index([tmp_path], db=tmp_path / "c.db", model="squeezenet",
                     reading=reading).close()
    held = json.loads(run("models", "--db", tmp_path / "c.db", "--format", "json").stdout)
    assert held["collection"] == [{"name": reading.vector_key("squeezenet"), "dim": 1000,
                                   "images": 2, "own": False, "reading": "--channels 2,1,0",
                                   "search": "exact search (under 20,000 images)"}]
    table = run("models", "--db", tmp_path / "c.db").stdout
    assert "built in, read with --channels 2,1,0" in table and "your own" not in table


def test_models_says_whether_the_int8_models_are_the_faster_choice_on_this_cpu():
    from lookalike.models import cpu  # both sentences: test_models.py, with flags passed in

    assert run("models").stdout.rstrip().endswith(cpu.int8_advice(cpu.cpu_flags()))


#: What `lookalike skipped` must say of each bad entry of imagefactory.write_hostile_folder.
HOSTILE_REASONS = {
    "empty": "empty file (0 bytes)",
    "truncated_jpeg": "truncated file",
    "truncated_png": "truncated file",
    "text": "not an image (unrecognised format)",
    "bomb": "too many pixels (10,000,000,000; the limit is 268,435,456), refused as a possible "
            "decompression bomb",
    "pipe": "a named pipe, not an image file",
    "socket": "a socket, not an image file",
    "link_loop": "a loop of symbolic links",
    "dangling": "broken symbolic link",
    "unopenable": "cannot read file (Permission denied)",
    "too_large": "file too large (3,221,225,472 bytes; the limit is 2,147,483,648)",
    "not_utf8_text": "not an image (unrecognised format)",
}


@pytest.mark.slow  # over a second on the 2-core machine
def test_a_hostile_folder_indexes_every_good_image_and_lists_every_bad_one(tmp_path):
    from lookalike.ingest.folders import display_path

    root = tmp_path / "hostile"
    good, bad = write_hostile_folder(root)
    db = tmp_path / "h.db"
    proc = subprocess.run([sys.executable, "-m", "lookalike", "index", str(root), "--db", str(db),
                           "--model", MODEL, "--quiet"], capture_output=True, text=True,
                          timeout=120)  # a named pipe opened for reading would hang here
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""                  # not even a Pillow warning about the odd EXIF
    assert f"embedded          {len(good)}" in proc.stdout
    assert f"skipped           {len(bad)}" in proc.stdout
    listed = {r["path"]: r["reason"] for r in
              json.loads(run("skipped", "--db", db, "--format", "json").stdout)}
    assert set(listed) == {display_path(path) for path, _ in bad.values()}
    for path, kind in bad.values():
        reason = listed[display_path(path)]
        assert reason == HOSTILE_REASONS[kind], (kind, reason)
    table = run("skipped", "--db", db).stdout
    assert "\\xff\\xfenot-utf8.jpg: not an image" in table and "12 skipped files" in table

    con = sqlite3.connect(db)
    rows = {loc: (w, h, reason, has_vector) for loc, w, h, reason, has_vector in con.execute(
        "SELECT locator, width, height, skip_reason, e.vector IS NOT NULL FROM images i "
        "LEFT JOIN embeddings e ON e.content_hash = i.content_hash AND e.model = ?", (MODEL,))}
    con.close()
    assert len(rows) == len(good) + len(bad)          # the folder loop was walked once
    for name, path in good.items():
        w, h, reason, has_vector = rows[os.fsencode(path)]
        assert reason is None and has_vector, (name, reason)
    assert rows[os.fsencode(good["rotated"])][:2] == (96, 64)   # upright, EXIF applied
    assert rows[os.fsencode(good["tiny"])][:2] == (1, 1)
    # A named pipe as the reference is refused at once, not waited on.
    one_line_error(run("similar", os.fsdecode(bad["pipe"][0]), "--db", db, check=False),
                   "was skipped when indexed (a named pipe")
    fifo = tmp_path / "elsewhere.jpg"
    os.mkfifo(fifo)
    one_line_error(run("similar", fifo, "--db", db, check=False),
                   "elsewhere.jpg: a named pipe, not an image file")


def one_line_error(proc, *needles):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow  # over a second on the 2-core machine
def test_errors_are_one_clear_line(indexed, tmp_path):
    root, files, db, _ = indexed
    one_line_error(run("similar", tmp_path / "nope.jpg", "--db", db, check=False), "no such file")
    text = tmp_path / "t.jpg"
    text.write_text("not a picture")
    one_line_error(run("similar", text, "--db", db, check=False),
                   "t.jpg: not an image (unrecognised format)")
    one_line_error(run("similar", files[("coffee", "orig")], "--db", db, "--metric", "hamming",
                       check=False), "unknown metric", "Euclidean")
    one_line_error(run("index", root, "--db", tmp_path / "x.db", "--model", "resnet",
                       check=False), "unknown model", "squeezenet")
    one_line_error(run("index", tmp_path / "missing", "--db", tmp_path / "x.db", check=False),
                   "no such file or folder")
    one_line_error(run("similar", files[("coffee", "orig")], "--db", tmp_path / "none.db",
                       check=False), "no collection there")
    empty = tmp_path / "empty"
    empty.mkdir()
    run("index", empty, "--db", tmp_path / "empty.db", "--model", MODEL, "--quiet")
    one_line_error(run("similar", files[("coffee", "orig")], "--db", tmp_path / "empty.db",
                       check=False), "no indexed images")
    newer = tmp_path / "newer.db"
    run("index", empty, "--db", newer, "--model", MODEL, "--quiet")
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.close()
    one_line_error(run("similar", files[("coffee", "orig")], "--db", newer, check=False),
                   "newer version of lookalike")
    bad_option = run("similar", files[("coffee", "orig")], "--db", db, "-k", "0", check=False)
    assert bad_option.returncode == 2 and "must be at least 1" in bad_option.stderr


def test_db_defaults_to_the_environment_variable(indexed, tmp_path):
    root, files, db, _ = indexed
    proc = run("similar", files[("coffee", "orig")], "-k", 1, "--format", "json",
               env={"LOOKALIKE_DB": str(db)})
    assert json.loads(proc.stdout)[0]["category"] == "coffee"


def test_lookalike_alone_lists_the_commands():
    proc = run()
    assert proc.returncode == 0 and proc.stderr == ""
    for command in ["index", "similar", "export", "models", "skipped", "datasets", "demo",
                    "serve"]:
        assert f"\n    {command} " in proc.stdout, command


def test_every_command_and_option_says_what_it_is():
    import argparse

    from lookalike.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert commands.choices
    for name, sub in commands.choices.items():
        assert sub.description, name
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, (name, action.dest)


@pytest.mark.slow  # over a second on the 2-core machine
def test_a_failed_index_leaves_no_database_behind(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(pattern(64, 48, seed=1)).save(photos / "a.png")
    table = tmp_path / "list.csv"
    table.write_text("image\nphotos/a.png\n")
    db = tmp_path / "new" / "folder" / "c.db"
    for args, error in [((photos, "--model", "resnet"), "unknown model"),
                        ((tmp_path / "missing", "--model", MODEL), "no such file or folder"),
                        ((table, "--image-column", "picture", "--model", MODEL), "picture")]:
        one_line_error(run("index", *args, "--db", db, check=False), error)
        assert not (tmp_path / "new").exists(), args     # nor its -wal, -shm, or folders
    # A database that was there is kept as it was, even an empty one.
    empty = tmp_path / "empty"
    empty.mkdir()
    kept = tmp_path / "kept.db"
    run("index", empty, "--db", kept, "--model", MODEL, "--quiet")
    one_line_error(run("index", tmp_path / "missing", "--db", kept, check=False),
                   "no such file or folder")
    assert kept.is_file()


@pytest.mark.slow  # over a second on the 2-core machine
def test_output_dash_writes_to_the_standard_output(indexed, tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    root, files, db, _ = indexed
    ref = files[("coffee", "orig")]
    records = json.loads(run("similar", ref, "--db", db, "-k", 3, "--format", "json",
                             "-o", "-").stdout)
    assert [r["category"] for r in records] == ["coffee"] * 3
    rows = list(csv.DictReader(io.StringIO(run("similar", ref, "--db", db, "-k", 3,
                                               "--format", "csv", "--output", "-").stdout)))
    assert [r["path"] for r in rows] == [r["path"] for r in records]
    binary = subprocess.run([sys.executable, "-m", "lookalike", "similar", str(ref), "--db",
                             str(db), "-k", "3", "--format", "parquet", "-o", "-"],
                            capture_output=True, timeout=300, check=True, cwd=tmp_path).stdout
    assert pq.read_table(io.BytesIO(binary)).column("path").to_pylist() == \
        [r["path"] for r in records]
    assert os.listdir(tmp_path) == []                   # no file named "-"

    export = run("export", "--db", db, "-o", "-", "--no-vectors")      # csv unless told
    assert len(list(csv.DictReader(io.StringIO(export.stdout)))) == 16
    assert "wrote 16 images to the standard output (csv" in export.stderr
    npz = subprocess.run([sys.executable, "-m", "lookalike", "export", "--db", str(db), "-o",
                          "-", "--format", "npz", "-q"], capture_output=True, timeout=300,
                         check=True).stdout
    assert np.load(io.BytesIO(npz))["vectors"].shape[0] == 16


def test_binary_output_is_refused_on_a_terminal(indexed):
    import pty

    _, files, db, _ = indexed
    for args in [("similar", files[("coffee", "orig")], "--format", "parquet"),
                 ("export", "--format", "npz")]:
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run([sys.executable, "-m", "lookalike", *map(str, args), "--db",
                                   str(db), "-o", "-"], stdout=follower, stderr=subprocess.PIPE,
                                  text=True, timeout=300)
        finally:
            os.close(follower)
            os.close(leader)
        one_line_error(proc, "is a binary format: redirect the standard output")


def test_an_unknown_category_is_an_error_that_names_the_nearest(indexed):
    _, files, db, _ = indexed
    proc = run("similar", files[("coffee", "orig")], "--db", db, "--category", "chelse",
               check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    one_line_error(proc, "no category 'chelse'", "the nearest are 'chelsea'")


@pytest.mark.slow  # over a second on the 2-core machine
def test_the_table_names_the_default_model_when_the_collection_has_several(indexed, tmp_path):
    root, files, _, _ = indexed
    db = tmp_path / "two.db"
    run("index", root / "coffee", "--db", db, "--model", MODEL, "--quiet")
    run("index", root / "coffee", "--db", db, "--model", "efficientnet-lite0", "--quiet")
    table = run("similar", files[("coffee", "orig")], "--db", db, "-k", 1).stdout
    assert table.startswith("look-alikes by efficientnet-lite0 (the model last indexed; also "
                            f"here: {MODEL}, see --model), Cosine distance\n")
    table = run("similar", files[("coffee", "orig")], "--db", db, "-k", 1, "--model", MODEL,
                "--metric", "euclidean").stdout
    assert table.startswith(f"look-alikes by {MODEL}, Euclidean distance\n")


def test_progress_outside_a_terminal_is_plain_lines(tmp_path):
    root = tmp_path / "few"
    root.mkdir()
    for i in range(5):
        Image.fromarray(pattern(64, 48, seed=i)).save(root / f"{i}.png")
    proc = run("index", root, "--db", tmp_path / "c.db", "--model", MODEL)
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("embedding: 5/5 images (100%), ")
    assert "embedded           5  in " in proc.stdout


def test_serve_says_when_the_host_is_not_an_address_of_this_machine(indexed):
    from lookalike.web.addresses import own_addresses

    _, _, db, _ = indexed
    # A documentation address (RFC 5737) that this machine does not have.
    mine = set(own_addresses())
    foreign = next(a for a in ["192.0.2.123", "198.51.100.123", "203.0.113.123"]
                   if a not in mine)
    proc = run("serve", "--db", db, "--host", foreign, "--port", 0, check=False)
    # Listening beyond this machine warns first, then the error: one line, no traceback.
    warning, error = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "warning" in warning and "Traceback" not in proc.stderr
    assert error == (f"lookalike: error: --host {foreign}: not an address of this machine; "
                     "use 127.0.0.1 (this machine only) or 0.0.0.0 (every network it is on)")


def test_a_wildcard_host_prints_addresses_a_browser_can_open():
    import socket

    from lookalike.web.addresses import urls

    for host in ["0.0.0.0", "::"]:
        shown = urls(host, 8123)
        assert shown[0] in ("http://127.0.0.1:8123/", "http://[::1]:8123/")
        for url in shown[1:]:
            address = url[len("http://"):-len(":8123/")].strip("[]")
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            with socket.socket(family) as sock:
                sock.bind((address, 0))          # an address of this machine
            assert not address.startswith("127.") and address != "::1"
    assert urls("127.0.0.1", 8123) == ["http://127.0.0.1:8123/"]


def catalogue(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT i.path, i.content_hash, i.skip_reason, e.vector FROM images i "
                       "LEFT JOIN embeddings e ON e.content_hash = i.content_hash "
                       "ORDER BY i.path").fetchall()
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    return rows


def committed(db) -> list[tuple]:
    """The catalogue as `catalogue` gives it, after checking that the database is whole and
    holds each image once; [] for a database killed before its tables were made."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'images'").fetchone():
            return []
        assert con.execute("SELECT count(*) = count(DISTINCT locator) FROM images").fetchone()[0]
    finally:
        con.close()
    return catalogue(db)


def index_command(root, db, *extra):
    return [sys.executable, "-m", "lookalike", "index", str(root), "--db", str(db), "--model",
            MODEL, "--quiet", "--batch-size", "8", *map(str, extra)]


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """150 small distinct PNGs in 5 folders, indexed once without interruption: the
    catalogue every interrupted run must end with, and how long that run took."""
    tmp = tmp_path_factory.mktemp("many")
    root = tmp / "many"
    for i in range(150):
        folder = root / f"group{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pattern(120, 90, seed=i)).save(folder / f"img{i:03d}.png")
    started = time.perf_counter()
    subprocess.run(index_command(root, tmp / "reference.db"), check=True, timeout=300)
    seconds = time.perf_counter() - started
    want = catalogue(tmp / "reference.db")
    assert len(want) == 150 and all(row[3] is not None for row in want)
    return root, want, seconds


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_committed_and_resumes(many, tmp_path):
    root, want, seconds = many
    rng = random.Random(7)
    # Moments anywhere in a whole run (start-up, scanning, mid-batch, mid-commit, the end),
    # and once as soon as the first batches are in, so that some kill surely lands mid-run.
    delays = [rng.uniform(0.05, 1.1 * seconds) for _ in range(6)] + [None]
    interrupted = []
    for trial, delay in enumerate(delays):
        db = tmp_path / f"killed{trial}.db"
        proc = subprocess.Popen(index_command(root, db), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if delay is None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if len(committed(db)) >= 16:
                        break
                except sqlite3.OperationalError:  # not created yet
                    pass
                time.sleep(0.02)
        else:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        partial = committed(db) if db.exists() else []
        # Whatever was committed is exactly what the uninterrupted run has: same rows, same
        # vectors bit for bit (a row never lands without its vector).
        assert set(partial) <= set(want), f"trial {trial}, killed after {delay} s"
        interrupted.append(len(partial))
        subprocess.run(index_command(root, db), check=True, timeout=300)
        assert committed(db) == want, f"trial {trial}, killed after {delay} s"
    assert any(0 < n < 150 for n in interrupted), interrupted


@contextlib.contextmanager
def small_disk(folder: Path, kind: str):
    """A folder where writes soon fail: a small tmpfs (ENOSPC, "disk full") mounted there, or,
    where mounting is not permitted (a container without CAP_SYS_ADMIN), a file size limit
    for the commands run there (EFBIG, which SQLite reports as an I/O error). Yields
    (preexec_fn for those commands or None, a function that frees the room)."""
    folder.mkdir()
    if kind == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
        if mounted:
            filler = folder / "filler"
            try:
                room = os.statvfs(folder)
                # About 350 KB left: the first batches fit, later ones do not.
                filler.write_bytes(b"\0" * (room.f_bavail * room.f_frsize - 350_000))
                yield None, filler
            finally:
                subprocess.run(["umount", "-l", str(folder)], check=True)
            return
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
    yield limited, None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tmpfs", "file size limit"])
def test_a_full_disk_stops_index_with_one_line_and_keeps_the_database(many, tmp_path, kind):
    root, want, _ = many
    with small_disk(tmp_path / "disk", kind) as (limit, filler):
        db = tmp_path / "disk" / "c.db"
        proc = subprocess.run(index_command(root, db), capture_output=True, text=True,
                              timeout=300, preexec_fn=limit)
        if filler is not None:
            one_line_error(proc, f"{db}: the disk is full; what was written before is kept")
        else:
            one_line_error(proc, f"{db}: writing to the disk failed (disk I/O error",
                           "file size limit")
        partial = committed(db)
        assert 0 < len(partial) < 150 and set(partial) <= set(want)
        # What was committed can be searched at once, on the full disk: the search matrix's
        # cache file cannot be written there (room for half of it), so it is kept in memory.
        if filler is not None:
            os.truncate(filler, filler.stat().st_size - 2000 * len(partial))
        ref = partial[0][0]
        for extra in [(), ("--approximate",)]:
            found = subprocess.run([sys.executable, "-m", "lookalike", "similar", ref, "--db",
                                    str(db), "-k", "3", "--format", "json", *extra],
                                   capture_output=True, text=True, timeout=300, preexec_fn=limit)
            assert found.returncode == 0, (extra, found.returncode, found.stderr)
            paths = [r["path"] for r in json.loads(found.stdout)]
            assert len(paths) == 3 and set(paths) <= {row[0] for row in partial}, extra
        # Room again: the next run resumes and ends where an uninterrupted one does.
        if filler is not None:
            filler.unlink()
        subprocess.run(index_command(root, db), check=True, timeout=300)
        assert committed(db) == want


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for i in range(300):
        Image.fromarray(pattern(120, 90, seed=i)).save(root / f"img{i:03d}.png")
    db = tmp_path / "c.db"
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "index", str(root), "--db", str(db),
                             "--model", MODEL, "--batch-size", "8", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300     # a guard against a hang, not a time limit
    while time.time() < deadline:    # wait until some batches are committed
        if db.exists() and len(committed(db)) >= 16:   # [] before the tables exist
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    done = len(catalogue(db))
    assert 16 <= done < 300
    again = run("index", root, "--db", db, "--model", MODEL, "--quiet").stdout
    assert f"unchanged   {done:>8,}" in again
    assert len(catalogue(db)) == 300


# -- sample collections and the demo ---------------------------------------------------------

@pytest.mark.slow  # over a second on the 2-core machine
def test_datasets_lists_each_sample_and_how_to_install_a_missing_one(tmp_path):
    listing = run("datasets").stdout
    for line in ("twemoji        1,903", "fashion-mnist  10,000", "skimage        26"):
        assert line in listing
    assert "is not installed" not in listing
    entries = json.loads(run("datasets", "--format", "json").stdout)
    assert [e["name"] for e in entries] == ["twemoji", "fashion-mnist", "skimage"]
    assert all(e["available"] for e in entries)
    # Without the Debian package (here: pointed at an empty folder) it says what to run.
    gone = {"LOOKALIKE_FASHION_MNIST_DIR": str(tmp_path)}
    listing = run("datasets", env=gone).stdout
    assert ("fashion-mnist is not installed: install it with "
            "`sudo apt-get install dataset-fashion-mnist`") in listing
    one_line_error(run("datasets", "get", "fashion-mnist", tmp_path / "fm", env=gone,
                       check=False), "sudo apt-get install dataset-fashion-mnist")
    one_line_error(run("datasets", "get", "cifar", check=False), "choose one of")
    assert not (tmp_path / "fm").exists()


@pytest.mark.slow
def test_datasets_get_writes_the_fashion_mnist_test_split_once(tmp_path):
    out = run("datasets", "get", "fashion-mnist", tmp_path / "fm", "--quiet").stdout
    assert out.startswith(f"wrote 10,000 images to {tmp_path / 'fm'}\n") and "Zalando" in out
    folders = sorted(p for p in (tmp_path / "fm").iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["Ankle boot", "Bag", "Coat", "Dress", "Pullover",
                                         "Sandal", "Shirt", "Sneaker", "T-shirt-top", "Trouser"]
    assert all(len(list(p.glob("test-*.png"))) == 1000 for p in folders)
    again = run("datasets", "get", "fashion-mnist", tmp_path / "fm", "--quiet").stdout
    assert again.startswith(f"10,000 images already in {tmp_path / 'fm'}, nothing to write")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    args = ["demo", "--no-serve", "--dir", tmp / "twemoji", "--db", tmp / "twemoji.db",
            "--limit", 2, "--model", MODEL, "--quiet"]
    return tmp, args, run(*args).stdout


@pytest.mark.slow  # over a second on the 2-core machine
def test_demo_gets_indexes_and_shows_look_alikes_of_the_default_sample(demo):
    from lookalike.datasets import TWEMOJI_ATTRIBUTION

    tmp, _, out = demo
    assert f"sample twemoji: wrote 199 images to {tmp / 'twemoji'}" in out
    assert f"model {MODEL}, database {tmp / 'twemoji.db'}" in out
    assert "embedded         199" in out
    grinning = "Smileys & Emotion/face-smiling/grinning.png"
    lines = out.splitlines()
    start = lines.index(f"Look-alikes of {grinning} (in {tmp / 'twemoji'}):")
    ranks = [line.split(maxsplit=2) for line in lines[start + 3:start + 8]]
    assert [rank for rank, _, _ in ranks] == ["1", "2", "3", "4", "5"]
    distances = [float(d) for _, d, _ in ranks]
    assert distances == sorted(distances) and 0 < distances[0] < 0.5
    images = [image for _, _, image in ranks]
    assert grinning not in images
    assert all((tmp / "twemoji" / image).is_file() for image in images)
    assert lines[start + 8] == TWEMOJI_ATTRIBUTION
    assert len(catalogue(tmp / "twemoji.db")) == 199


def test_a_second_demo_writes_and_embeds_nothing(demo, tmp_path):
    tmp, args, _ = demo
    cache = tmp_path / "empty-model-cache"  # a model loaded would be built here
    out = run(*args, env={"LOOKALIKE_CACHE_DIR": str(cache)}).stdout
    assert "199 images already in" in out and "nothing to write" in out
    assert "embedded           0" in out and "unchanged        199" in out
    assert "Look-alikes of" in out
    assert not cache.exists() or not any(cache.rglob("*.onnx"))  # no model is even loaded


def test_the_commands_the_demo_prints_work_as_typed(demo, tmp_path):
    """./demo.sh does not put .venv/bin on PATH: the demo's next steps name the script (and
    the database it used), so that they work pasted into a shell as they are."""
    tmp, args, _ = demo
    env = {"PATH": "/usr/bin:/bin"}      # no virtual environment on it, as after ./demo.sh
    out = run(*args, env=env).stdout
    steps = out[out.index("Look-alikes of any image"):].splitlines()
    similar = next(line.strip() for line in steps if " similar " in line)
    serve = next(line.strip() for line in steps if " serve " in line)
    assert similar.endswith(f" --db {tmp / 'twemoji.db'}") and "IMAGE" not in similar
    assert serve.endswith(f"serve --db {tmp / 'twemoji.db'} --open")
    typed = subprocess.run(["bash", "-c", similar + " -k 2 --format json"], capture_output=True,
                           text=True, timeout=300, cwd=tmp_path, env={**os.environ, **env})
    assert typed.returncode == 0, (similar, typed.stderr)
    assert len(json.loads(typed.stdout)) == 2
    program = shlex.split(serve)[0]
    assert program != "lookalike" and os.access(program, os.X_OK)


@pytest.mark.slow  # over a second on the 2-core machine
def test_demo_defaults_to_the_user_data_folder(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data")}
    out = run("demo", "--dataset", "skimage", "--no-serve", "--model", MODEL, "-q",
              env=env).stdout
    samples = tmp_path / "data" / "lookalike" / "samples"
    assert f"sample skimage: wrote 26 images to {samples / 'skimage'}" in out
    assert len(catalogue(samples / "skimage.db")) == 26
    assert f"Look-alikes of photos/chelsea.png (in {samples / 'skimage'}):" in out


def test_demo_serves_the_viewer_until_ctrl_c(demo):
    import urllib.request

    tmp, args, _ = demo
    serve_args = [a for a in args if a != "--no-serve"] + ["--port", "0", "--no-open"]
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", *map(str, serve_args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, seen = served_url(proc, 120)
        assert url and url.startswith("http://127.0.0.1:"), seen
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and "<title>lookalike</title>" in page.read().decode()
        with urllib.request.urlopen(url + "api/collection", timeout=30) as answer:
            info = json.load(answer)
        assert info["count"] == 199 and info["models"] == {MODEL: 199}
        assert any("Twemoji" in credit for credit in info["attributions"])
        assert "no graphical browser" not in seen     # --no-open: not even tried
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "viewer stopped" in err and "Traceback" not in err


@pytest.mark.slow
def test_ctrl_c_while_writing_a_sample_leaves_only_whole_files(tmp_path):
    target = tmp_path / "fm"
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "datasets", "get",
                             "fashion-mnist", str(target), "--split", "train", "--limit", "1500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bags, deadline = target / "Bag", time.time() + 300  # a guard against a hang, not a time limit
    while time.time() < deadline and proc.poll() is None:
        if bags.is_dir() and len(os.listdir(bags)) >= 20:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err and "Traceback" not in err
    files = [p for p in target.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")]      # no temporary file left
    written = [p for p in files if p.suffix == ".png"]
    assert 20 <= len(written) < 15_000
    for png in written[::50]:
        with Image.open(png) as im:
            im.load()
    again = run("datasets", "get", "fashion-mnist", target, "--split", "train", "--limit", 1500,
                "-q").stdout
    assert again.startswith(f"wrote {15_000 - len(written):,} new images to {target} "
                            "(15,000 in all")


@pytest.mark.parametrize("browser", [True, False])
@pytest.mark.slow  # over a second on the 2-core machine
def test_serve_open_shows_the_page_in_the_browser_or_says_there_is_none(indexed, tmp_path,
                                                                        browser):
    """--open hands the address to the user's browser ($BROWSER here: a script that fetches
    the page as a browser would); with no display and no $BROWSER it says so, once."""
    import urllib.request

    _, _, db, _ = indexed
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.py"
    fake_browser.write_text("import sys, urllib.request\n"
                            "page = urllib.request.urlopen(sys.argv[1], timeout=30).read()\n"
                            f"open({str(opened)!r}, 'w').write(sys.argv[1] + ' ' + "
                            "str(b'<title>lookalike</title>' in page))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY",
                                                            "WAYLAND_DISPLAY")}
    if browser:
        env["BROWSER"] = f"{sys.executable} {fake_browser} %s"
    proc = subprocess.Popen([sys.executable, "-m", "lookalike", "serve", "--db", str(db),
                             "--port", "0", "--open"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        url, seen = served_url(proc, 60)
        assert url, seen
        deadline = time.time() + 60
        if browser:
            while not opened.exists() and time.time() < deadline:
                time.sleep(0.1)
            time.sleep(0.2)
            assert opened.read_text() == f"{url} True"
        else:
            urllib.request.urlopen(url, timeout=30).read()  # serving all the same
            assert "no graphical browser here" in seen and not opened.exists()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err
