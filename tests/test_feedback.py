"""Negative references and relevance feedback (search/feedback.py, `Collection.nearest(...,
unlike=...)`, `Collection.refine`, `similar --unlike / --like`), on generated vectors whose
right answers are known by construction."""

import csv
import io
import json

import numpy as np
import pytest

import lookalike
from lookalike.cli import main
from lookalike.errors import LookalikeError
from lookalike.search.feedback import NEGATIVE_RULES, REFINE_METHODS, negative_cost

DIM = 8


def paths(prefix, n):
    return [f"/v/{prefix}{i:03d}.jpg" for i in range(n)]


def near(centre, n, rng, spread=0.02):
    centre = np.asarray(centre, dtype=np.float64)
    return centre + spread * rng.normal(size=(n, DIM))


def axis(*weights):
    v = np.zeros(DIM)
    v[: len(weights)] = weights
    return v


@pytest.fixture
def two_sides(tmp_path):
    """The reference R (along axis 0); cluster A a little towards axis 1 (nearest to R),
    cluster B a little further towards axis 2; far images elsewhere."""
    rng = np.random.default_rng(3)
    a, b = near(axis(1, 0.3), 20, rng), near(axis(1, 0, 0.38), 20, rng)
    far = rng.normal(size=(60, DIM)) + axis(0, 0, 0, 3)
    vectors = np.vstack([axis(1)[None], a, b, far]).astype(np.float32)
    names = ["/v/ref.jpg"] + paths("a", 20) + paths("b", 20) + paths("far", 60)
    db = tmp_path / "c.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors(names, vectors, model="mine")
    return db, names, vectors


def test_a_negative_pushes_its_cluster_out_and_the_answer_stays_exact(two_sides):
    db, names, vectors = two_sides
    with lookalike.Collection.open(db) as col:
        plain = col.nearest("/v/ref.jpg", k=10)
        assert all("/a" in p for p in plain.paths)  # A is nearest ...
        for rule in NEGATIVE_RULES:
            res = col.nearest("/v/ref.jpg", k=10, unlike=["/v/a000.jpg"], rule=rule)
            assert all("/b" in p for p in res.paths), (rule, res.paths)  # ... until unliked
            # Exact: the same order as ranking every image by the rule's cost in numpy.
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            d_pos, d_neg = 1 - unit @ unit[0], 1 - unit @ unit[1]
            cost = negative_cost(d_pos, d_neg, rule)
            cost[[0, 1]] = np.inf  # the reference and the negative are left out
            expected = [names[i] for i in np.lexsort((np.arange(len(cost)),
                                                      np.round(cost, 12)))[:10]]
            assert res.paths == expected
            np.testing.assert_allclose(res.distances, d_pos[[names.index(p) for p in res.paths]],
                                       atol=1e-6)
            np.testing.assert_allclose(res.unlike_distances,
                                       d_neg[[names.index(p) for p in res.paths]], atol=1e-6)
            assert res.nearest_unlike == ["/v/a000.jpg"] * 10
            assert np.all(np.diff(res.scores) <= 1e-12)  # higher first


def test_negatives_by_id_and_as_vectors_give_the_same_answer(two_sides):
    db, names, vectors = two_sides
    with lookalike.Collection.open(db) as col:
        by_path = col.nearest("/v/ref.jpg", k=5, unlike=["/v/a000.jpg"])
        by_vector = col.nearest(vectors[0][None], k=6, unlike=vectors[1][None])
        assert [p for p in by_vector.paths if p not in ("/v/ref.jpg", "/v/a000.jpg")][:5] \
            == by_path.paths
        assert by_vector.unlike_references == ["vector 0"]


def mixed_clusters(tmp_path):
    """A reference halfway between two tight clusters A (wanted) and B: the plain answer
    mixes them."""
    rng = np.random.default_rng(5)
    a, b = near(axis(1, 1), 30, rng, 0.15), near(axis(1, 0, 1), 30, rng, 0.15)
    far = rng.normal(size=(140, DIM)) + axis(0, 0, 0, 2, 2)
    vectors = np.vstack([axis(1, 0.5, 0.5)[None], a, b, far]).astype(np.float32)
    names = ["/v/ref.jpg"] + paths("a", 30) + paths("b", 30) + paths("far", 140)
    db = tmp_path / "m.db"
    with lookalike.Collection.create(db) as col:
        col.add_vectors(names, vectors, model="mine")
    return db


@pytest.mark.parametrize("method", REFINE_METHODS)
def test_one_round_of_feedback_recovers_the_wanted_cluster(tmp_path, method):
    db = mixed_clusters(tmp_path)
    with lookalike.Collection.open(db) as col:
        first = col.nearest("/v/ref.jpg", k=10)
        right = [p for p in first.paths if "/a" in p]
        wrong = [p for p in first.paths if "/b" in p]
        assert right and wrong  # the first answer is mixed
        res = col.refine(["/v/ref.jpg"] + right, wrong, k=10, method=method)
        assert all("/a" in p for p in res.paths), res.paths
        assert not set(res.paths) & set(first.paths)  # the marked ones are left out
        assert res.unlike_references == wrong and len(res.references) == 1 + len(right)
        assert np.all(np.diff(res.scores) <= 1e-6)
        again = col.refine(["/v/ref.jpg"] + right, wrong, k=10, method=method,
                           include_references=True)
        assert all("/a" in p for p in again.paths) and not set(wrong) & set(again.paths)


