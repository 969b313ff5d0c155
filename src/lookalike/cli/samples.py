"""The sample collections: `datasets` lists or writes them out, `demo` gets one, indexes it
and serves it in the web viewer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import LookalikeError
from .indexing import index_summary
from .options import Commands, db_option, format_option, model_option, positive_int, quiet_option
from .serving import has_browser, port_is_free
from .shell import program, quoted
from .tables import text_table


def add_datasets(commands: Commands) -> None:
    p = commands.add_parser("datasets", help="list or fetch sample collections that install "
                                             "offline",
                            description="Without arguments, list the sample collections, whether "
                                        "each is installed and, if not, the command that installs "
                                        "it. `lookalike datasets get NAME [DIR]` writes one out "
                                        "as a folder of images by class, ready for `lookalike "
                                        "index DIR`; files already there are kept, so running it "
                                        "again writes nothing.")
    p.add_argument("action", nargs="?", choices=("list", "get"), default="list",
                   help="list (default): the sample collections; get: write one out as a folder")
    p.add_argument("name", nargs="?", help="the sample collection to get")
    p.add_argument("dir", nargs="?", help="where to write it (default: ./NAME)")
    p.add_argument("--split", choices=("test", "train", "all"),
                   help="fashion-mnist only: test (default, 10,000 images), train (60,000) or all")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="at most N images per class (the first ones; default: all)")
    format_option(p, ("table", "json"), "how to list the collections", default="table")
    quiet_option(p)
    p.set_defaults(handler=cmd_datasets)


def cmd_datasets(args) -> int:
    from .. import datasets

    if args.action == "list":
        rows = list(datasets.DATASETS.values())
        if args.format == "json":
            print(json.dumps([{"name": d.name, "images": d.size, "licence": d.licence,
                               "source": d.source, "content": d.content,
                               "available": d.available, "install": d.install,
                               "attribution": d.attribution} for d in rows], indent=2))
            return 0
        print(text_table(["name", "images", "licence", "installed", "from", "content"],
                     [[d.name, f"{d.size:,}", d.licence, "yes" if d.available else "no",
                       d.source, d.content] for d in rows]))
        for d in rows:
            if not d.available:
                print(f"{d.name} is not installed: install it with `{d.install}`")
        print("Write one out with `lookalike datasets get NAME [DIR]`, then `lookalike index DIR`; "
              "or try `lookalike demo --dataset NAME`.")
        return 0
    if not args.name:
        raise LookalikeError("name the sample collection to get, e.g. `lookalike datasets get "
                             "twemoji DIR`")
    target = datasets.get(args.name, args.dir or os.path.join(".", args.name), split=args.split,
                          limit=args.limit, progress=not args.quiet)
    print(_written(target))
    if target.attribution:
        print(target.attribution)
    return 0


def _written(target) -> str:
    if target.written == target.count:
        return f"wrote {target.count:,} images to {target.path}"
    if target.written:
        return (f"wrote {target.written:,} new images to {target.path} "
                f"({target.count:,} in all, the others were there already)")
    return f"{target.count:,} images already in {target.path}, nothing to write"


def add_demo(commands: Commands) -> None:
    p = commands.add_parser("demo", help="get a sample collection, index it and browse it in the "
                                         "web viewer",
                            description="The whole job on a sample: write the sample collection "
                                        "(Twemoji by default) into the user data folder, index "
                                        "it, print one example of look-alikes, then serve the web "
                                        "viewer and open it in the browser, until Ctrl-C. A "
                                        "second run finds everything done and starts within "
                                        "seconds.")
    p.add_argument("--dataset", default="twemoji", metavar="NAME",
                   help="the sample collection (see `lookalike datasets`; default twemoji)")
    p.add_argument("--dir", help="where the sample's images go (default: samples/NAME in the "
                                 "user data folder)")
    db_option(p, "the sample's database file (default: DIR.db, beside the folder)")
    model_option(p, "the network that embeds the images (default: the default model)")
    p.add_argument("--split", choices=("test", "train", "all"),
                   help="fashion-mnist only: which split (default test)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="at most N images per class of the sample (default: all)")
    p.add_argument("--port", type=int,
                   help="the viewer's port (default 8000, or a free one when 8000 is taken; "
                        "0 picks a free one)")
    p.add_argument("--no-open", action="store_true",
                   help="do not open the page in a browser (the address is printed)")
    p.add_argument("--no-serve", action="store_true",
                   help="stop after indexing and the example, without starting the viewer")
    quiet_option(p, "no progress bars")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    import platformdirs

    from .. import datasets
    from ..api import Collection
    from ..catalogue.store import no_empty_database_left
    from ..models import DEFAULT_MODEL

    if args.port is not None and not 0 <= args.port <= 65535:
        print(f"lookalike: error: --port must be between 0 and 65535, not {args.port}",
              file=sys.stderr)
        return 2
    dataset = datasets.find(args.dataset)
    folder = Path(args.dir) if args.dir else (
        Path(platformdirs.user_data_dir("lookalike")) / "samples" / dataset.name)
    db = Path(args.db) if args.db else folder.with_name(folder.name + ".db")

    sample = datasets.get(dataset.name, folder, split=args.split, limit=args.limit,
                          progress=not args.quiet)
    print(f"sample {dataset.name}: {_written(sample)}")
    reference = None
    with no_empty_database_left(db), Collection.create(db) as col:
        report = col.add([folder], model=args.model or DEFAULT_MODEL, progress=not args.quiet)
        print(index_summary(report, col.store.path))
        if len(col):
            reference = sample.example or col.images(limit=1)[1][0]["path"]
            res = col.nearest([reference], k=5, model=report.model)
            inside = lambda path: os.path.relpath(path, folder)  # noqa: E731
            print(f"\nLook-alikes of {inside(reference)} (in {folder}):")
            print(text_table(["rank", "distance", "image"],
                         [[r["rank"], f"{r['distance']:.4f}", inside(r["path"])]
                          for r in res.to_records()]))
            for credit in col.attributions(res.rows):
                print(credit)
    print()
    print(_next_steps(db, reference))
    if args.no_serve:
        return 0
    from ..web import serve

    port = args.port
    if port is None:
        port = 8000 if port_is_free("127.0.0.1", 8000) else 0
    open_browser = not args.no_open and has_browser()
    if not args.no_open and not open_browser:
        print("no graphical browser here: open the address below in one", file=sys.stderr)
    serve(db, host="127.0.0.1", port=port, open_browser=open_browser)
    return 0


def _next_steps(db, reference: str | os.PathLike | None) -> str:
    """The commands to go on with the demo's collection, each as it can be typed here:
    ./demo.sh does not put .venv/bin on PATH, so they name the script when `lookalike` is
    not found, and always the demo's database."""
    # Absolute paths: ./demo.sh runs from its own folder, not the user's.
    command, db = program(), quoted(os.path.abspath(db))
    example = quoted(os.path.abspath(reference)) if reference else "IMAGE"
    lines = ["Look-alikes of any image (indexed or not), e.g. this one:",
             f"  {command} similar {example} --db {db}",
             "Browse them in the web viewer:",
             f"  {command} serve --db {db} --open"]
    if command != "lookalike":
        activate = Path(sys.executable).parent / "activate"  # in a virtual environment
        if activate.is_file():
            lines.append(f"(or run `source {quoted(activate)}` once, then type `lookalike ...`)")
    return "\n".join(lines)
