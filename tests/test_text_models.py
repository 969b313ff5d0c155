"""Text towers: a CLIP-style pair of your own (image and text models) lets a text search the
collection. The tests build a small pair whose right answers are known: the image model maps
an image's mean colour to a direction (red, green, blue), the text model maps the words "red",
"green", "blue" (and "yellow": red and green) to the same directions, through a real
tokenizer.json made with Hugging Face's `tokenizers`."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

import lookalike
from lookalike.models import (
    ModelChangedError,
    NoTextModelError,
    get_model_info,
    list_models,
    load_text_model,
    register_model,
    register_text_model,
    unregister_text_model,
)
from lookalike.models.own import registry_path
from lookalike.models.tokenizer import END, START, load_tokenizer
from test_own_models import one_line_error, run_cli, save_model, write_images as write_colour_images
from test_web_api import serve

SIZE = 32
MEAN = STD = (0.5, 0.5, 0.5)
DIM = 4
CONTEXT = 16
#: Colours of the images, and of the words: each colour word's direction in the shared space.
COLOURS = {"red": (210, 30, 40), "green": (40, 200, 50), "blue": (30, 50, 210),
           "yellow": (210, 200, 40)}
DIRECTIONS = {"red": [1, 0, 0, 0], "green": [0, 1, 0, 0], "blue": [0, 0, 1, 0],
              "yellow": [1, 1, 0, 0]}
# Merge order matters in BPE: "green" before "red", so that "r e" does not split "gr".
WORDS = ("green", "red", "blue", "yellow", "photo", "cell")


def merges_for(words=WORDS) -> list[tuple[str, str]]:
    """Merges that make each word one token, left to right, as CLIP's file has them."""
    pairs = []
    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        left = symbols[0]
        for right in symbols[1:]:
            pairs.append((left, right))
            left += right
    return pairs


def write_tokenizer_json(path: Path) -> Tokenizer:
    """A CLIP-like tokenizer.json as Hugging Face's CLIP exports are built (clean-up, CLIP's
    word split, byte-level BPE with </w>, a post-processor adding start and end), with its own
    vocabulary order: ids are whatever the file says."""
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    merges = merges_for()
    words = [*symbols, *(s + "</w>" for s in symbols), *(a + b for a, b in merges), START, END]
    tokenizer = Tokenizer(BPE({w: i for i, w in enumerate(words)}, merges,
                              end_of_word_suffix="</w>", unk_token=END))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(Regex(r"\s+"), " "),
                                                 normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+"), "removed",
                             invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.add_special_tokens([START, END])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START} $A {END}",
        special_tokens=[(START, words.index(START)), (END, words.index(END))])
    tokenizer.save(str(path))
    return tokenizer


def write_merges_gz(path: Path) -> Path:
    """CLIP's own merges file format: a version line, then one merge per line, gzipped."""
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges_for())]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return path


def clip_order_ids() -> dict[str, int]:
    """The id of each colour word in CLIP's vocabulary order: 512 byte symbols, then one token
    per merge (a word's token is its last merge)."""
    merges = merges_for()
    ids = {}
    for word in WORDS:
        last = next(i for i, (a, b) in enumerate(merges) if a + b == word + "</w>")
        ids[word] = 512 + last
    return ids


