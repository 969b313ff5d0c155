"""Decisions on groups of copies, for a person to carry out: a CSV with one row per image
(keep, move or not-duplicate) and a POSIX shell script that moves each group's non-keepers into
a folder the user names. Nothing here moves a file: the script does, when the user runs it.
Used by `lookalike duplicates --move-script` and the web viewer's Duplicates view."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import LookalikeError
from ..locators import is_url
from ..version import __version__

#: The decisions CSV's columns, in order.
DECISION_FIELDS = ("group", "group_size", "path", "keep", "action", "distance", "width",
                   "height", "size", "id")
#: What happens to an image: kept, moved by the script, or left alone in a group a person
#: said is not one of copies.
ACTIONS = ("keep", "move", "not-duplicate")


def decisions(groups: Iterable[Any], dismissed: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """One dict per image (DECISION_FIELDS) of every group (`DuplicateGroup`s: each
    non-keeper, not `group.keep`, is moved), then of the `dismissed` groups (marked not
    duplicates: every member left alone), numbered after the others."""
    out: list[dict[str, Any]] = []
    last = 0
    for g in groups:
        last = max(last, g.number)
        for row, d in zip(g.rows, g.distances):
            keep = row["id"] == g.keep
            out.append(_decision(g.number, len(g.ids), row, d, keep, "keep" if keep else "move"))
    for number, g in enumerate(dismissed, last + 1):
        for row, d in zip(g.rows, g.distances):
            out.append(_decision(number, len(g.ids), row, d, False, "not-duplicate"))
    return out


def _decision(group: int, size: int, row: dict, distance: float, keep: bool,
              action: str) -> dict[str, Any]:
    return {"group": group, "group_size": size, "path": row["path"], "keep": keep,
            "action": action, "distance": float(distance), "width": row.get("width"),
            "height": row.get("height"), "size": row.get("size"), "id": row["id"]}


def decisions_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The decisions as CSV text (keep as true/false; paths quoted as CSV needs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DECISION_FIELDS)
    for r in rows:
        writer.writerow(["" if r[f] is None else ("true" if r[f] else "false")
                         if f == "keep" else repr(r[f]) if f == "distance" else r[f]
                         for f in DECISION_FIELDS])
    return out.getvalue()


# -- the move script ---------------------------------------------------------------------------

def check_target(target: str | os.PathLike) -> str:
    """The folder a script moves files into, as an absolute path (`~` expanded); a relative
    or empty one is refused, as the script may run anywhere."""
    text = os.path.expanduser(os.fspath(target))
    if not text or not os.path.isabs(text):
        raise LookalikeError(f"{os.fspath(target)!r}: give the full path of the folder to move "
                             "the copies into (it is made if it does not exist)")
    return os.path.normpath(text)


def move_script(rows: Sequence[Mapping[str, Any]], target: str | os.PathLike,
                locators: Mapping[int, bytes | str | None], source: str = "") -> bytes:
    """A POSIX shell script (bytes: file names need not be UTF-8) that moves every image whose
    action is "move" into `target`, below it the sub-folders it had under the common folder
    of all moved files (so no two land on one name). `locators`: each image's file path
    (bytes) or URL, by id. Per group the keeper is checked first (gone or changed since
    indexing: the group is left alone); a file to move that is gone or changed (another size)
    is skipped; an existing file is never overwritten. URLs cannot be moved: listed as
    comments. `source` names the collection in the header."""
    folder = os.fsencode(check_target(target))
    moves = [r for r in rows if r["action"] == "move"]
    local = [r for r in moves if _local(locators.get(r["id"]))]
    common = _common_folder([os.fsencode(locators[r["id"]]) for r in local])  # type: ignore
    script = [_header(folder, common, local, moves, source), _FUNCTIONS,
              b"if [ -e " + _quote(folder) + b" ] && [ ! -d " + _quote(folder) + b" ]; then\n"
              b"  printf '%s: not a folder; nothing moved\\n' " + _quote(folder) + b"\n"
              b"  exit 1\nfi\n"]
    for number, members in _by_group(rows).items():
        script.append(_group_lines(number, members, locators, folder, common))
    script.append(b"\nprintf 'moved %s file(s), skipped %s\\n' \"$moved\" \"$skipped\"\n")
    return b"".join(script)


_FUNCTIONS = b"""
set -u
moved=0
skipped=0

# unchanged SIZE PATH: a regular file of that many bytes (as when it was indexed)
unchanged() {
  [ -f "$2" ] && [ "$(wc -c < "$2" | tr -d ' ')" = "$1" ]
}

