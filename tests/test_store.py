"""The SQLite catalogue: schema versions, embeddings by content, clear errors for wrong files."""

import sqlite3

import numpy as np
import pytest

from lookalike.catalogue.store import SCHEMA_VERSION, ImageRow, Store, StoreError


def row(name: str, content: bytes | None = b"h" * 16, root: str = "/pics", **kw) -> ImageRow:
    return ImageRow(f"/pics/{name}".encode(), f"/pics/{name}", root, name, None, 10, 1,
                    width=4, height=3, content_hash=content, **kw)


def test_new_database_is_wal_and_at_the_current_schema(tmp_path):
    with Store(tmp_path / "c.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.integrity_check() == "ok"


def test_rows_and_vectors_round_trip(tmp_path):
    v = np.arange(6, dtype=np.float32)
    with Store(tmp_path / "c.db") as store:
        store.write([row("a.png"), row("b.png", content=b"g" * 16)], [(b"h" * 16, "m", v)])
        ids, matrix = store.vectors("m")
        assert len(ids) == 1 and np.array_equal(matrix[0], v)   # b.png has no vector yet
        assert store.find(b"/pics/a.png")["width"] == 4
        assert store.hashes_with_embedding("m") == {b"h" * 16}
        assert store.models() == {"m": 1}


def test_upsert_keeps_the_id_and_updates_fields(tmp_path):
    with Store(tmp_path / "c.db") as store:
        store.write([row("a.png")])
        first = store.find(b"/pics/a.png")["id"]
        store.write([row("a.png", skip_reason="not an image")])
        again = store.find(b"/pics/a.png")
        assert again["id"] == first and again["skip_reason"] == "not an image"
        assert store.count_images() == 1 and store.count_images(usable_only=True) == 0


def test_copies_share_one_cached_vector(tmp_path):
    v = np.ones(3, np.float32)
    with Store(tmp_path / "c.db") as store:
        store.write([row("a.png"), row("copy.png")], [(b"h" * 16, "m", v)])
        ids, matrix = store.vectors("m")
        assert len(ids) == 2 and np.array_equal(matrix[0], matrix[1])


def test_ids_under_a_folder_do_not_leak_into_siblings(tmp_path):
    with Store(tmp_path / "c.db") as store:
        store.write([ImageRow(p.encode(), p, "/", "x", None, 1, 1)
                     for p in ["/a/x.png", "/a/sub/y.png", "/a-b/z.png", "/ab/w.png"]])
        assert sorted(store.ids_under(b"/a")) == [b"/a/sub/y.png", b"/a/x.png"]


def test_a_failed_transaction_leaves_nothing(tmp_path):
    with Store(tmp_path / "c.db") as store:
        with pytest.raises(sqlite3.IntegrityError):
            store.write([row("a.png"), ImageRow(None, "x", None, None, None, None, None)])
        assert store.count_images() == 0


def test_newer_schema_is_refused_with_one_clear_line(tmp_path):
    path = tmp_path / "c.db"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer version of lookalike"):
        Store(path)


def test_files_that_are_not_lookalike_databases_are_refused(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("hello " * 100)
    with pytest.raises(StoreError, match="not a lookalike database"):
        Store(text)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name TEXT)")
    con.close()
    with pytest.raises(StoreError, match="not a lookalike database"):
        Store(other)
    with pytest.raises(StoreError, match="no collection there"):
        Store(tmp_path / "missing.db", create=False)
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_version_1_databases_are_upgraded_in_place(tmp_path):
    from lookalike.catalogue.store import MIGRATIONS

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[1])
    con.execute("INSERT INTO embeddings VALUES (?, 'm', ?)",
                (b"h" * 16, np.ones(2, "<f4").tobytes()))
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.hashes_with_embedding("m") == {b"h" * 16}
        plan = store.conn.execute("EXPLAIN QUERY PLAN SELECT content_hash FROM embeddings "
                                  "WHERE model = 'm'").fetchall()
        assert "embeddings_model" in str(plan)


def test_version_2_databases_gain_the_extras_column(tmp_path):
    from lookalike.catalogue.store import MIGRATIONS

    path = tmp_path / "v2.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[1] + MIGRATIONS[2])
    con.execute("INSERT INTO images(locator, path, indexed_at) VALUES (?, '/pics/a.png', 1)",
                (b"/pics/a.png",))
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 6
        assert store.find(b"/pics/a.png")["extras"] is None       # folder images: no extras
        assert not store.has_extras() and store.extra_columns() == []
        assert store.not_duplicates() == []                         # and no decisions yet


def test_not_duplicates_are_pairs_of_content_hashes_kept_once(tmp_path):
    with Store(tmp_path / "c.db") as store:
        assert store.mark_not_duplicates([(b"b" * 16, b"a" * 16), (b"a" * 16, b"b" * 16)]) == 1
        assert store.not_duplicates() == [(b"a" * 16, b"b" * 16)]
        assert store.mark_not_duplicates([(b"a" * 16, b"b" * 16)]) == 0
        assert store.mark_not_duplicates([(b"b" * 16, b"a" * 16)], marked=False) == 1
        assert store.not_duplicates() == []


def test_table_rows_keep_their_columns_and_can_be_updated_alone(tmp_path):
    with Store(tmp_path / "c.db") as store:
        store.write([row("a.png", root="/t.csv", extras='{"label": "cat", "n": 1}'),
                     row("b.png", root="/t.csv", extras='{"n": 2, "extra": null}'),
                     row("c.png")])
        assert store.has_extras()
        assert store.extra_columns() == ["label", "n", "extra"]
        assert sorted(store.ids_from_root("/t.csv")) == [b"/pics/a.png", b"/pics/b.png"]
        before = store.find(b"/pics/a.png")
        store.update_metadata([(b"/pics/a.png", "/t.csv", "a", "pets", '{"label": "dog"}')])
        after = store.find(b"/pics/a.png")
        assert (after["category"], after["extras"]) == ("pets", '{"label": "dog"}')
        assert after["content_hash"] == before["content_hash"] and after["id"] == before["id"]


def test_a_snapshot_reads_one_state_of_the_catalogue_and_each_setting_once(tmp_path):
    with Store(tmp_path / "c.db") as store, Store(tmp_path / "c.db", create=False) as other:
        store.write([row("a.png")])
        before = store.generation
        with store.snapshot():
            assert store.generation == before
            other.write([row("b.png")])  # another process's write, while the snapshot lasts
            other.set_setting("last_model", "m")
            assert store.generation == before and store.get_setting("last_model") is None
            assert store.count_images() == 1
            with store.snapshot():  # an inner snapshot is the outer one
                assert store.generation == before
            assert store.get_setting("last_model", "none") == "none"
        assert store.generation > before and store.get_setting("last_model") == "m"
        assert store.count_images() == 2
        with pytest.raises(sqlite3.OperationalError), store.snapshot():
            store.set_setting("k", "v")  # nothing is written inside a snapshot
        assert store.get_setting("k") is None
        store.set_setting("k", "v")  # and the snapshot is over
        assert store.get_setting("k") == "v"
