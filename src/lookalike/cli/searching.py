"""Look-alikes out: `similar` (by reference images, texts, feedback), `explain` (where two
images match) and `tags` (images by ImageNet's classes)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from ..errors import LookalikeError
from .options import (
    Commands,
    db_option,
    format_option,
    model_option,
    non_negative_float,
    positive_int,
)
from .output import copy_to_stdout, refuse_binary_on_a_terminal
from .tables import file_size, shortened, shown_path, text_table

SIMILAR_FORMATS = ("table", "json", "csv", "parquet", "tab")


def add_similar(commands: Commands) -> None:
    p = commands.add_parser("similar", help="show the images nearest to one or several references",
                            description="Print the k images of the collection nearest to the "
                                        "reference images. With several references, an image's "
                                        "distance is its distance to the nearest of them. A "
                                        "reference may be an indexed file or any image file "
                                        "(embedded on the fly, not stored).")
    p.add_argument("refs", nargs="*", metavar="REF", help="a reference image file")
    db_option(p)
    _query_options(p)
    _ranking_options(p)
    _subset_options(p)
    _search_options(p)
    format_option(p, SIMILAR_FORMATS,
                   "table for people; json, csv or parquet for programs; tab for Orange (Image "
                   "Viewer shows the images). Default: from the extension of --output, else table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of printing (needed for parquet, unless FILE is "
                        "-: the standard output)")
    p.set_defaults(handler=cmd_similar)


def _query_options(p: argparse.ArgumentParser) -> None:
    """What is searched with, beside the REFs: texts, negative references, feedback."""
    from ..search.feedback import DEFAULT_REFINE_METHOD, REFINE_METHODS

    p.add_argument("--text", action="append", metavar="TEXT",
                   help="search with a text (\"a cell in mitosis\"), embedded by the text "
                        "tower paired with the model (`lookalike models add-text`); with REFs, "
                        "the text steers each of them (its query: the image's unit vector plus "
                        "the text's). Give it again for more texts")
    p.add_argument("--unlike", nargs="+", metavar="NEG", default=[],
                   help="negative references, 'not like this' (after the REFs): ranked by "
                        "the distance to the nearest REF minus half that to the nearest NEG; "
                        "with --like, the images marked wrong")
    p.add_argument("--like", nargs="+", metavar="POS", default=[],
                   help="relevance feedback: images marked right (with the REFs); the "
                        "look-alikes are ranked by a model fitted on them against --unlike")
    p.add_argument("--refine", choices=REFINE_METHODS, default=DEFAULT_REFINE_METHOD,
                   help="how --like refines (default: %(default)s)")


def _ranking_options(p: argparse.ArgumentParser) -> None:
    """How many look-alikes, by which distance between which model's vectors."""
    from ..search.metrics import DEFAULT_K, DEFAULT_METRIC, METRICS

    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument("-k", type=positive_int, default=DEFAULT_K, metavar="N",
                          help=f"how many look-alikes to show (default {DEFAULT_K})")
    how_many.add_argument("--all", action="store_true",
                          help="rank every image of the collection")
    p.add_argument("--metric", default=DEFAULT_METRIC, metavar="NAME",
                   help=f"distance measure, one of: {', '.join(METRICS)} "
                        f"(default {DEFAULT_METRIC.lower()})")
    model_option(p, "which of the collection's models to use (default: the one it was last "
                     "indexed with)")
    p.add_argument("--max-distance", type=non_negative_float, metavar="D",
                   help="only look-alikes at most D away (with -k: the k nearest of those; "
                        "with --all: every one)")
    p.add_argument("--include-references", action="store_true",
                   help="also rank the reference images themselves")


