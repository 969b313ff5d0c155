"""`models`: the networks that can embed images, and the user's own ONNX models and text
towers added or removed."""

from __future__ import annotations

import json

from ..errors import LookalikeError
from .options import Commands, format_option, positive_int
from .tables import text_table


def add_models(commands: Commands) -> None:
    p = commands.add_parser("models", help="list the networks that can embed images, or add "
                                           "your own",
                            description="List the networks that can embed images: the length of "
                                        "their vectors, the pixels they look at, their licence, "
                                        "the package that brings their weights, whether it is "
                                        "installed (and if not, the command that installs it) "
                                        "and which one is the default; your own models follow "
                                        "with their files. `lookalike models add FILE.onnx "
                                        "--name NAME --input-size N --mean R G B --std R G B` "
                                        "adds your own ONNX image model (checked on test "
                                        "images), usable as --model NAME everywhere; `lookalike "
                                        "models remove NAME` forgets it. `lookalike models "
                                        "add-text TEXT.onnx --pairs-with NAME --tokenizer "
                                        "tokenizer.json` pairs a CLIP-style text tower with "
                                        "it, for `lookalike similar --text`; `lookalike models "
                                        "remove-text NAME` forgets that alone.")
    p.add_argument("action", nargs="?", default="list",
                   choices=("list", "add", "remove", "add-text", "remove-text"),
                   help="list (default); add FILE.onnx; remove NAME; add-text FILE.onnx; "
                        "remove-text NAME")
    p.add_argument("target", nargs="?", metavar="FILE|NAME",
                   help="add, add-text: the ONNX file; remove, remove-text: the name of your "
                        "model")
    format_option(p, ("table", "json"), "table for people (default), json for programs",
                   default="table")
    p.add_argument("--db", help="also list the models of this collection, imported ones "
                                "included, with how many images each covers")
    own = p.add_argument_group("add")
    own.add_argument("--name", help="the name to use it by (letters, digits, . _ + -)")
    own.add_argument("--input-size", type=positive_int, metavar="N",
                     help="the model's input is N x N pixels; images are squashed to it")
    own.add_argument("--mean", type=float, nargs="+", metavar="R G B",
                     help="per-channel mean on the 0..1 scale (pixel/255), in the model's "
                          "channel order, e.g. 0.485 0.456 0.406 for torchvision's ImageNet")
    own.add_argument("--std", type=float, nargs="+", metavar="R G B",
                     help="per-channel standard deviation on the 0..1 scale, e.g. "
                          "0.229 0.224 0.225")
    own.add_argument("--channel-order", choices=("RGB", "BGR"), default="RGB",
                     help="the order of channels the model takes (default RGB)")
    own.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW",
                     help="the model's input layout (default NCHW, PyTorch's)")
    own.add_argument("--output", metavar="TENSOR",
                     help="the output used as the vector (default: the first one)")
    text = p.add_argument_group("add-text")
    text.add_argument("--pairs-with", metavar="NAME",
                      help="your image model whose vectors the text tower's match")
    text.add_argument("--tokenizer", metavar="FILE",
                      help="the model's tokenizer.json, or CLIP's bpe_simple_vocab_16e6.txt.gz")
    text.add_argument("--context-length", type=positive_int, default=77, metavar="N",
                      help="token ids per text, start and end tokens included (default "
                           "%(default)s, CLIP's)")
    p.set_defaults(handler=cmd_models)


def cmd_models(args) -> int:
    if args.action == "add":
        return _add_own_model(args)
    if args.action == "add-text":
        return _add_text_model(args)
    if args.action == "remove-text":
        from ..models import unregister_text_model

        if not args.target:
            raise LookalikeError("name the model whose text tower to remove: `lookalike models "
                                 "remove-text NAME`")
        kept = unregister_text_model(args.target)
        print(f"removed the text tower of your model {kept.name.partition('@')[0]}; the image "
              "model stays, and the text tower's file is kept")
        return 0
    if args.action == "remove":
        from ..models import unregister_model

        if not args.target:
            raise LookalikeError("name the model to remove: `lookalike models remove NAME`")
        gone = unregister_model(args.target)
        print(f"removed your model {gone.name.partition('@')[0]} ({gone.file}); the file and "
              "the vectors made with it are kept")
        return 0
    return _list_models(args)