# keeper GROUP SIZE PATH COUNT: the group's kept file is still as indexed
keeper() {
  if unchanged "$2" "$3"; then return 0; fi
  printf 'group %s left as it is: its kept file is gone or changed since indexing: %s\\n' "$1" "$3"
  skipped=$((skipped + $4))
  return 1
}

# move SIZE SOURCE FOLDER NAME: SOURCE into FOLDER/NAME, never over an existing file
move() {
  if ! unchanged "$1" "$2"; then
    printf 'skipped, gone or changed since indexing: %s\\n' "$2"
    skipped=$((skipped + 1))
  elif [ -e "$3/$4" ] || [ -L "$3/$4" ]; then
    printf 'skipped, %s already exists: %s\\n' "$3/$4" "$2"
    skipped=$((skipped + 1))
  elif mkdir -p -- "$3" && mv -n -- "$2" "$3/$4" && [ ! -e "$2" ]; then
    printf 'moved %s -> %s\\n' "$2" "$3/$4"
    moved=$((moved + 1))
  else
    printf 'not moved: %s\\n' "$2"
    skipped=$((skipped + 1))
  fi
}

"""


def _header(folder: bytes, common: bytes, local: list, moves: list, source: str) -> bytes:
    size = sum(r["size"] or 0 for r in local)
    lines = [
        "#!/bin/sh",
        f"# Written by lookalike {__version__}" + (f" for {_shown(source)}" if source else "")
        + ".",
        f"# It MOVES {len(local):,} file(s) ({size:,} bytes), the copies not kept of each group,",
        f"# into the folder {_shown(os.fsdecode(folder))}",
        f"# keeping the sub-folders they are in below {_shown(os.fsdecode(common) or '/')}.",
        "# Nothing has happened yet: nothing moves until you run it (sh THIS-FILE). Read it first.",
        "# Each group's kept file is checked first: gone or changed since indexing (another",
        "# size), the group is left as it is. A file that is gone or changed is skipped, and a",
        "# file already at a destination is never replaced. Nothing is deleted.",
    ]
    if len(local) < len(moves):
        lines.append(f"# {len(moves) - len(local):,} copies are URLs, which cannot be moved: "
                     "listed as comments.")
    return ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")


def _group_lines(number: int, members: list[Mapping[str, Any]],
                 locators: Mapping[int, bytes | str | None], folder: bytes,
                 common: bytes) -> bytes:
    kept = [m for m in members if m["action"] == "keep"]
    moving = [m for m in members if m["action"] == "move"]
    if not kept or not moving:
        return b""
    keeper = kept[0]
    where = locators.get(keeper["id"])
    out = [f"\n# group {number} ({len(members)} images): keep {_shown(keeper['path'])}\n"
           .encode("utf-8", "backslashreplace")]
    urls = [m for m in moving if not _local(locators.get(m["id"]))]
    files = [m for m in moving if _local(locators.get(m["id"]))]
    out += [f"# a URL, not moved: {_shown(m['path'])}\n".encode("utf-8", "backslashreplace")
            for m in urls]
    if not files:
        return b"".join(out)
    if _local(where):
        out.append(b"if keeper %d %d %s %d; then\n" % (number, keeper["size"] or 0,
                                                       _quote(os.fsencode(where)),  # type: ignore
                                                       len(files)))
    else:
        out.append(b"if true; then  # the kept image is a URL\n")
    for m in files:
        path = os.fsencode(locators[m["id"]])  # type: ignore[arg-type]
        below = os.path.relpath(os.path.dirname(path), common)
        dest = folder if below in (b".", b"") else os.path.join(folder, below)
        out.append(b"  move %d %s %s %s\n" % (m["size"] or 0, _quote(path), _quote(dest),
                                              _quote(os.path.basename(path))))
    out.append(b"fi\n")
    return b"".join(out)


def _by_group(rows: Sequence[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    groups: dict[int, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    return groups


def _local(locator: bytes | str | None) -> bool:
    if locator is None:
        return False
    return isinstance(locator, bytes) or not is_url(locator)


def _common_folder(paths: list[bytes]) -> bytes:
    """The deepest folder holding every path (b"/" at worst; b"" for none)."""
    if not paths:
        return b""
    return os.path.commonpath([os.path.dirname(p) for p in paths])


def _quote(raw: bytes) -> bytes:
    """`raw` as one single-quoted shell word: any byte but NUL survives, quotes included."""
    return b"'" + raw.replace(b"'", b"'\\''") + b"'"


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def _shown(text: str) -> str:
    """Text safe inside a # comment: control characters (a newline would end the comment and
    run the rest) shown as '?'."""
    return _UNPRINTABLE.sub("?", text)


__all__ = ["ACTIONS", "DECISION_FIELDS", "check_target", "decisions", "decisions_csv",
           "move_script"]
