"""Duplicates: groups of copies in a collection, on real files with real edits made here.

Three scikit-image photos, each saved with edits a copy goes through (a byte-identical copy,
the same pixels as PNG, resized, re-encoded as JPEG, slightly cropped, brightened, mirrored,
EXIF-rotated), beside images that look alike without being copies (two regions of one
texture). Any good copy check must group the edits and leave the look-alikes apart.
"""

import json
import shutil

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import lookalike
from imagefactory import write_exif_rotated
from lookalike.analysis import duplicates as dup
from lookalike.cli import main
from lookalike.errors import LookalikeError
from lookalike.formats.records import RECORD_FIELDS

MODEL = "squeezenet"
PHOTOS = ("chelsea", "coffee", "astronaut")
EDITS = ("orig", "same", "png", "half", "jpeg60", "crop", "bright", "mirror", "exif")


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB").resize((240, 180))


def write_copies(folder, name):
    """The photo `name` and its edited copies, each a file of its own."""
    base = _photo(name)
    out = folder / name
    out.mkdir(parents=True)
    base.save(out / "orig.jpg", quality=95)
    shutil.copyfile(out / "orig.jpg", out / "same.jpg")  # the same bytes
    Image.open(out / "orig.jpg").save(out / "png.png")  # the same pixels, another format
    base.resize((120, 90), Image.Resampling.LANCZOS).save(out / "half.jpg", quality=95)
    base.save(out / "jpeg60.jpg", quality=60)
    base.crop((6, 5, 234, 175)).save(out / "crop.jpg", quality=95)
    ImageEnhance.Brightness(base).enhance(1.15).save(out / "bright.jpg", quality=95)
    ImageOps.mirror(base).save(out / "mirror.jpg", quality=95)
    write_exif_rotated(out / "exif.jpg", np.asarray(base), orientation=6)
    return {edit: next(out.glob(f"{edit}.*")) for edit in EDITS}


def write_look_alikes(folder):
    """Two different regions of each of two textures: alike, and not copies."""
    from skimage import data

    folder.mkdir(parents=True)
    out = {}
    for name in ("brick", "grass"):
        texture = Image.fromarray(getattr(data, name)()).convert("RGB")
        for i, box in enumerate([(0, 0, 256, 256), (256, 256, 512, 512)]):
            path = folder / f"{name}{i}.png"
            texture.crop(box).save(path)
            out[(name, i)] = path
    return out


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("dups")
    files = {name: write_copies(root / "photos", name) for name in PHOTOS}
    alike = write_look_alikes(root / "photos" / "textures")
    col = lookalike.Collection.index([root / "photos"], db=root / "d.db", model=MODEL)
    yield col, files, alike, root
    col.close()


def _paths(group):
    return {r["path"] for r in group.rows}


def _id(col, path):
    return col.store.find(str(path).encode())["id"]


@pytest.mark.slow  # over a second on the 2-core machine
def test_near_groups_each_photo_with_its_edited_copies(collection):
    col, files, alike, _ = collection
    groups = col.duplicates()  # tier "near"
    by_photo = {name: [g for g in groups if _paths(g) & {str(p) for p in files[name].values()}]
                for name in PHOTOS}
    for name in PHOTOS:
        assert len(by_photo[name]) >= 1
        found = set().union(*(_paths(g) for g in by_photo[name]))
        # every group holds copies of one photo only: no look-alike, no other photo
        assert found <= {str(p) for p in files[name].values()}
        # the plain edits every copy check must catch
        wanted = {str(files[name][e]) for e in ("orig", "same", "png", "half", "jpeg60",
                                                 "bright", "exif")}
        biggest = max(by_photo[name], key=len)
        assert wanted <= _paths(biggest), name
    textures = {str(p) for p in alike.values()}
    assert not any(_paths(g) & textures for g in groups)


def test_exact_and_pixels_tiers(collection):
    col, files, _, _ = collection
    exact = col.duplicates(tier="exact")
    in_order = sorted(PHOTOS, key=lambda n: _id(col, files[n]["orig"]))
    assert [_paths(g) for g in exact] == [{str(files[n]["orig"]), str(files[n]["same"])}
                                          for n in in_order]
    assert all(d == pytest.approx(0, abs=1e-6) for g in exact for d in g.distances)
    pixels = col.duplicates(tier="pixels")
    assert sorted(map(sorted, map(_paths, pixels))) == sorted(
        sorted(str(files[n][e]) for e in ("orig", "same", "png")) for n in PHOTOS)


def test_similar_is_the_distance_alone(collection):
    col, _, alike, _ = collection
    loose = col.duplicates(tier="similar", threshold=0.9)
    assert any(_paths(g) & {str(p) for p in alike.values()} for g in loose)
    assert col.duplicates(tier="similar", range=(1.5, 2.0)) == []
    tight = col.duplicates(tier="similar", threshold=0.0005)
    assert all(max(g.distances) <= 0.0005 for g in tight)