def _subset_options(p: argparse.ArgumentParser) -> None:
    """Which images are ranked, and the per-plate normalisation of their vectors."""
    p.add_argument("--category", help="only images of this category (sub-folder)")
    p.add_argument("--path-prefix", metavar="PATH", help="only images whose path starts so")
    p.add_argument("--normalise", "--normalize", metavar="COLUMN",
                   help="normalise the vectors per plate first: centre and scale each group of "
                        "images with the same COLUMN value (plate; or plate,channel) against "
                        "its --controls, or all its images; the references must be images of "
                        "the collection")
    p.add_argument("--controls", metavar="WELLS|COLUMN=VALUE",
                   help="with --normalise: the control wells (A01,B01) or the images whose "
                        "COLUMN holds VALUE (condition=control)")


def _search_options(p: argparse.ArgumentParser) -> None:
    """Where the search runs: exactly, through a FAISS index, or on a Dask cluster."""
    search = p.add_mutually_exclusive_group()
    search.add_argument("--exact", action="store_const", const=False, dest="approximate",
                        help="always search exactly (the default below 200,000 images)")
    search.add_argument("--approximate", nargs="?", const=True, type=_approximate_kind,
                        dest="approximate", metavar="KIND",
                        help="search with a FAISS index (the default from 200,000 images, "
                             "or once the graph index is built): distances stay exact, a few "
                             "true neighbours may be missed. KIND: hnsw (the graph, fastest "
                             "once built), ivf (inverted file), ivfpq (inverted file of "
                             "compressed codes: 7x less memory, for 10 million images and "
                             "more), scan (8-bit scan of every image) or auto (the default: "
                             "the graph where it is built or fits in memory, else ivf, else "
                             "ivfpq)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="search on a Dask cluster: local, local:N (N worker processes here) or "
                        "a scheduler address tcp://HOST:8786. The vectors are cut in shards "
                        "beside the database, each worker searches its own; the same answer as "
                        "the exact search (README: Search across workers)")


def _approximate_kind(text: str) -> bool | str:
    from ..search.approximate import KINDS

    if text == "auto":
        return True
    if text in KINDS:
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a kind of approximate search "
                                     f"({', '.join(sorted(KINDS))} or auto); references go "
                                     "before --approximate")


def cmd_similar(args) -> int:
    from ..api import Collection

    to_stdout = args.output == "-"
    output = None if to_stdout else args.output
    fmt = _similar_format(args.format, output)
    if fmt is None:
        return 2
    if fmt == "parquet" and not args.output:
        print("lookalike: error: --format parquet writes a binary file: give --output FILE "
              "(or --output - to write it to the standard output)", file=sys.stderr)
        return 2
    if to_stdout:
        refuse_binary_on_a_terminal(fmt)
    _check_queries(args)
    with Collection.open(args.db) as col:
        res = _look_alikes(col, args)
        credits = col.attributions(res.rows)
        others = [m for m in col.models if m != res.model] if args.model is None else []
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    if not _write_look_alikes(res, fmt, output, to_stdout, credits, others):
        return 0
    print(f"wrote {len(res):,} look-alikes ({fmt}) to {output}")
    return 0


def _similar_format(given: str | None, output: str | None) -> str | None:
    """--format, else the one the extension of --output names, else table; None (with the
    error printed) when that extension names a format `similar` does not write."""
    if given is not None:
        return given
    from ..formats.export import EXTENSIONS

    fmt = EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "table")
    if fmt not in SIMILAR_FORMATS:
        print(f"lookalike: error: similar writes {', '.join(SIMILAR_FORMATS)}, not {fmt}; "
              f"give --format", file=sys.stderr)
        return None
    return fmt


def _check_queries(args) -> None:
    """The combinations of references, texts and feedback that make no search."""
    if not args.refs and not args.like and not args.text:
        raise LookalikeError("give at least one reference image (REF, or --like) or --text")
    if args.text and args.like:
        raise LookalikeError("--text searches with REFs or alone, not with --like: leave out "
                             "one of them")
    if args.like and args.normalise:
        raise LookalikeError("--like refines on the stored vectors; leave out --normalise")


