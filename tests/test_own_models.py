"""The user's own ONNX models: added (and checked) once, then used by name like a built-in one
by `index`, `similar`, the API and the viewer; a changed file never mixes with old vectors."""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

import lookalike
from lookalike import cli
from lookalike.errors import LookalikeError
from lookalike.models import (
    ModelChangedError,
    get_model_info,
    list_models,
    load_model,
    register_model,
    unregister_model,
)
from lookalike.models.own import registry_path
from test_web_api import serve

SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
COLOURS = {"red": (200, 30, 40), "green": (40, 180, 60), "blue": (30, 60, 210)}


def write_model(path: Path, seed: int = 0, *, filters: int = 8, nan: bool = False,
                per_image: bool = True, size: int = SIZE) -> Path:
    """A tiny image model of fixed weights, as a user's export would be: conv 3x3 (`filters`
    of them), ReLU, global average pool, flatten; `nan` makes it give NaN, `per_image=False`
    one number for the whole batch."""
    rng = np.random.default_rng(seed)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [filters, 3, 3, 3],
                                 rng.normal(size=filters * 27).astype(np.float32).tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [filters],
                              rng.normal(size=filters).astype(np.float32).tolist())
    nodes = [helper.make_node("Conv", ["pixels", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"]),
             helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"])]
    out, shape = "flat", ["N", filters]
    if nan:
        nodes += [helper.make_node("Neg", ["flat"], ["neg"]),
                  helper.make_node("Sub", ["neg", "b"], ["below"]),
                  helper.make_node("Abs", ["below"], ["abs"]),
                  helper.make_node("Neg", ["abs"], ["negative"]),
                  helper.make_node("Sqrt", ["negative"], ["features"])]
        out = "features"
    if not per_image:
        nodes.append(helper.make_node("ReduceMean", ["flat"], ["features"], keepdims=0))
        out, shape = "features", []
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                      ["N", 3, size, size])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, shape)], [weights, bias])
    return save_model(graph, path)


def save_model(graph, path: Path) -> Path:
    """`graph` saved as an ONNX file (opset 13, IR 7: what onnxruntime here reads)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)
    return path


def write_images(folder: Path, colours: dict = COLOURS, *, seed: int = 1, ramp: float = 25,
                 noise: float = 10) -> dict[str, list[Path]]:
    """Three images of each colour family (shades, noise and a ramp differ)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for family, colour in colours.items():
        (folder / family).mkdir(parents=True, exist_ok=True)
        out[family] = []
        for i in range(3):
            shade = np.linspace(-ramp, ramp, 48)[None, :, None] * (i - 1)
            pixels = np.asarray(colour, float) + shade + rng.normal(0, noise, (40, 48, 3))
            path = folder / family / f"{i}.png"
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
            out[family].append(path)
    return out