@pytest.mark.slow  # several seconds of pair checks; ./test.sh runs it
def test_every_member_is_a_checked_copy_of_every_other(collection):
    col, _, _, _ = collection
    groups = col.duplicates()
    check = dup.PairCheck("near", col._image_bytes, 0, 2, *col._duplicate_inputs(None, 2))
    for g in groups:
        for i, a in enumerate(g.ids):
            for b in g.ids[i + 1:]:
                assert check(a, b), (a, b)


@pytest.mark.slow  # the near tier's checks three times over; ./test.sh runs it
def test_threads_give_the_groups_of_one_thread_and_progress_counts_the_pairs(collection):
    col, _, _, _ = collection
    vectors, hashes = col._duplicate_inputs(None, 2)
    calls = []
    one = dup.find_duplicates(vectors, hashes, col._image_bytes, workers=1)
    four = dup.find_duplicates(vectors, hashes, col._image_bytes, workers=4,
                               progress=lambda done, total: calls.append((done, total)))
    assert one == four and len(one) >= 3
    candidates = dup.neighbour_pairs(vectors, vectors, dup.NEIGHBOURS, 0.0,
                                     dup.CANDIDATE_DISTANCE["near"])
    total = len(candidates)
    assert total > dup.PairCheck.CHUNK  # more than one chunk: counts in steps
    assert [t for _, t in calls] == [total] * len(calls)
    assert [d for d, _ in calls] == sorted({min(total, c) for c in
                                            range(dup.PairCheck.CHUNK, total + dup.PairCheck.CHUNK,
                                                  dup.PairCheck.CHUNK)})
    seen = []
    groups = col.duplicates(progress=lambda done, total: seen.append((done, total)))
    assert [g.ids for g in groups] == [ids for ids, _ in one]
    assert seen == calls


def test_a_chain_does_not_make_one_group():
    # A~B and B~C passed the check, A and C are not copies: never one group
    vectors = dup.Vectors(np.arange(1, 5), np.eye(4, dtype=np.float32) + 1)
    copies_of = {(1, 2), (2, 3), (3, 4)}

    class Chain(dup.PairCheck):
        def __call__(self, a, b, d=None):
            return (min(a, b), max(a, b)) in copies_of

    check = Chain("near", bytes, 0, 2, vectors, {})
    groups = dup.complete_groups({p: 0.1 for p in copies_of}, check, transitive=False)
    assert groups == [([2, 1], [0.0, 0.1]), ([3, 4], [0.0, 0.1])]
    for members, _ in groups:
        assert all(check(a, b) for a in members for b in members if a < b)


def planted_copies(n: int = 4000, dim: int = 32, seed: int = 0):
    """Vectors of `n` distinct images (far apart) and, for every 50th, 1-3 copies at cosine
    distance under 0.001; returns (Vectors, the planted groups as sets of ids)."""
    rng = np.random.default_rng(seed)
    rows = [rng.gamma(1.0, 1.0, (n, dim))]
    groups, next_id = [], n
    for original in range(0, n, 50):
        count = 1 + original % 3
        rows.append(rows[0][original] + rng.normal(0, 0.01, (count, dim)))
        groups.append({original, *range(next_id, next_id + count)})
        next_id += count
    matrix = np.vstack(rows).astype(np.float32)
    return dup.Vectors(np.arange(len(matrix)), matrix), groups


def test_the_approximate_graph_finds_every_planted_copy():
    vectors, planted = planted_copies()
    exact = dup.find_duplicates(vectors, {}, bytes, tier="similar", threshold=0.002,
                                method="exact")
    approximate = dup.find_duplicates(vectors, {}, bytes, tier="similar", threshold=0.002,
                                      method="ivf")
    assert sorted(map(sorted, planted)) == sorted(sorted(g) for g, _ in exact)
    # the same groups and representatives; distances differ only by float32 rounding (which
    # may swap two members 1e-7 apart)
    assert [(g[0], sorted(g)) for g, _ in approximate] == [(g[0], sorted(g)) for g, _ in exact]
    assert np.allclose(np.concatenate([sorted(d) for _, d in approximate]),
                       np.concatenate([sorted(d) for _, d in exact]), atol=1e-6)