def _add_own_model(args) -> int:
    from ..models import register_model

    missing = [flag for flag, value in (("FILE.onnx", args.target), ("--name", args.name),
                                        ("--input-size", args.input_size),
                                        ("--mean", args.mean), ("--std", args.std))
               if value is None]
    if missing:
        raise LookalikeError(f"models add needs {', '.join(missing)}: `lookalike models add "
                             "FILE.onnx --name NAME --input-size N --mean R G B --std R G B`")
    info = register_model(args.target, args.name, args.input_size, args.mean, args.std,
                          channel_order=args.channel_order, layout=args.layout,
                          output=args.output)
    print(f"added your model {args.name} from {info.file}: {info.input_size} px in, "
          f"{info.dim}-d vectors, stored as {info.name}; use it with --model {args.name}")
    return 0


def _add_text_model(args) -> int:
    from ..models import register_text_model

    missing = [flag for flag, value in (("FILE.onnx", args.target),
                                        ("--pairs-with", args.pairs_with),
                                        ("--tokenizer", args.tokenizer)) if value is None]
    if missing:
        raise LookalikeError(f"models add-text needs {', '.join(missing)}: `lookalike models "
                             "add-text TEXT.onnx --pairs-with NAME --tokenizer tokenizer.json`")
    info = register_text_model(args.target, args.pairs_with, args.tokenizer,
                               context_length=args.context_length, output=args.output)
    base = info.name.partition("@")[0]
    print(f"added a text tower to your model {base} from {info.text_file}: {info.dim}-d "
          f"vectors, searching {info.name}; use it with `lookalike similar --text \"...\" "
          f"--model {base}`")
    return 0


def _list_models(args) -> int:
    from ..models import list_models

    infos = list_models()
    held = _collection_models(args.db) if args.db else None
    if args.format == "json":
        listed = [{"name": m.name, "dim": m.dim, "input_size": m.input_size,
                   "licence": m.licence, "package": m.package, "installed": m.installed,
                   "default": m.is_default, "install_hint": m.install_hint,
                   "description": m.description, "own": bool(m.file),
                   "file": m.file or None, "text_file": m.text_file or None} for m in infos]
        shown = None if held is None else [{k: v for k, v in m.items() if k != "model"}
                                           for m in held]  # "model" is the table's words
        print(json.dumps(listed if shown is None else {"models": listed, "collection": shown},
                         indent=2))
        return 0
    if held is not None:
        print(f"in {args.db}:")
        print(text_table(["name", "dim", "images", "model"],
                     [[m["name"], m["dim"], f"{m['images']:,}", m["model"]] for m in held]))
        for own in held:
            print(f"{own['name']}: a top-10 cosine search takes {own['search']}")
        print()
    print(text_table(["name", "dim", "input", "licence", "package", "installed", "default"],
                 [[m.name, m.dim, f"{m.input_size}px", m.licence, m.package or f"yours: {m.file}",
                   "yes" if m.installed else "no", "*" if m.is_default else ""] for m in infos]))
    for m in infos:
        if m.text_file:
            print(f"{m.name} has a text tower: {m.text_file} (similar --text)")
        if not m.installed:
            print(f"{m.name} is not installed: {m.install_hint}" if not m.file else
                  f"{m.name}: its file {m.file} is gone")
    from ..models import cpu

    print(cpu.int8_advice(cpu.cpu_flags()))
    return 0


def _collection_models(db) -> list[dict]:
    """The models a collection holds vectors of: name, dim, images, whether one of the user's
    own (a registered model, or vectors imported under a name lookalike does not know), what
    it is, in words, the reading options its images were read with (vectors stored as
    MODEL~HASH8: `ReadingOptions.vector_key`), and which search answers a top-10 cosine
    search of its vectors now, and why (`Collection.search_plan`)."""
    from ..api import Collection
    from ..ingest.reading import base_model

    with Collection.open(db) as col:
        out = []
        for name, count in col.models.items():
            base = base_model(name)
            reading = None
            if base != name:
                reading = (col.reading.describe() if col.reading.vector_key(base) == name
                           else "earlier options, not the collection's now")
            own, what = _model_kind(base)
            if reading is not None:
                what += f", read with {reading}"
            out.append({"name": name, "dim": col.store.vector_dim(name), "images": count,
                        "own": own, "model": what, "reading": reading,
                        "search": col.search_plan(name).describe()})
    return out


def _model_kind(name: str) -> tuple[bool, str]:
    """(whether the user's own, what it is in words) of a model's name."""
    from ..models import ModelChangedError, UnknownModelError, get_model_info

    try:
        info = get_model_info(name)
    except UnknownModelError:
        return True, "your own (imported vectors, or an earlier file)"
    except ModelChangedError:
        return True, "your own (its file has changed: add it again)"
    own = bool(info.file) or info.name != name
    return own, (f"your own ({info.file})" if info.file else
                 "your own (imported vectors)" if own else "built in")
