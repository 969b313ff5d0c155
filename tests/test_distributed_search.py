"""Search across workers: the matrix cut in shards beside the database, each shard searched
alone, the answers merged; the same ids and distances as the search on one machine."""

import os
import socket
import time

import numpy as np
import pytest

import lookalike
from lookalike.distributed.client import ClusterError
from lookalike.distributed.search import merge, search_shard
from lookalike.distributed.shards import current_shards, shard_count
from lookalike.errors import LookalikeError
from lookalike.search.exact import ExactIndex
from test_cli import run

MODEL = "mine"
METRICS = ["cosine", "euclidean", "manhattan", "pearson", "absolute pearson", "spearman",
           "jaccard"]


def collection(tmp_path, n=240, dim=24, seed=0, start=0, col=None):
    """A collection of `n` synthetic vectors (no image read), some of them exact copies (ties)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors[rng.random((n, dim)) < 0.3] = 0     # zeros, so Jaccard has something to count
    vectors[5] = vectors[4]                      # a tie: broken by id everywhere
    col = col or lookalike.Collection.create(tmp_path / "c.db")
    col.add_vectors([f"/pictures/{i}.png" for i in range(start, start + n)], vectors, MODEL)
    return col


def as_answer(res):
    return res.ids, np.asarray(res.distances)


def test_shards_cut_in_id_order_and_recut_when_the_catalogue_changes(tmp_path):
    col = collection(tmp_path, n=100)
    ids, matrix = col.vectors(MODEL)
    shards = current_shards(col.store, MODEL, 3)
    assert shards.rows == (33, 33, 34) and len(shards) == 100
    parts = [np.load(p) for p in shards.parts]
    np.testing.assert_array_equal(np.concatenate(parts), matrix)
    np.testing.assert_array_equal(
        np.concatenate([np.load(p.replace(".npy", ".ids.npy")) for p in shards.parts]), ids)
    assert current_shards(col.store, MODEL, 3) == shards     # the same cut: not made again
    collection(tmp_path, n=10, start=100, col=col)
    again = current_shards(col.store, MODEL, 3)
    assert len(again) == 110 and again.generation != shards.generation
    assert not any(os.path.exists(p) for p in shards.parts)  # the old cut went


def test_shard_count_gives_each_worker_a_share_and_caps_the_rows():
    assert shard_count(100, workers=2) == 2
    assert shard_count(1, workers=4) == 1            # never an empty shard
    assert shard_count(1_000_000, workers=2, shard_rows=250_000) == 4


@pytest.mark.parametrize("metric", METRICS)
def test_shards_searched_alone_and_merged_answer_as_the_whole_matrix(tmp_path, metric):
    col = collection(tmp_path)
    ids, matrix = col.vectors(MODEL)
    shards = current_shards(col.store, MODEL, 4)
    queries = np.asarray(matrix[[4, 17, 200]], np.float64)     # several references
    exclude = ids[[4, 17, 200]]
    for k in (1, 10, None):
        rows, dist, which = ExactIndex(np.asarray(matrix)).search(
            queries, k, metric, exclude=np.array([4, 17, 200]), return_query=True)
        found = merge([search_shard(p, queries, k, metric, exclude, None)
                       for p in shards.parts], k)
        np.testing.assert_array_equal(found[0], ids[rows])
        np.testing.assert_allclose(found[1], dist, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(found[2], which)


def test_a_filter_reaches_every_shard(tmp_path):
    col = collection(tmp_path)
    ids, matrix = col.vectors(MODEL)
    shards = current_shards(col.store, MODEL, 3)
    among = ids[::7]
    found = merge([search_shard(p, matrix[:1], 5, "cosine", None, among) for p in shards.parts], 5)
    assert set(found[0]) <= set(among) and len(found[0]) == 5


def test_mahalanobis_unlike_and_approximate_are_refused_before_connecting(tmp_path):
    col = collection(tmp_path, n=20)
    started = time.monotonic()
    with pytest.raises(LookalikeError, match="covariance") as err:
        col.nearest(np.ones(24), metric="mahalanobis", model=MODEL, cluster="tcp://10.255.255.1:1")
    assert "\n" not in str(err.value)
    with pytest.raises(LookalikeError, match="approximate"):
        col.nearest(np.ones(24), model=MODEL, approximate=True, cluster="local:1")
    with pytest.raises(LookalikeError, match="--unlike"):
        col.nearest(np.ones(24), model=MODEL, unlike=np.zeros(24), cluster="local:1")
    assert time.monotonic() - started < 2


def free_port() -> int:
    with socket.socket() as s:   # free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line_within_seconds(tmp_path):
    col = collection(tmp_path, n=20)
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        col.nearest(np.ones(24), model=MODEL, cluster=address)
    assert time.monotonic() - started < 20
    col.close()
    proc = run("similar", "/pictures/3.png", "--db", tmp_path / "c.db", "--model", MODEL,
               "--cluster", address, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"lookalike: error: cannot reach the Dask scheduler at {address}")


@pytest.mark.slow
def test_a_local_cluster_answers_as_this_machine_and_sees_new_images(tmp_path):
    distributed = pytest.importorskip("distributed")
    col = collection(tmp_path, n=300)
    refs = ["/pictures/4.png", "/pictures/150.png", "/pictures/299.png"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for metric in METRICS:
            for k in (1, 10):
                here = col.nearest(refs, k=k, metric=metric, model=MODEL)
                there = col.nearest(refs, k=k, metric=metric, model=MODEL, cluster=client)
                assert there.ids == here.ids, metric
                np.testing.assert_allclose(there.distances, here.distances, rtol=0, atol=1e-12)
                assert list(there.reference_index) == list(here.reference_index)
        collection(tmp_path, n=30, seed=1, start=300, col=col)   # new images: a new cut
        here = col.nearest(refs, k=None, model=MODEL)
        there = col.nearest(refs, k=None, model=MODEL, cluster=client)
        assert len(there) == 327 and there.ids == here.ids
        np.testing.assert_allclose(there.distances, here.distances, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_similar_cluster_on_the_command_line(tmp_path):
    col = collection(tmp_path, n=50)
    col.close()
    args = ["similar", "/pictures/3.png", "/pictures/9.png", "--db", tmp_path / "c.db",
            "--model", MODEL, "-k", "5", "--format", "csv"]
    here = run(*args).stdout
    there = run(*args, "--cluster", "local:2").stdout
    assert there == here and len(here.splitlines()) == 6