@pytest.mark.parametrize("call, words", [
    (lambda col: col.nearest("/v/ref.jpg", unlike=["/v/ref.jpg"]), "both a reference"),
    (lambda col: col.refine(["/v/a000.jpg"], ["/v/b000.jpg", "/v/a000.jpg"]), "both"),
    (lambda col: col.refine([], ["/v/b000.jpg"]), "at least one image marked"),
    (lambda col: col.nearest("/v/ref.jpg", unlike=["/v/nothing.jpg"]), "nothing.jpg"),
    (lambda col: col.refine(["/v/a000.jpg"], method="magic"), "rocchio"),
    (lambda col: col.nearest("/v/ref.jpg", unlike=["/v/a000.jpg"], rule="magic"), "subtract"),
    (lambda col: col.nearest("/v/ref.jpg", unlike=["/v/a000.jpg"], approximate=True), "exactly"),
])
def test_bad_feedback_is_one_clear_error(two_sides, call, words):
    db, _, _ = two_sides
    with lookalike.Collection.open(db) as col, pytest.raises(LookalikeError) as caught:
        call(col)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def cli(capsys, *args):
    code = main(["similar", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_unlike_and_like_write_the_new_fields(two_sides, capsys):
    db = two_sides[0]
    code, out, err = cli(capsys, "/v/ref.jpg", "--unlike", "/v/a000.jpg", "--db", db, "-k", "3")
    assert code == 0, err
    header, *rows = out.splitlines()[1:]
    assert "unlike distance" in header and "score" not in header
    shown = [r for r in rows if "/v/" in r]
    assert len(shown) == 3 and all("/v/b0" in r for r in shown)
    code, out, _ = cli(capsys, "/v/ref.jpg", "--unlike", "/v/a000.jpg", "--db", db, "-k", "3",
                       "--format", "json")
    records = json.loads(out)
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert all(r["nearest_unlike"] == "/v/a000.jpg" and r["unlike_distance"] > r["distance"]
               and isinstance(r["score"], float) for r in records)
    code, out, _ = cli(capsys, "--like", "/v/a000.jpg", "/v/a001.jpg", "--unlike", "/v/b000.jpg",
                       "--db", db, "-k", "4", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and all("/a" in r["path"] for r in rows)
    assert {"score", "unlike_distance", "nearest_unlike"} <= set(rows[0])
    # Without negatives the records are as before.
    code, out, _ = cli(capsys, "/v/ref.jpg", "--db", db, "-k", "2", "--format", "json")
    assert "score" not in json.loads(out)[0]


@pytest.mark.parametrize("args, words", [
    (["/v/ref.jpg", "--unlike", "/v/ref.jpg"], "both a reference"),
    (["/v/ref.jpg", "--unlike", "/v/missing.jpg"], "missing.jpg"),
    (["--unlike", "/v/a000.jpg"], "at least one reference"),
    (["--like", "/v/a000.jpg", "--unlike", "/v/a000.jpg"], "both"),
])
def test_cli_bad_feedback_is_one_line(two_sides, capsys, args, words):
    code, out, err = cli(capsys, *args, "--db", two_sides[0])
    lines = err.strip().splitlines()
    assert code == 1 and not out
    assert len(lines) == 1 and lines[0].startswith("lookalike: error: ") and words in lines[0]


# -- the fitted model and the search that ranks by it ------------------------------------------

@pytest.mark.parametrize("positives", [1, 4, 12])
def test_the_logistic_fit_is_scikit_learns_optimum(positives):
    from sklearn.linear_model import LogisticRegression

    from lookalike.search.feedback import LOGISTIC_C, _fit_logistic

    rng = np.random.default_rng(positives)
    x = rng.standard_normal((210, 64)) + 0.3
    x[:positives] += 0.8 * rng.standard_normal(64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w, b = _fit_logistic(x[:positives], x[positives:])
    y = np.r_[np.ones(positives), np.zeros(210 - positives)]
    theirs = LogisticRegression(C=LOGISTIC_C, class_weight="balanced", tol=1e-10,
                                max_iter=5000).fit(x, y)
    np.testing.assert_allclose(w, theirs.coef_[0], rtol=1e-4, atol=1e-4)
    assert b == pytest.approx(theirs.intercept_[0], abs=1e-4)


@pytest.mark.parametrize("method", REFINE_METHODS)
def test_refine_rows_by_search_are_those_of_scoring_every_row(method):
    from lookalike.search.exact import ExactIndex
    from lookalike.search.feedback import refine_rows, refine_scores, top_rows

    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((3000, 32)).astype(np.float32)
    index = ExactIndex(matrix)
    pos, neg = matrix[[1, 2, 3]], matrix[[4]]
    exclude, candidates = np.array([1, 2, 3, 4]), np.arange(0, 3000, 2)
    scores = refine_scores(matrix, index.inverse_norms(), pos, neg, method)
    want = top_rows(scores, 20, candidates, exclude)
    rows, got = refine_rows(index, pos, neg, method, 20, candidates, exclude)
    assert rows.tolist() == want.tolist()
    np.testing.assert_allclose(got, scores[want], rtol=1e-4, atol=1e-5)
