"""Images in an object store: `index s3://bucket/prefix` against a real S3 server (moto's, on
127.0.0.1, started once for the session), with real image files uploaded."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import lookalike
from imagefactory import pattern
from lookalike.errors import LookalikeError
from lookalike.formats.thumbnails import read_image
from lookalike.ingest.originals import FileChanged, read_catalogued
from test_cli import run

MODEL = "squeezenet"


@pytest.fixture(scope="session")
def s3():
    """An S3 file system (s3fs) on a moto server of this session; AWS_* variables point every
    client there, the CLI run as a process included."""
    server_module = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
        yield s3fs.S3FileSystem(skip_instance_cache=True)
    server.stop()


_buckets = iter(range(1_000_000))


@pytest.fixture
def bucket(s3):
    name = f"photos-{next(_buckets)}"
    s3.mkdir(name)
    return name


def png(seed: int, size=(96, 64)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pattern(*size, seed=seed)).save(out, "PNG")
    return out.getvalue()


def upload(s3, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        s3.pipe(f"{bucket}/{key}", data)


def catalogued(col) -> list[dict]:
    """Every usable image's catalogue row (content hash and extras included)."""
    return col.store.rows([r["id"] for r in col.images(limit=None)[1]])


def test_a_prefix_is_indexed_like_a_folder(s3, bucket, tmp_path):
    upload(s3, bucket, {"set/cats/a.png": png(1), "set/cats/b.png": png(2),
                        "set/dogs/c.png": png(3), "set/d.png": png(4),
                        "set/.hidden/e.png": png(5), "set/notes.txt": b"not an image",
                        "other/f.png": png(6)})
    col = lookalike.Collection.index([f"s3://{bucket}/set"], db=tmp_path / "c.db", model=MODEL)
    report = col.last_report
    assert (report.found, report.embedded, report.skipped) == (4, 4, [])
    rows = {r["path"]: r for r in catalogued(col)}
    assert sorted(rows) == [f"s3://{bucket}/set/{k}" for k in
                            ("cats/a.png", "cats/b.png", "d.png", "dogs/c.png")]
    assert rows[f"s3://{bucket}/set/cats/a.png"]["category"] == "cats"
    assert rows[f"s3://{bucket}/set/d.png"]["category"] is None
    assert rows[f"s3://{bucket}/set/cats/a.png"]["name"] == "a"
    # an indexed object is a reference by its URL, and read back for the viewer
    res = col.nearest(f"s3://{bucket}/set/cats/a.png", k=3)
    assert len(res) == 3 and f"s3://{bucket}/set/cats/a.png" not in res.paths
    row = rows[f"s3://{bucket}/set/dogs/c.png"]
    assert read_catalogued(row["path"].encode(), row["content_hash"]) == png(3)
    assert read_image(row["path"]) == png(3)


def test_reindexing_skips_unchanged_objects_and_sees_changed_and_deleted_ones(
        s3, bucket, tmp_path):
    upload(s3, bucket, {f"p/{i}.png": png(i) for i in range(4)})
    url = f"s3://{bucket}/p"
    col = lookalike.Collection.index([url], db=tmp_path / "c.db", model=MODEL)
    assert col.last_report.embedded == 4
    col.add([url], model=MODEL)
    assert (col.last_report.unchanged, col.last_report.embedded) == (4, 0)

    old = next(r["content_hash"] for r in catalogued(col) if r["path"].endswith("/1.png"))
    # no wait: S3 keeps the last change to the second, and the ETag tells this one anyway
    upload(s3, bucket, {"p/1.png": png(41)})
    s3.rm(f"{bucket}/p/3.png")
    col.add([url], model=MODEL)
    report = col.last_report
    assert (report.found, report.unchanged, report.embedded, report.removed) == (3, 2, 1, 1)
    assert sorted(r["path"].rsplit("/", 1)[1] for r in catalogued(col)) == \
        ["0.png", "1.png", "2.png"]
    with pytest.raises(FileChanged):   # the viewer refuses bytes that are not those indexed
        read_catalogued(f"{url}/1.png".encode(), old)


def test_the_same_size_rewritten_within_a_second_is_seen_by_its_etag(s3, bucket, tmp_path):
    a, b = png(7), png(8)
    b = b[:len(a)] if len(b) >= len(a) else b + b"\0" * (len(a) - len(b))  # same size
    upload(s3, bucket, {"q/x.png": a})
    col = lookalike.Collection.index([f"s3://{bucket}/q"], db=tmp_path / "c.db", model=MODEL)
    upload(s3, bucket, {"q/x.png": b})
    col.add([f"s3://{bucket}/q"], model=MODEL)
    assert col.last_report.unchanged == 0   # read again (b may not even decode: then skipped)


def test_a_broken_object_is_skipped_with_its_reason(s3, bucket, tmp_path):
    upload(s3, bucket, {"b/good.png": png(1), "b/broken.png": png(2)[:60],
                        "b/text.jpg": b"hello, not a picture"})
    col = lookalike.Collection.index([f"s3://{bucket}/b"], db=tmp_path / "c.db", model=MODEL)
    skipped = dict(col.last_report.skipped)
    assert col.last_report.embedded == 1
    assert set(skipped) == {f"s3://{bucket}/b/broken.png", f"s3://{bucket}/b/text.jpg"}
    assert all(reason and "\n" not in reason for reason in skipped.values())


