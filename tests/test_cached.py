"""catalogue/cached.py: answers kept for one catalogue generation, computed once even when
threads ask at the same time."""

import threading
import time

import pytest

from lookalike.catalogue.cached import ByGeneration


def test_an_answer_is_kept_until_the_generation_moves():
    cache, calls = ByGeneration(), []
    assert cache.get(1, "count", lambda: calls.append(1) or 10) == 10
    assert cache.get(1, "count", lambda: calls.append(1) or 11) == 10
    assert cache.get(2, "count", lambda: calls.append(1) or 12) == 12
    cache.clear()
    assert cache.get(2, "count", lambda: 13) == 13
    assert len(calls) == 2


def test_an_answer_being_computed_is_waited_for_not_computed_twice():
    cache, calls, started = ByGeneration(), [], threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return 42

    other = threading.Thread(target=cache.get, args=(1, "models", slow))
    other.start()
    started.wait(10)
    assert cache.get(1, "models", slow) == 42
    other.join()
    assert len(calls) == 1


def test_a_failed_computation_is_tried_again():
    cache = ByGeneration()

    def broken():
        raise OSError("disk")

    with pytest.raises(OSError):
        cache.get(1, "n", broken)
    assert cache.get(1, "n", lambda: 5) == 5


def test_many_keys_start_again():
    cache = ByGeneration(limit=3)
    for key in range(5):
        cache.get(1, key, lambda key=key: key)
    assert cache.get(1, 0, lambda: "again") == "again"


def test_a_peek_sees_only_answers_known_for_this_generation_and_computes_nothing():
    cache, calls = ByGeneration(), []
    assert cache.peek(1, "models") is None
    cache.get(1, "models", lambda: calls.append(1) or {"m": 3})
    assert cache.peek(1, "models") == {"m": 3}
    assert cache.peek(2, "models") is None  # the catalogue moved on: stale, not shown
    assert cache.peek(1, "other") is None
    assert len(calls) == 1