def test_grouping_works_on_arrays_of_many_pairs():
    # 20,000 pairs and 2,000 triangles with one link missing (a chain of three): each pair
    # is a group, each chain a pair plus a single left out, whatever came as a dict or arrays
    pairs = {(2 * i, 2 * i + 1): 0.01 for i in range(20_000)}
    chains = [(100_000 + 3 * i, 100_001 + 3 * i, 100_002 + 3 * i) for i in range(2_000)]
    pairs.update({(a, b): 0.02 for a, b, _ in chains} | {(b, c): 0.03 for _, b, c in chains})
    vectors = dup.Vectors(np.arange(1), np.ones((1, 2), np.float32))

    class NoMore(dup.PairCheck):
        def __call__(self, a, b, d=None):
            return False

    check = NoMore("near", bytes, 0, 2, vectors, {})
    groups = dup.complete_groups(dup.Pairs.of(pairs), check, transitive=False)
    assert groups[:2] == [([0, 1], [0.0, 0.01]), ([2, 3], [0.0, 0.01])]
    assert len(groups) == 22_000
    assert groups[20_000] == ([100_001, 100_000], [0.0, 0.02])  # most links, nearest first
    assert dup.complete_groups(pairs, check, transitive=False) == groups
    assert dup.complete_groups(pairs, check, transitive=True)[20_000] == (
        [100_001, 100_000, 100_002], [0.0, 0.02, 0.03])


def test_keeper_most_pixels_then_size_then_oldest_then_priority():
    row = dict(width=10, height=10, size=100, mtime_ns=5, path="/a/x.jpg", id=1)
    assert dup.choose_keeper([row, dict(row, id=2, width=20)]) == 2
    assert dup.choose_keeper([row, dict(row, id=2, size=200)]) == 2
    assert dup.choose_keeper([dict(row, id=2, mtime_ns=9), row]) == 1
    other = dict(row, id=2, path="/b/x.jpg")
    assert dup.choose_keeper([row, other]) == 1
    assert dup.choose_keeper([row, other], priority=["/b"]) == 2


@pytest.mark.slow  # several seconds of pair checks; ./test.sh runs it
def test_keeper_of_a_group_is_its_largest_copy(collection):
    col, files, _, _ = collection
    for g in col.duplicates(tier="near"):
        kept = next(r for r in g.rows if r["id"] == g.keep)
        assert kept["width"] * kept["height"] == max(r["width"] * r["height"] for r in g.rows)
        assert not kept["path"].endswith("half.jpg")


def test_not_duplicates_are_remembered_across_reindexing(tmp_path):
    root = tmp_path / "p"
    files = write_copies(root, "coffee")
    db = tmp_path / "n.db"
    col = lookalike.Collection.index([root], db=db, model=MODEL)
    group = col.duplicates(tier="exact")[0]
    assert col.mark_not_duplicates(group.ids) == 1
    assert col.duplicates(tier="exact") == []
    files["same"].touch()  # indexed again: a changed modification time
    col.close()
    col = lookalike.Collection.index([root], db=db, model=MODEL)
    assert col.duplicates(tier="exact") == []
    near = col.duplicates(tier="near")
    assert not any(set(group.ids) <= set(g.ids) for g in near)
    assert col.mark_not_duplicates(group.ids, not_duplicates=False) == 1
    assert len(col.duplicates(tier="exact")) == 1
    col.close()


@pytest.mark.slow  # over a second on the 2-core machine
def test_across_finds_the_copies_in_another_collection(collection, tmp_path):
    col, files, _, _ = collection
    other = tmp_path / "test"
    other.mkdir()
    _photo("coffee").resize((200, 150)).save(other / "leak.jpg", quality=80)
    _photo("rocket").save(other / "fresh.jpg", quality=90)
    with lookalike.Collection.index([other], db=tmp_path / "t.db", model=MODEL) as test:
        leaks = col.duplicates(across=test)
    assert leaks and all(g.rows[1]["path"] == str(other / "leak.jpg") for g in leaks)
    assert {g.rows[0]["path"] for g in leaks} <= {str(p) for p in files["coffee"].values()}
    assert all(g.keep == g.ids[0] and g.rows[1]["collection"] for g in leaks)


def test_bad_input_is_one_clear_line(tmp_path, collection):
    col = collection[0]
    with pytest.raises(LookalikeError, match="unknown tier 'nearish'"):
        col.duplicates(tier="nearish")
    with pytest.raises(LookalikeError, match="between 0 and 2"):
        col.duplicates(threshold=3)
    with pytest.raises(LookalikeError, match="low end"):
        col.duplicates(range=(0.5, 0.1))
    (tmp_path / "one").mkdir()
    _photo("coffee").save(tmp_path / "one" / "c.jpg")
    with (lookalike.Collection.index([tmp_path / "one"], db=tmp_path / "one.db",
                                     model=MODEL) as one,
          pytest.raises(LookalikeError, match="has one image")):
        one.duplicates()
    with (lookalike.Collection.create(tmp_path / "empty.db") as empty,
          pytest.raises(LookalikeError, match="empty")):
        empty.duplicates()