def write_image_model(path: Path, floor: float = 0.05) -> Path:
    """Mean colour -> direction: average pool, ReLU (a colour above mid-grey counts), then a
    fixed 3x4 map (`floor` in the fourth dimension keeps grey from being zero)."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, DIM],
                           np.eye(3, DIM, dtype=np.float32).ravel().tolist())
    b = helper.make_tensor("b", TensorProto.FLOAT, [DIM], [0, 0, 0, floor])
    nodes = [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Relu", ["flat"], ["colour"]),
             helper.make_node("MatMul", ["colour", "w"], ["mapped"]),
             helper.make_node("Add", ["mapped", "b"], ["image_embeds"])]
    graph = helper.make_graph(
        nodes, "image_tower",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["N", DIM])], [w, b])
    return save_model(graph, path)


def write_text_model(path: Path, ids: dict[str, int], vocab_size: int, *, dim: int = DIM,
                     mask: bool = False) -> Path:
    """Token ids -> the sum of their rows of an embedding table: a colour word's row is its
    direction, the start token's a small constant (as the image model's), every other row 0.
    `mask`: takes an attention mask too, as Hugging Face exports do (multiplied in)."""
    table = np.zeros((vocab_size, dim), np.float32)
    for word, direction in DIRECTIONS.items():
        table[ids[word], :DIM] = direction
    table[ids[START], DIM - 1] = 0.05
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", CONTEXT])]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["rows"])]
    summed = "rows"
    if mask:
        inputs.append(helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                                    ["N", CONTEXT]))
        nodes += [helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
                  helper.make_node("Unsqueeze", ["maskf", "last"], ["mask3"]),
                  helper.make_node("Mul", ["rows", "mask3"], ["masked"])]
        summed = "masked"
    nodes.append(helper.make_node("ReduceSum", [summed, "axis"], ["text_embeds"], keepdims=0))
    graph = helper.make_graph(
        nodes, "text_tower", inputs,
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["N", dim])],
        [helper.make_tensor("table", TensorProto.FLOAT, list(table.shape), table.ravel().tolist()),
         helper.make_tensor("axis", TensorProto.INT64, [1], [1])]
        + [helper.make_tensor("last", TensorProto.INT64, [1], [2])] * mask)
    return save_model(graph, path)


def write_images(folder: Path) -> dict[str, list[Path]]:
    """Three images of each colour (shades, a ramp and noise differ)."""
    return write_colour_images(folder, COLOURS, seed=5, ramp=20, noise=8)


class Pair:
    """The generated pair's files in `folder`: image.onnx, text.onnx, tokenizer.json."""

    def __init__(self, folder: Path, **text_options):
        folder.mkdir(parents=True, exist_ok=True)
        self.image = write_image_model(folder / "image.onnx")
        self.tokenizer = folder / "tokenizer.json"
        words = write_tokenizer_json(self.tokenizer)
        ids = {w: words.token_to_id(w + "</w>") for w in WORDS} | {
            START: words.token_to_id(START)}
        self.text = write_text_model(folder / "text.onnx", ids, words.get_vocab_size(),
                                     **text_options)


def add_pair(pair: Pair, name: str = "clip"):
    register_model(pair.image, name, SIZE, MEAN, STD)
    return register_text_model(pair.text, name, pair.tokenizer, context_length=CONTEXT)


def family(path) -> str:
    return Path(path).parent.name


@pytest.fixture(autouse=True)
def empty_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODELS_FILE", str(tmp_path / "config" / "models.json"))


@pytest.fixture
def indexed(tmp_path):
    """A collection of the colour images, indexed with the pair's image model."""
    pair = Pair(tmp_path / "pair")
    add_pair(pair)
    files = write_images(tmp_path / "pics")
    db = tmp_path / "c.db"
    lookalike.Collection.index([tmp_path / "pics"], db=db, model="clip", progress=False).close()
    return pair, files, db


def test_the_cli_adds_a_text_tower_and_finds_red_images_for_the_text_red(tmp_path, capsys):
    pair = Pair(tmp_path / "pair")
    assert run_cli(capsys, "models", "add", pair.image, "--name", "clip", "--input-size", SIZE,
                   "--mean", *MEAN, "--std", *STD)[0] == 0
    code, out, _ = run_cli(capsys, "models", "add-text", pair.text, "--pairs-with", "clip",
                           "--tokenizer", pair.tokenizer, "--context-length", CONTEXT)
    key = get_model_info("clip").name
    assert code == 0 and f"searching {key}" in out and "4-d" in out, out
    code, out, _ = run_cli(capsys, "models")
    assert f"{key} has a text tower: {pair.text.resolve()}" in out
    listed = json.loads(run_cli(capsys, "models", "--format", "json")[1])
    assert [m["text_file"] for m in listed if m["own"]] == [str(pair.text.resolve())]

    files = write_images(tmp_path / "pics")
    db = tmp_path / "c.db"
    assert run_cli(capsys, "index", tmp_path / "pics", "--db", db, "--model", "clip",
                   "--quiet")[0] == 0
    for word in ("red", "A photo of a GREEN cell", "blue!"):
        code, out, err = run_cli(capsys, "similar", "--text", word, "--db", db, "-k", "3",
                                 "--format", "json")
        assert code == 0, err
        wanted = next(c for c in COLOURS if c in word.lower())
        assert [family(n["path"]) for n in json.loads(out)] == [wanted] * 3, (word, out)
    code, out, _ = run_cli(capsys, "similar", "--text", "yellow", "--db", db, "-k", "3")
    assert code == 0 and 'look-alikes by ' + key in out
    rows = out.splitlines()[3:]
    assert [line.split()[2] for line in rows[:3]] == ["yellow"] * 3, out
    assert str(files["yellow"][0].resolve()) in out