def _look_alikes(col, args):
    """The search the options ask for: refined by --like, else nearest."""
    k = None if args.all else args.k
    if args.like and args.cluster:
        raise LookalikeError("--like (relevance feedback) runs on this machine; leave out "
                             "--cluster")
    if args.like:
        return col.refine(args.refs + args.like, args.unlike, k=k, method=args.refine,
                          include_references=args.include_references, model=args.model,
                          category=args.category, path_prefix=args.path_prefix)
    return col.nearest(args.refs or None, k=k, metric=args.metric, text=args.text,
                       include_references=args.include_references, model=args.model,
                       category=args.category, path_prefix=args.path_prefix,
                       approximate=args.approximate, max_distance=args.max_distance,
                       unlike=args.unlike or None, cluster=args.cluster,
                       normalise=args.normalise, controls=args.controls)


def _write_look_alikes(res, fmt: str, output: str | None, to_stdout: bool,
                       credits: list[str], others: list[str]) -> bool:
    """The look-alikes in `fmt`, to `output` or the standard output; whether a file was
    written (then the caller says so)."""
    if fmt == "table":
        text = _similar_table(res, credits, others)
        if not output:
            sys.stdout.write(text)
            return False
        from ..formats.export import atomic_write

        with atomic_write(output) as f:
            f.write(text.encode("utf-8"))
        return True
    if fmt == "parquet" and to_stdout:
        copy_to_stdout(res.to_parquet, fmt)
        return False
    writers: dict[str, Callable[..., str | None]] = {
        "json": res.to_json, "csv": res.to_csv, "tab": res.to_tab, "parquet": res.to_parquet}
    write = writers[fmt]
    if not output:  # parquet went to a file or the standard output above
        written = write()
        assert written is not None  # without a path, the text comes back
        sys.stdout.write(written if written.endswith("\n") else written + "\n")
        return False
    write(output)
    return True


def _similar_table(res, credits: list[str], other_models: list[str]) -> str:
    """The look-alikes for people: which model and metric ranked them, then one row each."""
    records = res.to_records()
    extras = _table_extras(records)
    # The model is the collection's default unless --model chose it: say which it is.
    chosen = (f" (the model last indexed; also here: {', '.join(other_models)}, see --model)"
              if other_models else "")
    several = len(res.references) > 1  # then say which one each look-alike is nearest to
    short = _reference_names(res.references)
    unlike = bool(res.unlike_references)
    lines = [f"look-alikes by {res.model}{chosen}, {res.metric} distance"
             + (f", unlike {len(res.unlike_references)}" if unlike else ""),
             text_table(["rank", "distance"] + ["unlike distance"] * unlike
                    + ["category", "pixels", "size"] + extras
                    + ["nearest reference"] * several + ["path"],
                    [[r["rank"], f"{r['distance']:.4f}"]
                     + ([f"{r['unlike_distance']:.4f}"] if unlike else [])
                     + [r["category"] or "", _pixels(r), file_size(r["size"])]
                     + [shortened(r.get(c)) for c in extras]
                     + [short.get(r["nearest_reference"], "")] * several
                     + [shown_path(r["path"])]
                     for r in records])]
    if not len(res):
        lines.append("(no other images match)")
    lines += credits
    return "\n".join(lines) + "\n"


def _pixels(record: dict) -> str:
    """Width x height, or nothing when unknown (an image known by imported vectors)."""
    if record["width"] is None or record["height"] is None:
        return ""
    return f"{record['width']}x{record['height']}"


#: The table view of `similar` shows at most this many metadata columns of a table source
#: (all of them are in the json, csv, parquet and tab formats).
_TABLE_EXTRAS = 4


def _table_extras(records: list[dict]) -> list[str]:
    from ..api import RECORD_FIELDS
    from ..formats.records import FEEDBACK_FIELDS

    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(k for k in r if k not in RECORD_FIELDS + FEEDBACK_FIELDS))
    return list(names)[:_TABLE_EXTRAS]


def _reference_names(references: list[str]) -> dict[str, str]:
    """Each reference by its file name, or by its whole path where two share a name."""
    names = [os.path.basename(r.rstrip("/")) or r for r in references]
    if len(set(names)) < len(names):
        names = references
    return {r: shown_path(n) for r, n in zip(references, names)}


