"""Locks that processes share: one holder at a time across real processes, let go when the
holder dies, and no lock (but no failure) where the lock file cannot be made."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from lookalike.locks import held, hold_for_life, is_held

HOLDER = """
import sys
from lookalike.locks import held, hold_for_life
if sys.argv[2] == "held":
    with held(sys.argv[1]):
        print("holding", flush=True)
        sys.stdin.readline()
else:
    print("holding" if hold_for_life(sys.argv[1]) else "refused", flush=True)
    sys.stdin.readline()
"""


def holder(path, how="held") -> subprocess.Popen:
    """Another process that holds the lock of `path` until its standard input ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), how], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "holding\n"
    return proc


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds  # only against a hang
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_one_process_at_a_time_and_the_others_wait(tmp_path):
    path = tmp_path / "made" / "here.lock"  # the folder is made too
    assert not is_held(path)
    other = holder(path)
    assert is_held(path)
    waited, inside = threading.Event(), threading.Event()

    def second():
        with held(path, on_wait=waited.set) as guarded:
            assert guarded
            inside.set()
    thread = threading.Thread(target=second)
    thread.start()
    waited.wait(60)
    assert waited.is_set() and not inside.is_set()  # told that it waits, and waiting
    other.communicate("\n", timeout=60)              # the other lets go
    thread.join(60)
    assert inside.is_set() and not is_held(path)


def test_a_holder_that_dies_lets_go(tmp_path):
    path = tmp_path / "x.lock"
    other = holder(path)
    other.send_signal(signal.SIGKILL)
    other.communicate(timeout=60)
    with held(path, on_wait=lambda: (_ for _ in ()).throw(AssertionError("waited"))):
        pass


def test_held_for_life_by_one_process_only(tmp_path):
    path = tmp_path / "announce.lock"
    first = holder(path, "for-life")
    second = subprocess.run([sys.executable, "-c", HOLDER, str(path), "for-life"], input="\n",
                            capture_output=True, text=True, timeout=60)
    assert second.stdout == "refused\n"
    assert hold_for_life(path) is False
    first.communicate("\n", timeout=60)
    wait_for(lambda: not is_held(path))


def test_no_lock_file_no_lock_and_no_failure(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "a-file" / "x.lock"
    ran = []
    with held(path) as guarded:
        ran.append(guarded)
    assert ran == [False] and not is_held(path)