def test_nearest_with_a_text_alone_and_steering_reference_images(indexed):
    _pair, files, db = indexed
    with lookalike.Collection.open(db) as col:
        assert col.text_models == [get_model_info("clip").name]
        found = col.nearest(text="red", k=3)
        assert [family(p) for p in found.paths] == ["red"] * 3
        assert found.references == ['text "red"'] and found.model == col.text_models[0]
        # Several texts: an image's distance is to the nearest of them.
        both = col.nearest(text=["blue", "green"], k=6)
        assert sorted(family(p) for p in both.paths) == ["blue"] * 3 + ["green"] * 3
        assert set(both.nearest_references) == {'text "blue"', 'text "green"'}
        # A green image alone finds green; steered by "red", it finds yellow (red and green).
        alone = col.nearest(files["green"][0], k=2)
        assert [family(p) for p in alone.paths] == ["green"] * 2
        steered = col.nearest(files["green"][0], text="red", k=3)
        assert [family(p) for p in steered.paths] == ["yellow"] * 3
        assert steered.references == [f"{files['green'][0].resolve()} + text \"red\""]
        assert str(files["green"][0].resolve()) not in steered.paths  # a reference, left out
        with pytest.raises(lookalike.LookalikeError, match="non-empty text"):
            col.nearest(text="  ")
        with pytest.raises(lookalike.LookalikeError, match="or a text"):
            col.nearest()


def test_a_merges_file_gives_clips_ids_and_searches_like_tokenizer_json(tmp_path, indexed):
    merges = write_merges_gz(tmp_path / "bpe_simple_vocab_16e6.txt.gz")
    words = load_tokenizer(merges)
    ids = clip_order_ids()
    n = len(merges_for())
    # CLIP's order: byte symbols (a byte alone at the end of a word is 256 + its rank among
    # them: "a" is 320, as in CLIP), one token per merge, then start and end.
    assert (words.start, words.end, words.vocab_size) == (512 + n, 513 + n, 514 + n)
    rows = words.encode(["Red", "a  red", "red " * 20], CONTEXT)
    assert rows[0].tolist() == [512 + n, ids["red"], 513 + n] + [0] * (CONTEXT - 3)
    assert rows[1][:4].tolist() == [512 + n, 320, ids["red"], 513 + n]
    assert rows[2].tolist() == [512 + n] + [ids["red"]] * (CONTEXT - 2) + [513 + n]

    text = write_text_model(tmp_path / "text-clip.onnx", ids | {START: 512 + n}, 514 + n,
                            mask=True)
    register_text_model(text, "clip", merges, context_length=CONTEXT)
    assert load_text_model("clip").tokenizer.path == merges.resolve()
    with lookalike.Collection.open(indexed[2]) as col:
        assert [family(p) for p in col.nearest(text="a blue cell", k=3).paths] == ["blue"] * 3