def add_explain(commands: Commands) -> None:
    p = commands.add_parser("explain", help="show where two images match each other",
                            description="Show why two images look alike: where each one "
                                        "matches the other, from the network's last feature "
                                        "map. Prints each image's best-matching point (as "
                                        "fractions of its width and height, from the top "
                                        "left) and their distance; -o draws both with their "
                                        "heat overlaid. A and B are images of the collection "
                                        "(a path, URL or id) or any image files.")
    p.add_argument("a", metavar="A", help="an image: indexed path, URL or id, or a file")
    p.add_argument("b", metavar="B", help="the other image")
    db_option(p)
    model_option(p, "the network that explains (default: the model last indexed); your own "
                     "ONNX models have no feature map and cannot")
    p.add_argument("-o", "--output", metavar="FILE.png",
                   help="write the two images side by side, each with its heat overlaid")
    p.set_defaults(handler=cmd_explain)


def _image_argument(text: str) -> str | int:
    """An id when `text` is a whole number that names no file, else the path or URL."""
    return int(text) if text.isdigit() and not os.path.exists(text) else text


def cmd_explain(args) -> int:
    from ..api import Collection

    with Collection.open(args.db) as col:
        why = col.explain(_image_argument(args.a), _image_argument(args.b), model=args.model)
    print(f"distance {why.distance:.4f} ({why.metric}, {why.model})")
    for image, other, (x, y) in zip(why.images, why.images[::-1], why.peaks()):
        print(f"{image.name}: matches {other.name} most at x {x:.2f}, y {y:.2f}")
    if args.output:
        from ..formats.explain_picture import draw_explanation
        from ..formats.export import atomic_write

        with atomic_write(args.output) as f:
            f.write(draw_explanation(why))
        print(f"wrote {args.output} (png)")
    return 0


def add_tags(commands: Commands) -> None:
    p = commands.add_parser("tags", help="find images by what ImageNet's classifier saw in them "
                                         "(cat, dog, coffee), or list an image's tags",
                            description="Find the images tagged with WORDS, best first: each "
                                        "image keeps the ImageNet classes its model's "
                                        "classifier saw in it when indexed. A word names a "
                                        "class by any of its synonyms (\"tabby cat\") or a "
                                        "WordNet noun above it (\"dog\" finds every breed), "
                                        "case and plurals aside; several words find the "
                                        "images with any of them. Not CLIP: only the 1,000 "
                                        "ImageNet classes are known.")
    p.add_argument("words", nargs="*", metavar="WORD", help="class names or words above them")
    p.add_argument("--image", metavar="IMAGE", help="list this image's tags instead (its path "
                                                    "as indexed, or its id)")
    db_option(p)
    p.add_argument("-k", type=positive_int, default=None,
                   help="at most this many images (default: all)")
    model_option(p, "whose tags (default: the collection's model)")
    format_option(p, ("table", "json"), "table for people (default); json for programs",
                   default="table")
    p.set_defaults(handler=cmd_tags)


def cmd_tags(args) -> int:
    from ..api import Collection

    if bool(args.words) == bool(args.image):
        raise LookalikeError("give WORDS to look for, or --image IMAGE to list its tags "
                             "(not both)")
    with Collection.open(args.db) as col:
        if args.image:
            found: list[dict] = col.tags(_image_argument(args.image), model=args.model)
        else:
            found = col.tagged(args.words, k=args.k, model=args.model)
    if args.format == "json":
        shown = found if args.image else [{key: row[key] for key in (
            "id", "path", "category", "score", "tags")} for row in found]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    elif args.image:
        for tag in found:
            also = f" ({', '.join(tag['synonyms'])})" if tag["synonyms"] else ""
            print(f"{tag['score']:.3f}  {tag['name']}{also}")
    else:
        for row in found:
            names = ", ".join(t["name"] for t in row["tags"])
            print(f"{row['score']:.3f}  {row['path']}  [{names}]")
        print(f"{len(found):,} images")
    return 0