def test_similar_max_distance(collection):
    col, files, _, _ = collection
    res = col.nearest([files["coffee"]["orig"]], k=None, max_distance=0.05)
    assert len(res) and all(d <= 0.05 for d in res.distances)
    assert len(col.nearest([files["coffee"]["orig"]], k=2, max_distance=0.05)) <= 2
    with pytest.raises(LookalikeError, match="max_distance"):
        col.nearest([files["coffee"]["orig"]], max_distance=-1)


# -- the command line ------------------------------------------------------------------------

@pytest.mark.slow  # several seconds of pair checks; ./test.sh runs it
def test_cli_duplicates_in_every_format(collection, capsys, tmp_path):
    col, files, _, _ = collection
    db = str(col.store.path)
    assert main(["duplicates", "--db", db]) == 0
    out = capsys.readouterr()
    table = out.out
    assert table.startswith("3 groups of copies (near), ") and "keep" in table
    # the checks' progress on stderr (plain lines: not a terminal), ending at every pair
    last = out.err.strip().splitlines()[-1]
    assert last.startswith("checking pairs: ") and " pairs (100%)" in last
    done, total = last.split(": ")[1].split(" ")[0].split("/")
    assert done == total and int(total) > 0
    assert main(["duplicates", "--db", db, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["duplicates", "--db", db, "--format", "json", "-o", "-"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert [g["group"] for g in groups] == [1, 2, 3]
    record = groups[0]["images"][0]
    assert set(RECORD_FIELDS) <= set(record) and record["distance"] == 0
    assert sum(r["keep"] for r in groups[0]["images"]) == 1
    assert main(["duplicates", "--db", db, "--tier", "exact", "-o", str(tmp_path / "d.csv")]) == 0
    lines = (tmp_path / "d.csv").read_text().splitlines()
    assert lines[0].startswith("group,group_size,representative,keep,rank,path,distance")
    assert len(lines) == 1 + 6
    capsys.readouterr()
    assert main(["duplicates", "--db", db, "--tier", "pixels", "--format", "tab"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split("\t")[:4] == ["group", "group_size", "representative", "keep"]
    assert len(rows) == 1 + 9


def test_cli_not_duplicates_and_errors(tmp_path, capsys):
    root = tmp_path / "p"
    write_copies(root, "chelsea")
    db = str(tmp_path / "c.db")
    lookalike.Collection.index([root], db=db, model=MODEL).close()
    assert main(["duplicates", "--db", db, "--tier", "exact", "--format", "json"]) == 0
    ids = [r["id"] for r in json.loads(capsys.readouterr().out)[0]["images"]]
    assert main(["not-duplicates", *map(str, ids), "--db", db]) == 0
    assert "remembered 1 pair" in capsys.readouterr().out
    assert main(["duplicates", "--db", db, "--tier", "exact"]) == 0
    assert "(no copies found)" in capsys.readouterr().out
    for bad, said in [(["--threshold", "3"], "between 0 and 2"),
                      (["--range", "0.5", "0.1"], "low end"),
                      (["--across", str(tmp_path / "nothing.db")], "no such database")]:
        assert main(["duplicates", "--db", db, *bad]) == 1
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):
        main(["duplicates", "--db", db, "--tier", "nearish"])
    assert "invalid choice" in capsys.readouterr().err


def test_cli_similar_max_distance(collection, capsys):
    col, files, _, _ = collection
    assert main(["similar", str(files["coffee"]["orig"]), "--db", str(col.store.path), "--all",
                 "--max-distance", "0.05", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and all(r["distance"] <= 0.05 for r in found)


def test_a_file_spoilt_since_indexing_is_left_out_not_a_crash(tmp_path):
    files = write_copies(tmp_path / "photos", "coffee")
    col = lookalike.Collection.index([tmp_path / "photos"], db=tmp_path / "d.db", model=MODEL)
    files["half"].write_bytes(b"not an image any more")     # after indexing
    groups = col.duplicates(tier="near")
    members = {r["path"] for g in groups for r in g.rows}
    assert str(files["orig"]) in members and str(files["half"]) not in members
    col.close()


def test_a_named_pipe_in_place_of_an_indexed_file_is_left_out_at_once(tmp_path):
    """The duplicate finder reads files back the way the viewer does: a pipe swapped in for
    an indexed file is refused at once instead of waited on forever."""
    import os

    files = write_copies(tmp_path / "photos", "coffee")
    col = lookalike.Collection.index([tmp_path / "photos"], db=tmp_path / "d.db", model=MODEL)
    files["half"].unlink()
    os.mkfifo(files["half"])                      # nobody writes to it
    groups = col.duplicates(tier="near")
    members = {r["path"] for g in groups for r in g.rows}
    assert str(files["orig"]) in members and str(files["half"]) not in members
    col.close()