def test_removing_and_changing_models(tmp_path, indexed, capsys):
    pair, _files, db = indexed
    key = get_model_info("clip").name
    assert unregister_text_model("clip").text_file == ""
    assert get_model_info("clip").name == key  # the image model stays
    one_line_error(capsys, ["similar", "--text", "red", "--db", db], "has no text tower",
                   "models add-text")
    register_text_model(pair.text, "clip", pair.tokenizer, context_length=CONTEXT)
    code, out, _ = run_cli(capsys, "models", "remove", "clip")
    assert code == 0 and not [m for m in list_models() if m.file]
    assert "text_models" in json.loads(registry_path().read_text())
    assert json.loads(registry_path().read_text())["text_models"] == []

    # A text tower added for one image file does not search another file's vectors.
    add_pair(pair)
    write_image_model(pair.image, floor=0.06)  # re-exported: the image model is added again
    register_model(pair.image, "clip", SIZE, MEAN, STD)
    lookalike.Collection.index([db.parent / "pics"], db=db, model="clip", progress=False).close()
    one_line_error(capsys, ["similar", "--text", "red", "--db", db],
                   "its text tower was added for another file", "add-text")
    # The vectors of the file it was added with are still searched by it.
    code, out, _ = run_cli(capsys, "similar", "--text", "red", "--db", db, "--model", key,
                           "-k", "3", "--format", "json")
    assert code == 0 and [family(n["path"]) for n in json.loads(out)] == ["red"] * 3
    # A tokenizer changed after it was added is refused.
    register_text_model(pair.text, "clip", pair.tokenizer, context_length=CONTEXT)
    pair.tokenizer.write_text(pair.tokenizer.read_text().replace('"red</w>"', '"rod</w>"'))
    with pytest.raises(ModelChangedError, match="tokenizer .* has changed"):
        load_text_model("clip")


def test_imported_vectors_and_built_in_models_have_no_text_tower(tmp_path, capsys):
    files = write_images(tmp_path / "pics")
    db = tmp_path / "c.db"
    vectors = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    with lookalike.Collection.create(db) as col:
        col.add_vectors([p for paths in files.values() for p in paths], vectors, "elsewhere")
        assert col.default_model not in col.text_models
    one_line_error(capsys, ["similar", "--text", "red", "--db", db], "elsewhere has no text",
                   "your own CLIP-style pair")
    with pytest.raises(NoTextModelError, match="no text tower"):
        load_text_model("squeezenet")


