"""The memory-mapped search matrix: built once per catalogue generation, shared, never stale."""

import numpy as np

import lookalike
from lookalike.catalogue.matrix import cache_folder, load_matrix
from lookalike.catalogue.store import ImageRow, Store


def add(store, name, vector, model="m"):
    h = name.encode().ljust(16, b"_")
    store.write([ImageRow(f"/p/{name}".encode(), f"/p/{name}", "/p", name, None, 1, 1, 2, 2, h)],
                [(h, model, np.asarray(vector, np.float32))])


def test_matrix_is_memory_mapped_and_rebuilt_only_when_the_catalogue_changes(tmp_path):
    with Store(tmp_path / "c.db") as store:
        add(store, "a", [1, 0, 0])
        add(store, "b", [0, 1, 0])
        ids, matrix = load_matrix(store, "m")
        assert isinstance(matrix, np.memmap) and matrix.dtype == np.float32
        np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0]])
        files = sorted(p.name for p in cache_folder(store).iterdir())
        again_ids, again = load_matrix(store, "m")          # same generation: same files
        assert sorted(p.name for p in cache_folder(store).iterdir()) == files
        add(store, "c", [0, 0, 1])
        ids, matrix = load_matrix(store, "m")
        assert len(ids) == 3 and matrix[2, 2] == 1
        names = sorted(p.name for p in cache_folder(store).iterdir())
        assert len(names) == 2 and not set(names) & set(files)   # old generation removed


def test_a_long_lived_collection_sees_images_indexed_by_another_writer(tmp_path):
    db = tmp_path / "c.db"
    with Store(db) as store:
        add(store, "a", [1, 0, 0], model="squeezenet")
        add(store, "b", [0.9, 0.1, 0], model="squeezenet")
    reader = lookalike.Collection.open(db)
    assert reader.nearest(np.array([1.0, 0, 0]), k=5).paths == ["/p/a", "/p/b"]
    with Store(db) as writer:
        add(writer, "c", [1, 0.01, 0], model="squeezenet")
    assert reader.nearest(np.array([1.0, 0, 0]), k=5).paths == ["/p/a", "/p/c", "/p/b"]


def test_unwritable_cache_falls_back_to_memory(tmp_path):
    with Store(tmp_path / "c.db") as store:
        add(store, "a", [1, 2, 3])
        cache_folder(store).write_text("a file where the folder should be")
        ids, matrix = load_matrix(store, "m")
        np.testing.assert_array_equal(matrix, [[1, 2, 3]])


def test_temporary_files_of_a_killed_build_are_removed_by_the_next(tmp_path):
    """A build killed mid-way (SIGKILL: no clean-up runs) leaves its temporary files; the
    next build removes those untouched for long, never one a live build is writing."""
    import os
    import time

    with Store(tmp_path / "c.db") as store:
        add(store, "a", [1, 0, 0])
        load_matrix(store, "m")
        folder = cache_folder(store)
        killed, live = folder / "tmpkilled.tmp", folder / "m.g9.ids.npy.tmp"
        killed.write_bytes(b"half a matrix")
        live.write_bytes(b"being written")
        old = time.time() - 3600
        os.utime(killed, (old, old))
        add(store, "b", [0, 1, 0])
        ids, matrix = load_matrix(store, "m")
        assert len(ids) == 2
        assert not killed.exists() and live.exists()


def test_simultaneous_builds_of_the_same_generation_never_show_a_partial_file(tmp_path):
    """A server's threads may all find the cache stale at once and build it side by side:
    every one of them must get the whole matrix."""
    import threading

    with Store(tmp_path / "c.db") as store:
        add(store, "a", [1, 0, 0])
        for round_ in range(15):
            add(store, f"r{round_}", [0, 1, round_])
            results, errors = [], []

            def load():
                try:
                    results.append(load_matrix(store, "m"))  # noqa: B023 - joined below
                except Exception as exc:  # noqa: BLE001 - the test reports any failure
                    errors.append(exc)  # noqa: B023 - joined below

            threads = [threading.Thread(target=load) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            for ids, matrix in results:
                assert len(ids) == round_ + 2 and matrix.shape == (round_ + 2, 3)
