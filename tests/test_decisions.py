"""Decisions on groups of copies (formats/decisions.py): the CSV, and the move script run for
real with `sh` on files made here, awkward names included."""

import csv
import io
import os
import subprocess

import pytest

from lookalike.analysis.duplicates import DuplicateGroup
from lookalike.errors import LookalikeError
from lookalike.formats import decisions

AWKWARD = ["plain.jpg", "with space.jpg", "it's quoted.jpg", 'double"quote.jpg',
           "new\nline.jpg", "-leading-dash.jpg", "$(touch pwned).jpg", "star*.jpg",
           "back\\slash `tick`.jpg", "ünï cödé.jpg"]


def _file(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _groups(root):
    """Three groups of files under `root` (in sub-folders), each keeper first; every file's
    bytes say which it is."""
    made, groups, next_id = {}, [], 1
    layout = [("a", AWKWARD[:4]), ("b/deeper", AWKWARD[4:7]), ("c", AWKWARD[7:])]
    for number, (folder, names) in enumerate(layout, 1):
        rows = []
        for name in names:
            path = _file(root / folder / name, f"{folder}/{name}".encode() * 3)
            made[next_id] = path
            rows.append({"id": next_id, "path": str(path), "width": 10, "height": 10,
                         "size": path.stat().st_size})
            next_id += 1
        ids = [r["id"] for r in rows]
        groups.append(DuplicateGroup(number, ids, [0.0] + [0.01] * (len(ids) - 1), ids[0],
                                     rows))
    return groups, made


def _script(groups, made, target, dismissed=()):
    rows = decisions.decisions(groups, dismissed)
    return decisions.move_script(rows, target, {i: os.fsencode(p) for i, p in made.items()},
                                 source="test.db")


def _run(script: bytes, where) -> str:
    path = where / "move.sh"
    path.write_bytes(script)
    done = subprocess.run(["sh", str(path)], capture_output=True, cwd=where, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"", done.stderr
    return done.stdout.decode("utf-8", "replace")


def test_the_script_moves_the_non_keepers_and_nothing_else(tmp_path):
    groups, made = _groups(tmp_path / "photos")
    before = {i: p.read_bytes() for i, p in made.items()}
    target = tmp_path / "to check" / "it's here"
    script = _script(groups, made, target)
    assert script.startswith(b"#!/bin/sh\n")
    assert b"Nothing has happened yet" in script
    assert not target.exists() and all(p.exists() for p in made.values())  # writing runs nothing
    out = _run(script, tmp_path)
    keepers = {g.keep for g in groups}
    for image_id, path in made.items():
        if image_id in keepers:
            assert path.read_bytes() == before[image_id]  # untouched
            continue
        assert not path.exists()
        moved = target / path.relative_to(tmp_path / "photos")  # sub-folders kept
        assert moved.read_bytes() == before[image_id]
    assert not (tmp_path / "pwned").exists()  # a name is never run as a command
    assert "moved 7 file(s), skipped 0" in out
    # run again: everything is gone from its place, nothing is moved twice or overwritten
    again = _run(script, tmp_path)
    assert "moved 0 file(s), skipped 7" in again


def test_gone_changed_and_occupied_files_are_skipped(tmp_path):
    groups, made = _groups(tmp_path / "photos")
    target = tmp_path / "dups"
    script = _script(groups, made, target)
    a = groups[0]
    made[a.ids[1]].unlink()                                     # gone
    made[a.ids[2]].write_bytes(b"changed, another size")        # changed since indexing
    occupied = _file(target / "a" / made[a.ids[3]].name, b"someone else's file")
    made[groups[1].keep].unlink()                               # a keeper gone: group left
    out = _run(script, tmp_path)
    assert made[a.ids[2]].read_bytes() == b"changed, another size"
    assert made[a.ids[3]].exists() and occupied.read_bytes() == b"someone else's file"
    assert all(made[i].exists() for i in groups[1].ids[1:])
    assert "group 2 left as it is" in out
    c = groups[2]
    assert all(not made[i].exists() for i in c.ids[1:])
    assert f"moved {len(c.ids) - 1} file(s), skipped 5" in out


def test_a_changed_keeper_and_dismissed_groups(tmp_path):
    groups, made = _groups(tmp_path / "photos")
    first, second, third = groups
    first.keep = first.ids[2]                    # the person chose another copy to keep
    script = _script([first, third], made, tmp_path / "out", dismissed=[second])
    _run(script, tmp_path)
    assert made[first.ids[2]].exists() and not made[first.ids[0]].exists()
    assert all(made[i].exists() for i in second.ids)  # not duplicates: left alone
    rows = decisions.decisions([first, third], [second])
    text = decisions.decisions_csv(rows)
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == list(decisions.DECISION_FIELDS)
    assert len(table) == len(made)
    by_id = {int(r["id"]): r for r in table}
    assert by_id[first.ids[2]]["keep"] == "true" and by_id[first.ids[2]]["action"] == "keep"
    assert by_id[first.ids[0]]["keep"] == "false" and by_id[first.ids[0]]["action"] == "move"
    assert {by_id[i]["action"] for i in second.ids} == {"not-duplicate"}
    assert {by_id[i]["group"] for i in second.ids} == {"4"}  # numbered after the others
    assert by_id[second.ids[1]]["path"] == str(made[second.ids[1]])  # the newline survives


def test_urls_are_listed_as_comments_and_targets_must_be_absolute(tmp_path):
    keeper = _file(tmp_path / "k.jpg", b"kept")
    rows = [{"id": 1, "path": str(keeper), "size": 4},
            {"id": 2, "path": "https://example.org/x.jpg\nrm -rf /", "size": 9}]
    group = DuplicateGroup(1, [1, 2], [0.0, 0.1], 1, rows)
    script = decisions.move_script(decisions.decisions([group]), tmp_path / "t",
                                   {1: os.fsencode(keeper), 2: "https://example.org/x.jpg"})
    assert b"# a URL, not moved: https://example.org/x.jpg?rm -rf /" in script
    assert b"\nrm -rf" not in script
    out = _run(script, tmp_path)
    assert "moved 0 file(s)" in out and keeper.exists()
    for bad in ("", "relative/folder"):
        with pytest.raises(LookalikeError, match="full path"):
            decisions.move_script([], bad, {})