BAD = {
    "dimension mismatch": (lambda pair, d: {"text": write_text_model(
        d / "wide.onnx", {w: 600 + i for i, w in enumerate([*WORDS, START])}, 700, dim=5)},
        "5-d vectors and clip's are 4-d"),
    "missing tokenizer": (lambda pair, d: {"tokenizer": d / "absent.json"},
                          "tokenizer: no file at"),
    "not a tokenizer": (lambda pair, d: {"tokenizer": pair.image}, "not a readable tokenizer"),
    "no such image model": (lambda pair, d: {"pairs_with": "dino"},
                            "no image model of yours is called 'dino'"),
    "built-in image model": (lambda pair, d: {"pairs_with": "squeezenet"}, "built-in model"),
    "an image model as text": (lambda pair, d: {"text": pair.image}, "not a text tower"),
    "wrong context length": (lambda pair, d: {"context_length": 77}, "--context-length 16"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_text_towers_are_one_line_and_register_nothing(tmp_path, capsys, case):
    pair = Pair(tmp_path / "pair")
    register_model(pair.image, "clip", SIZE, MEAN, STD)
    make, words = BAD[case]
    given = {"text": pair.text, "pairs_with": "clip", "tokenizer": pair.tokenizer,
             "context_length": CONTEXT} | make(pair, tmp_path)
    one_line_error(capsys, ["models", "add-text", given["text"], "--pairs-with",
                            given["pairs_with"], "--tokenizer", given["tokenizer"],
                            "--context-length", given["context_length"]], words)
    assert json.loads(registry_path().read_text())["text_models"] == []
    assert get_model_info("clip").text_file == ""


def test_the_web_api_answers_a_text(indexed):
    _pair, _files, db = indexed
    live = serve(db)
    try:
        info = live.client.get("/api/collection").json()
        assert info["text_models"] == [get_model_info("clip").name]
        answer = live.client.get("/api/neighbors/text", params={"q": "green", "k": 3}).json()
        assert [family(n["path"]) for n in answer["neighbors"]] == ["green"] * 3
        assert answer["references"] == [{"name": 'text "green"', "text": "green"}]
        refused = live.client.get("/api/neighbors/text", params={"q": "green",
                                                                 "model": "squeezenet"})
        assert refused.status_code == 400 and "squeezenet" in refused.json()["error"]
    finally:
        live.stop()


@pytest.mark.browser
def test_the_viewer_shows_a_text_box_for_a_model_with_a_text_tower(indexed, tmp_path):
    from playwright import sync_api

    from test_web_browser import ARTIFACTS, CHROMIUM, checked_page, open_viewer

    _pair, _files, db = indexed
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    live = serve(db, warm_up=False)
    try:
        with sync_api.sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--disable-gpu"])
            try:
                for page in checked_page(chromium):
                    open_viewer(page, live.url)
                    page.wait_for_selector("#text-search:not([hidden])")
                    page.fill("#text-query", "a photo of a red cell")
                    page.press("#text-query", "Enter")
                    page.wait_for_selector("body[data-neighbors=shown]")
                    page.screenshot(path=str(ARTIFACTS / "text-search.png"))
                    assert page.locator("#ref-list .name").inner_text() == \
                        'text "a photo of a red cell"'
                    assert "text tower" in page.locator("#ref-list .sub").inner_text()
                    shown = page.eval_on_selector_all(
                        "#neighbors li[data-id] .sub", "s => s.map(e => e.textContent)")
                    assert [s.split(" ")[0] for s in shown[:3]] == ["red"] * 3, shown
                    page.fill("#k", "2")                  # a control asks the text again
                    page.press("#k", "Enter")
                    page.wait_for_function(
                        "() => document.querySelectorAll('#neighbors li[data-id]').length == 2")
                    page.locator("#neighbors li").first.click()   # walk on from the text
                    page.wait_for_function("() => new URLSearchParams(location.search).has('ref')")
                    page.go_back()                        # the text's answer again
                    page.wait_for_function("() => document.querySelector('#ref-list .name')"
                                           "?.textContent.startsWith('text')")
            finally:
                chromium.close()
    finally:
        live.stop()


def test_without_a_text_tower_the_api_lists_none_and_refuses_a_text(indexed):
    _pair, _files, db = indexed
    unregister_text_model("clip")
    live = serve(db, warm_up=False)
    try:
        assert live.client.get("/api/collection").json()["text_models"] == []
        refused = live.client.get("/api/neighbors/text", params={"q": "red"})
        assert refused.status_code == 400 and "has no text tower" in refused.json()["error"]
    finally:
        live.stop()


def test_texts_search_a_collection_read_with_reading_options(tmp_path):
    """Reading options change the pixels the image model saw, not its space: the pair's text
    tower still searches the vectors kept under CLIP~HASH8. Per-channel vectors (joined, four
    times as long) are not in that space: one line."""
    pair = Pair(tmp_path / "pair")
    add_pair(pair)
    write_images(tmp_path / "pics")
    with lookalike.Collection.create(tmp_path / "c.db") as col:
        col.add([tmp_path / "pics"], model="clip",
                reading=lookalike.ReadingOptions(window=(1, 99)))
        assert "~" in col.default_model and col.text_models == [col.default_model]
        assert [family(p) for p in col.nearest(text="red", k=3).paths] == ["red"] * 3
        col.add([tmp_path / "pics"], model="clip", reading=lookalike.ReadingOptions(
            channels=(0, 1, 2), per_channel=True))
        assert col.default_model not in col.text_models
        with pytest.raises(lookalike.LookalikeError, match=r"--per-channel\) are not in the"):
            col.nearest(text="red")


def test_a_text_is_not_searched_among_per_plate_normalised_vectors(indexed):
    """A text has no plate: neither alone nor steering an image is it normalised like the
    images are, so the combination is refused in one line."""
    _pair, files, db = indexed
    with lookalike.Collection.open(db) as col:
        for refs in (None, files["green"][0]):
            with pytest.raises(lookalike.LookalikeError, match="a text has no plate"):
                col.nearest(refs, text="red", normalise="plate")
