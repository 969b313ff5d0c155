"""fileio: files that appear whole, and reading a file without ever blocking on a pipe."""

from __future__ import annotations

import os

import pytest

from lookalike.fileio import FileTooLarge, NotARegularFile, read_regular_file, write_atomically


def test_a_regular_file_is_read_whole_up_to_its_limit(tmp_path):
    path = tmp_path / "a.bin"
    write_atomically(path, b"x" * 100)
    assert read_regular_file(path, 100) == b"x" * 100
    with pytest.raises(FileTooLarge) as too_large:
        read_regular_file(path, 99)
    assert too_large.value.size == 100 and too_large.value.limit == 99
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_pipe_or_a_folder_is_refused_at_once_never_waited_on(tmp_path):
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)                       # nobody writes to it: a blocking open would hang
    with pytest.raises(NotARegularFile) as refused:
        read_regular_file(pipe, 1000)
    assert refused.value.mode & 0o170000 == 0o010000   # S_IFIFO
    with pytest.raises(NotARegularFile):
        read_regular_file(tmp_path, 1000)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing.jpg", 1000)