def add(path, name="mine", **settings):
    return register_model(path, name, settings.pop("input_size", SIZE),
                          settings.pop("mean", MEAN), settings.pop("std", STD), **settings)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(capsys, args, *words) -> str:
    code, _, err = run_cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("lookalike: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(autouse=True)
def empty_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODELS_FILE", str(tmp_path / "config" / "models.json"))


def test_a_registered_model_indexes_and_searches_by_its_name(tmp_path):
    model_file = write_model(tmp_path / "tiny.onnx")
    info = add(model_file)
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert (info.name, info.dim, info.input_size, info.file) == \
        (f"mine@{sha[:8]}", 8, SIZE, str(model_file.resolve()))
    assert get_model_info("MINE") == info and get_model_info(info.name) == info
    assert [m for m in list_models() if m.file] == [info]
    assert json.loads(registry_path().read_text())["models"][0]["sha256"] == sha

    files = write_images(tmp_path / "pics")
    with lookalike.Collection.index([tmp_path / "pics"], db=tmp_path / "c.db",
                                    model="mine", progress=False) as col:
        assert col.models == {info.name: 9}
        for family, paths in files.items():
            found = col.nearest(paths[0], k=2, model="mine")
            assert {Path(p).parent.name for p in found.paths} == {family}, found.paths
        # An image outside the collection is embedded with the registered model.
        outside = tmp_path / "query.png"
        Image.open(files["blue"][1]).rotate(2).save(outside)
        assert Path(col.nearest(outside, k=1, model="mine").paths[0]).parent.name == "blue"
        ids, matrix = col.vectors("mine")
        assert matrix.shape == (9, 8) and np.isfinite(matrix).all()


def test_cli_adds_lists_uses_serves_and_removes_a_model(tmp_path, capsys):
    model_file = write_model(tmp_path / "tiny.onnx")
    code, out, _ = run_cli(capsys, "models", "add", model_file, "--name", "mine",
                           "--input-size", SIZE, "--mean", *MEAN, "--std", *STD)
    key = get_model_info("mine").name
    assert code == 0 and f"stored as {key}" in out and "8-d" in out
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and f"yours: {model_file.resolve()}" in out and key in out
    listed = json.loads(run_cli(capsys, "models", "--format", "json")[1])
    assert [m["name"] for m in listed if m["own"]] == [key]

    files = write_images(tmp_path / "pics")
    db = tmp_path / "c.db"
    assert run_cli(capsys, "index", tmp_path / "pics", "--db", db, "--model", "mine",
                   "--quiet")[0] == 0
    code, out, _ = run_cli(capsys, "similar", files["green"][2], "--db", db, "--model", "mine",
                           "-k", "2", "--format", "json")
    assert code == 0
    assert {Path(n["path"]).parent.name for n in json.loads(out)} == {"green"}
    code, out, _ = run_cli(capsys, "models", "--db", db)
    assert f"your own ({model_file.resolve()})" in out

    live = serve(db)  # the viewer's model menu and an upload, embedded with the model
    try:
        assert live.client.get("/api/collection").json()["models"] == {key: 9}
        with open(files["red"][1], "rb") as fh:
            answer = live.client.post("/api/neighbors/upload", files={"file": ("q.png", fh)},
                                      data={"k": "3", "model": key}).json()
        assert answer["model"] == key
        assert {Path(n["path"]).parent.name for n in answer["neighbors"]} == {"red"}
    finally:
        live.stop()

    code, out, _ = run_cli(capsys, "models", "remove", "mine")
    assert code == 0 and "removed your model mine" in out and model_file.is_file()
    assert not [m for m in list_models() if m.file]
    one_line_error(capsys, ["index", tmp_path / "pics", "--db", db, "--model", "mine"],
                   "unknown model 'mine'")
    one_line_error(capsys, ["models", "remove", "mine"], "no model of yours")


def test_a_changed_file_is_refused_until_added_again_under_a_new_key(tmp_path, capsys):
    model_file = write_model(tmp_path / "tiny.onnx")
    old = add(model_file).name
    files = write_images(tmp_path / "pics")
    db = tmp_path / "c.db"
    lookalike.Collection.index([tmp_path / "pics"], db=db, model="mine", progress=False).close()

    # Retrained, same path: other weights (and a size of its own, so that even a file system
    # with coarse timestamps shows the change before hashing).
    write_model(model_file, seed=7, filters=6)
    with pytest.raises(ModelChangedError, match="has changed since it was added"):
        load_model("mine")
    one_line_error(capsys, ["index", tmp_path / "pics", "--db", db, "--model", "mine"],
                   str(model_file.resolve()), "add it again")
    outside = tmp_path / "outside.png"
    Image.open(files["red"][0]).rotate(2).save(outside)
    one_line_error(capsys, ["similar", outside, "--db", db, "--model", "mine"], "add it again")

    new = add(model_file).name  # the same file again: replaces the entry, with a new key
    assert new != old and new.startswith("mine@")
    with lookalike.Collection.index([tmp_path / "pics"], db=db, model="mine",
                                    progress=False) as col:
        assert col.models == {old: 9, new: 9}  # the old vectors are kept apart, not reused
        assert (col.vectors(old)[1].shape, col.vectors(new)[1].shape) == ((9, 8), (9, 6))
        # The old vectors can still be searched from images of the collection.
        found = col.nearest(files["red"][0], k=2, model=old)
        assert {Path(p).parent.name for p in found.paths} == {"red"}
        with pytest.raises(LookalikeError, match="earlier file") as refused:
            col.nearest(outside, k=2, model=old)  # an image the old file never embedded
        assert "imported from elsewhere" not in str(refused.value)
    with pytest.raises(LookalikeError, match="earlier file"):
        load_model(old)


def test_a_missing_file_is_named_with_what_to_do(tmp_path):
    model_file = write_model(tmp_path / "tiny.onnx")
    add(model_file)
    model_file.unlink()
    with pytest.raises(ModelChangedError, match="is gone"):
        load_model("mine")
    assert unregister_model("mine").file == str(model_file.resolve())


BAD = {
    "not onnx": (lambda d: (d / "x.onnx").write_bytes(b"\xff\xd8 a JPEG") and d / "x.onnx", {},
                 "not a readable ONNX model"),
    "no file": (lambda d: d / "absent.onnx", {}, "no ONNX file"),
    "wrong input size": (lambda d: write_model(d / "m.onnx"), {"input_size": 64},
                         "does not fit 64x64"),
    "nan output": (lambda d: write_model(d / "m.onnx", nan=True), {}, "NaN"),
    "not per image": (lambda d: write_model(d / "m.onnx", per_image=False), {},
                      "not one vector per image"),
    "built-in name": (lambda d: write_model(d / "m.onnx"), {"name": "mobilenet-v2"},
                      "built-in"),
    "bad name": (lambda d: write_model(d / "m.onnx"), {"name": "my model"}, "letters, digits"),
    "mean of two": (lambda d: write_model(d / "m.onnx"), {"mean": (0.5, 0.5)},
                    "1 or 3 values"),
    "no output": (lambda d: write_model(d / "m.onnx"), {"output": "logits"},
                  "no output 'logits'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_registers_nothing(tmp_path, capsys, case):
    make, settings, words = BAD[case]
    path = make(tmp_path)
    args = ["models", "add", path, "--name", settings.get("name", "mine"),
            "--input-size", settings.get("input_size", SIZE),
            "--mean", *settings.get("mean", MEAN), "--std", *STD]
    if "output" in settings:
        args += ["--output", settings["output"]]
    one_line_error(capsys, args, words)
    assert not registry_path().exists()


def test_a_name_held_by_another_file_is_refused(tmp_path, capsys):
    add(write_model(tmp_path / "a.onnx"))
    other = write_model(tmp_path / "b.onnx", seed=3)
    one_line_error(capsys, ["models", "add", other, "--name", "MINE", "--input-size", SIZE,
                            "--mean", *MEAN, "--std", *STD], "already your model",
                   "models remove mine")
    one_line_error(capsys, ["models", "add", other, "--name", "other"], "--input-size",
                   "--mean", "--std")
    assert get_model_info("mine").file == str((tmp_path / "a.onnx").resolve())