def test_a_table_may_name_objects_by_url(s3, bucket, tmp_path):
    upload(s3, bucket, {"t/a.png": png(1), "t/b.png": png(2)})
    table = tmp_path / "list.csv"
    table.write_text(f"image,label\ns3://{bucket}/t/a.png,one\ns3://{bucket}/t/b.png,two\n"
                     f"s3://{bucket}/t/gone.png,three\n", encoding="utf-8")
    col = lookalike.Collection.index([table], db=tmp_path / "c.db", model=MODEL)
    assert col.last_report.embedded == 2
    assert dict(col.last_report.skipped) == {
        f"s3://{bucket}/t/gone.png": "no such object (named in the table)"}
    extras = {r["path"]: json.loads(r["extras"]) for r in catalogued(col)}
    assert extras[f"s3://{bucket}/t/b.png"] == {"label": "two"}
    col.add([table], model=MODEL)
    assert col.last_report.unchanged == 2


@pytest.mark.slow  # over a second on the 2-core machine
def test_a_missing_bucket_is_one_clear_line(s3, tmp_path):
    with pytest.raises(LookalikeError, match="no such bucket") as err:
        lookalike.Collection.index(["s3://no-such-bucket/x"], db=tmp_path / "c.db", model=MODEL)
    assert "\n" not in str(err.value)
    proc = run("index", "s3://no-such-bucket/x", "--db", tmp_path / "c.db", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "lookalike: error: s3://no-such-bucket/x: no such bucket")
    assert "Traceback" not in proc.stderr


def test_an_empty_prefix_is_one_clear_line(s3, bucket, tmp_path):
    with pytest.raises(LookalikeError, match="nothing there"):
        lookalike.Collection.index([f"s3://{bucket}/none"], db=tmp_path / "c.db", model=MODEL)


@pytest.mark.parametrize("url, package", [("gs://b/x", "gcsfs"), ("az://c/x", "adlfs")])
def test_a_store_whose_package_is_missing_names_it(url, package, tmp_path):
    pytest.importorskip("fsspec")
    try:
        __import__(package)
        pytest.skip(f"{package} is installed")
    except ImportError:
        pass
    with pytest.raises(LookalikeError, match=package) as err:
        lookalike.Collection.index([url], db=tmp_path / "c.db", model=MODEL)
    assert "\n" not in str(err.value)


def test_an_object_store_collection_searches_like_a_folder_one(s3, bucket, tmp_path):
    images = {f"s/{i}.png": png(i) for i in range(5)}
    upload(s3, bucket, images)
    folder = tmp_path / "s"
    folder.mkdir()
    for key, data in images.items():
        (tmp_path / key).write_bytes(data)
    remote = lookalike.Collection.index([f"s3://{bucket}/s"], db=tmp_path / "r.db", model=MODEL)
    local = lookalike.Collection.index([folder], db=tmp_path / "l.db", model=MODEL)
    ids_r, v_r = remote.vectors(MODEL)
    ids_l, v_l = local.vectors(MODEL)
    np.testing.assert_array_equal(v_r, v_l)


@pytest.mark.slow  # starts a LocalCluster of one worker process (seconds)
def test_a_cluster_indexes_a_prefix_as_a_plain_run_does(s3, bucket, tmp_path):
    """The workers read the objects themselves (the AWS_* settings travel with the
    environment): the same catalogue and vectors as a plain run, and a re-run reads nothing."""
    upload(s3, bucket, {f"set/{c}/{i}.png": png(10 * i + len(c)) for c in ("a", "bb")
                        for i in range(3)} | {"set/broken.png": b"\x89PNG not really"})
    plain = lookalike.Collection.index([f"s3://{bucket}/set"], db=tmp_path / "p.db",
                                       model=MODEL)
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        report = col.add([f"s3://{bucket}/set"], model=MODEL, cluster="local:1", shard_size=2)
        assert report.embedded == 6 and len(report.skipped) == 1
        ids, vectors = col.vectors()
        got = dict(zip([r["path"] for r in col.store.rows(ids.tolist())], vectors))
        again = col.add([f"s3://{bucket}/set"], model=MODEL, cluster="local:1")
    plain_again = plain.add([f"s3://{bucket}/set"], model=MODEL)
    assert again.embedded == plain_again.embedded == 0
    assert (again.unchanged, len(again.skipped)) == (plain_again.unchanged,
                                                     len(plain_again.skipped))
    ids, vectors = plain.vectors()
    want = dict(zip([r["path"] for r in plain.store.rows(ids.tolist())], vectors))
    plain.close()
    assert sorted(got) == sorted(want) and len(want) == 6
    for path, vector in want.items():
        np.testing.assert_allclose(got[path], vector, rtol=1e-5, atol=1e-5, err_msg=path)


def test_an_object_not_indexed_is_no_reference_and_says_so(s3, bucket, tmp_path):
    upload(s3, bucket, {"set/a.png": png(1), "set/b.png": png(2), "elsewhere/c.png": png(3)})
    col = lookalike.Collection.index([f"s3://{bucket}/set"], db=tmp_path / "c.db", model=MODEL)
    with col, pytest.raises(LookalikeError, match="must be indexed first") as err:
        col.nearest(f"s3://{bucket}/elsewhere/c.png")
    assert "\n" not in str(err.value)
