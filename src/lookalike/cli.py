"""The `lookalike` command line: a thin translation to the Python API.

Each command is two functions side by side: `add_NAME` declares its options (those several
commands share come from the `_..._option` helpers) and `cmd_NAME` runs it with the parsed
arguments.

Errors a user can fix are printed as one line, `lookalike: error: ...`, with exit status 1
(2 for a wrong option, as argparse does); tracebacks are only for bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import LookalikeError, LookalikeWarning
from .locators import is_data_url

FORMATS = ("table", "json", "csv")
SIMILAR_FORMATS = ("table", "json", "csv", "parquet", "tab")
EXPORT_FORMATS = ("csv", "json", "parquet", "tab", "npz")

#: What `build_parser` hands each `add_COMMAND`: it adds the command's parser to it.
_Commands = argparse._SubParsersAction


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookalike",
        description="Find look-alike images: index a collection once, then ask for the images "
                    "nearest to any reference image.",
        epilog="Run `lookalike COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    # In this order in `lookalike --help`; each adds its options and its handler (`args.handler`).
    for add_command in (add_index, add_import, add_similar, add_explain, add_tags,
                        add_duplicates, add_not_duplicates, add_map, add_analyze, add_export,
                        add_models, add_skipped, add_datasets, add_demo, add_serve, add_cluster):
        add_command(commands)
    return parser


# -- options that several commands share ----------------------------------------------------

def _db_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--db", help=help or "the collection's database file (default: $LOOKALIKE_DB, "
                                        "else lookalike.db in the user data folder)")


def _model_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--model", help=help)


def _format_option(p: argparse.ArgumentParser, choices: Sequence[str], help: str,
                   default: str | None = None) -> None:
    p.add_argument("--format", choices=choices, default=default, help=help)


def _quiet_option(p: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _approximate_kind(text: str) -> bool | str:
    if text == "auto":
        return True
    if text in ("hnsw", "ivf", "scan"):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a kind of approximate search (hnsw, "
                                     "ivf, scan or auto); references go before --approximate")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of 0 or more")
    return value


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be "
                                         + ("0 or more" if minimum == 0 else f"at least {minimum}"))
    return value


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def main(argv: Sequence[str] | None = None) -> int:
    # Pillow warns about oddities of files it still reads (corrupt EXIF data, a truncated
    # tag); the image is used all the same, and a warning in the middle of a progress bar
    # reads like a crash.
    warnings.filterwarnings("ignore", module=r"PIL\.")
    # Notes about an answer are printed as `note: ...` where it is shown (or shown in the viewer).
    warnings.simplefilter("ignore", LookalikeWarning)
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # `lookalike` alone: what it can do, as a successful answer
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except LookalikeError as exc:
        print(f"lookalike: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lookalike: interrupted; what was committed is kept, run the command again to "
              "resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lookalike similar ... | head`
        sys.stderr.close()
        return 0


def _command() -> str:
    """How to type this program in the user's shell: `lookalike` when that is the one on
    PATH, else the full path of its script (after ./demo.sh, .venv/bin is not on PATH), else
    `python -m lookalike`."""
    import shutil

    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not (os.path.splitext(os.path.basename(script))[0] == "lookalike"
            and os.path.isfile(script)):  # run as `python -m lookalike`, or from Python
        beside = os.path.join(os.path.dirname(sys.executable), "lookalike")
        script = beside if os.path.isfile(beside) and os.access(beside, os.X_OK) else ""
    on_path = shutil.which("lookalike")
    if on_path and (not script or _same_file(on_path, script)):
        return "lookalike"
    if script:
        return shlex.quote(script)
    return f"{shlex.quote(sys.executable)} -m lookalike"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _quoted(path) -> str:
    return shlex.quote(str(path))


# -- commands ------------------------------------------------------------------------------

def add_index(commands: _Commands) -> None:
    from .distributed.indexing import DEFAULT_SHARD_SIZE

    p = commands.add_parser("index", help="add folders, image files or tables of images to a "
                                          "collection",
                            description="Scan folders (recursively) and image files, embed every "
                                        "new or changed image and store it. Unchanged files are "
                                        "not opened again; renamed or copied files reuse their "
                                        "cached vector; files that vanished from an indexed "
                                        "folder are dropped. A table (.csv, .tsv, .tab, .xlsx, "
                                        ".parquet) lists images by path or http(s)/data URL in "
                                        "one column; its other columns are kept with each image. "
                                        "URLs are downloaded once, into the user cache folder.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a folder, an image file or a table")
    p.add_argument("--image-column", metavar="COL",
                   help="the table column holding the image paths or URLs (default: the one "
                        "marked type=image in an Orange .tab, else the one whose values look "
                        "like images)")
    p.add_argument("--category-column", metavar="COL",
                   help="the table column holding each image's category (default: the class "
                        "column of an Orange .tab, else none)")
    p.add_argument("--base-dir", metavar="DIR",
                   help="the folder relative paths in a table start from (default: the .tab's "
                        "origin attribute, else the table's folder)")
    p.add_argument("--pattern", metavar="PATTERN",
                   help="columns from the file names, e.g. '{plate}_{well}_s{field}_w{channel}"
                        ".tif': each {name} becomes a column ({well} also well_row and "
                        "well_column), * matches anything (OME-TIFFs give theirs without it)")
    p.add_argument("--retag", action="store_true",
                   help="read again the images embedded before lookalike kept ImageNet tags, to "
                        "tag them (`lookalike tags`); without it an unchanged image is never "
                        "read again")
    _download_options(p)
    _db_option(p)
    _model_option(p, "the network that embeds the images (see `lookalike models`; default: the "
                     "default model)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N",
                   help="images per inference batch and per database commit (default 32)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="decoding and inference threads (default: the number of CPU cores)")
    p.add_argument("--max-pixels", type=_positive_int, metavar="N",
                   help="refuse images with more pixels than this (default 268,435,456); "
                        "TIFF and OME-Zarr images over it are read at a reduced resolution")
    _reading_options(p)
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="embed on a Dask cluster: local, local:N (N worker processes on this "
                        "machine) or a scheduler address such as tcp://HOST:8786 (see `lookalike "
                        "cluster`); the workers must reach the images by the same paths or URLs")
    p.add_argument("--shard-size", type=_positive_int, metavar="N",
                   help="images per task sent to a worker, committed as one "
                        f"(default {DEFAULT_SHARD_SIZE})")
    _quiet_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="list every skipped file")
    p.set_defaults(handler=cmd_index)


def _reading_options(p: argparse.ArgumentParser) -> None:
    """How scientific images (OME-TIFF, TIFF stacks, OME-Zarr, 16-bit) are read: kept with the
    collection, so each option given replaces the collection's and the others stay."""
    from .ingest.reading import DEFAULT_WINDOW

    group = p.add_argument_group("scientific images", "kept with the collection: an option "
                                 "given replaces the collection's, the others stay")
    group.add_argument("--z", metavar="Z|max|mean",
                       help="the z plane of a stack, or a maximum or mean projection (default 0)")
    group.add_argument("--t", metavar="T", type=_non_negative_int,
                       help="the time point (default 0)")
    group.add_argument("--channels", metavar="LIST",
                       help="channels shown as red, green, blue (e.g. 0,1,2), or each in a colour "
                            "(e.g. 0=blue,1=green,4=magenta); `all` for the image's own "
                            "(default: the first three)")
    group.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=None,
                       help="embed each of --channels as a grey image and join the vectors")
    group.add_argument("--window", metavar="LOW,HIGH",
                       help="percentiles of 16-bit and float samples shown as black and white "
                            f"(default {DEFAULT_WINDOW[0]:g},{DEFAULT_WINDOW[1]:g})")


def _reading_from(args, current):
    """The collection's reading options with those given on the command line replaced; None
    when none was given."""
    from dataclasses import replace

    from .ingest.reading import parse_channels, parse_window, parse_z

    given: dict = {}
    if args.z is not None:
        given["z"] = parse_z(args.z)
    if args.t is not None:
        given["t"] = args.t
    if args.channels is not None:
        channels = (None, None) if args.channels.strip().lower() == "all" \
            else parse_channels(args.channels)
        given["channels"], given["colours"] = channels
    if args.per_channel is not None:
        given["per_channel"] = args.per_channel
    if args.window is not None:
        given["window"] = parse_window(args.window)
    return replace(current, **given) if given else None


def _download_options(p: argparse.ArgumentParser) -> None:
    """How `index` fetches the images a table names by URL."""
    from .ingest import downloads as dl  # the library's defaults, shown and used as they are

    p.add_argument("--download-timeout", type=_positive_float, default=dl.DEFAULT_TIMEOUT,
                   metavar="SECONDS", help="give up on a URL after this long without an answer "
                                           f"(default {dl.DEFAULT_TIMEOUT:g})")
    p.add_argument("--download-retries", type=_non_negative_int, default=dl.DEFAULT_RETRIES,
                   metavar="N", help="tries again after a connection error, a timeout or a "
                                     "5xx/429 answer, waiting longer each time "
                                     f"(default {dl.DEFAULT_RETRIES})")
    p.add_argument("--download-limit", type=_positive_float, default=dl.DEFAULT_MAX_BYTES / MIB,
                   metavar="MiB", help="skip downloads larger than this many mebibytes "
                                       f"(default {dl.DEFAULT_MAX_BYTES / MIB:g})")
    p.add_argument("--downloads", type=_positive_int, default=dl.DEFAULT_CONCURRENCY, metavar="N",
                   help=f"downloads in flight at once (default {dl.DEFAULT_CONCURRENCY})")


#: --download-limit is in mebibytes, the unit of the library's limit (64 MiB).
MIB = 1 << 20


def cmd_index(args) -> int:
    from .api import Collection
    from .catalogue.store import no_empty_database_left
    from .ingest.decode import DEFAULT_MAX_PIXELS
    from .ingest.downloads import Downloader
    from .models import DEFAULT_MODEL

    downloader = Downloader(timeout=args.download_timeout, retries=args.download_retries,
                            max_bytes=int(args.download_limit * MIB),
                            concurrency=args.downloads)
    with no_empty_database_left(args.db), Collection.create(args.db) as col, downloader:
        reading = _reading_from(args, col.reading)
        report = col.add(args.paths, model=args.model or DEFAULT_MODEL, reading=reading,
                         batch_size=args.batch_size, threads=args.threads,
                         progress=not args.quiet,
                         max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
                         image_column=args.image_column, category_column=args.category_column,
                         base_dir=args.base_dir, downloader=downloader, pattern=args.pattern,
                         retag=args.retag, cluster=args.cluster, shard_size=args.shard_size)
        for table in report.tables:
            print(_table_summary(table))
        if not col.reading.is_default:
            print(f"images read with {col.reading.describe()}: vectors kept as {report.model}")
        if args.pattern:
            print(f"--pattern matched {report.pattern_matched:,} of {report.found:,} files")
        print(_summary(report, col.store.path))
        if args.verbose and report.skipped:
            print("skipped files:")
            for path, reason in report.skipped:
                print(f"  {path}: {reason}")
        elif report.skipped:
            print(f"run `{_command()} skipped --db {_quoted(col.store.path)}` (or index "
                  "--verbose) for the list of skipped files")
    return 0


def add_import(commands: _Commands) -> None:
    p = commands.add_parser("import", help="add vectors computed elsewhere (no image is read)",
                            description="Store vectors made elsewhere (on a GPU machine, by your "
                                        "own pipeline, or by `lookalike export`) as a model's "
                                        "vectors, one per image path or URL, without reading "
                                        "the images. Reads Parquet or JSON (a `vector` list "
                                        "column), CSV, TSV or .tab (columns f0, f1, ...) and "
                                        ".npz (arrays paths and vectors). Importing a path "
                                        "again replaces its vector; a bad file writes nothing.")
    p.add_argument("file", metavar="FILE", help="a .parquet, .json, .csv, .tsv, .tab or .npz file")
    _db_option(p)
    _model_option(p, "the model that made the vectors: one lookalike knows (the dimension must "
                     "match) or a name of your own (default: the model the file names)")
    p.add_argument("--path-column", metavar="COL",
                   help="the column of image paths or URLs (default: path, image, file or url)")
    p.add_argument("--vector-column", metavar="COL",
                   help="a list column of vectors, or the prefix of numbered columns COL0, "
                        "COL1, ... (default: vector or embedding, else f0, f1, ...)")
    p.set_defaults(handler=cmd_import)


def cmd_import(args) -> int:
    from .api import Collection
    from .catalogue.store import no_empty_database_left

    with no_empty_database_left(args.db), Collection.create(args.db) as col:
        report = col.import_vectors(args.file, model=args.model, path_column=args.path_column,
                                    vector_column=args.vector_column)
        db = col.store.path
    taken = ", ".join(f"{role}s from {column!r}" for role, column in report.columns.items())
    print(f"imported {report.images:,} {report.model} vectors of {report.dim} dimensions from "
          f"{args.file}{f' ({taken})' if taken else ''} in {report.seconds:.1f} s, database {db}")
    print(f"  new images         {report.added:>9,}\n  replaced           {report.updated:>9,}\n"
          f"  already indexed    {report.attached:>9,}")
    return 0


def _table_summary(info) -> str:
    """What was read from a table: the columns used (and why), what the rows held."""
    why = f" (chosen: {info.chosen_because})" if info.chosen_because else ""
    parts = [f"table {info.path}: {info.rows:,} rows, images from column {info.image_column!r}"
             f"{why}"]
    if info.category_column:
        because = f" ({info.category_because})" if info.category_because else ""
        parts.append(f"category from {info.category_column!r}{because}")
    if info.extra_columns:
        shown = ", ".join(repr(c) for c in info.extra_columns[:6])
        more = f" and {len(info.extra_columns) - 6} more" if len(info.extra_columns) > 6 else ""
        parts.append(f"kept as metadata: {shown}{more}")
    line = "; ".join(parts)
    if info.urls:
        line += f"\n  {info.urls:,} images named by URL"
    if info.without_image:
        line += f"\n  {info.without_image:,} rows without an image were left out"
    if info.duplicates:
        line += (f"\n  {info.duplicates:,} rows name an image listed on an earlier row (the "
                 "first row's columns are kept)")
    return line


def _summary(report, db) -> str:
    # The rate is the embedding pipeline's own (read, decode, embed, store): files found
    # unchanged and the model's loading would dilute it.
    rate = (f"  in {report.embed_seconds:.1f} s ({report.images_per_second:,.0f} images/s)"
            if report.embedded else "")
    lines = [f"{report.found:,} files in {report.seconds:.1f} s, model {report.model}, "
             f"database {db}",
             f"  embedded    {report.embedded:>8,}{rate}",
             f"  from cache  {report.from_cache:>8,}",
             f"  unchanged   {report.unchanged:>8,}",
             f"  removed     {report.removed:>8,}",
             f"  skipped     {len(report.skipped):>8,}"]
    if report.downloaded or report.download_cache_hits:
        lines.insert(1, f"  downloaded  {report.downloaded:>8,}"
                        + (f"  ({report.download_cache_hits:,} more from the download cache)"
                           if report.download_cache_hits else ""))
    if report.metadata_updated:
        lines.append(f"  table columns updated for {report.metadata_updated:,} unchanged images")
    for reason, count in report.skipped_by_reason.items():
        lines.append(f"    {count:>6,}  {reason}")
    return "\n".join(lines)


def add_similar(commands: _Commands) -> None:
    from .search.feedback import DEFAULT_REFINE_METHOD, REFINE_METHODS
    from .search.metrics import DEFAULT_K, DEFAULT_METRIC, METRICS

    p = commands.add_parser("similar", help="show the images nearest to one or several references",
                            description="Print the k images of the collection nearest to the "
                                        "reference images. With several references, an image's "
                                        "distance is its distance to the nearest of them. A "
                                        "reference may be an indexed file or any image file "
                                        "(embedded on the fly, not stored).")
    p.add_argument("refs", nargs="*", metavar="REF", help="a reference image file")
    _db_option(p)
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
    how_many = p.add_mutually_exclusive_group()
    how_many.add_argument("-k", type=_positive_int, default=DEFAULT_K, metavar="N",
                          help=f"how many look-alikes to show (default {DEFAULT_K})")
    how_many.add_argument("--all", action="store_true",
                          help="rank every image of the collection")
    p.add_argument("--metric", default=DEFAULT_METRIC, metavar="NAME",
                   help=f"distance measure, one of: {', '.join(METRICS)} "
                        f"(default {DEFAULT_METRIC.lower()})")
    _model_option(p, "which of the collection's models to use (default: the one it was last "
                     "indexed with)")
    p.add_argument("--max-distance", type=_non_negative_float, metavar="D",
                   help="only look-alikes at most D away (with -k: the k nearest of those; "
                        "with --all: every one)")
    p.add_argument("--include-references", action="store_true",
                   help="also rank the reference images themselves")
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
    search = p.add_mutually_exclusive_group()
    search.add_argument("--exact", action="store_const", const=False, dest="approximate",
                        help="always search exactly (the default below 200,000 images)")
    search.add_argument("--approximate", nargs="?", const=True, type=_approximate_kind,
                        dest="approximate", metavar="KIND",
                        help="search with a FAISS index (the default from 200,000 images, "
                             "or once the graph index is built): distances stay exact, a few "
                             "true neighbours may be missed. KIND: hnsw (the graph, fastest "
                             "once built), ivf (inverted file), scan (8-bit scan of every "
                             "image) or auto (the default: the graph where it is built or "
                             "fits in memory)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="search on a Dask cluster: local, local:N (N worker processes here) or "
                        "a scheduler address tcp://HOST:8786. The vectors are cut in shards "
                        "beside the database, each worker searches its own; the same answer as "
                        "the exact search (README: Search across workers)")
    _format_option(p, SIMILAR_FORMATS,
                   "table for people; json, csv or parquet for programs; tab for Orange (Image "
                   "Viewer shows the images). Default: from the extension of --output, else table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of printing (needed for parquet, unless FILE is "
                        "-: the standard output)")
    p.set_defaults(handler=cmd_similar)


def cmd_similar(args) -> int:
    from .api import Collection

    to_stdout = args.output == "-"
    output = None if to_stdout else args.output
    fmt = args.format
    if fmt is None:
        from .formats.export import EXTENSIONS

        fmt = EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "table")
        if fmt not in SIMILAR_FORMATS:
            print(f"lookalike: error: similar writes {', '.join(SIMILAR_FORMATS)}, not {fmt}; "
                  f"give --format", file=sys.stderr)
            return 2
    if fmt == "parquet" and not args.output:
        print("lookalike: error: --format parquet writes a binary file: give --output FILE "
              "(or --output - to write it to the standard output)", file=sys.stderr)
        return 2
    if to_stdout:
        _refuse_binary_on_a_terminal(fmt)
    if not args.refs and not args.like and not args.text:
        raise LookalikeError("give at least one reference image (REF, or --like) or --text")
    if args.text and args.like:
        raise LookalikeError("--text searches with REFs or alone, not with --like: leave out "
                             "one of them")
    if args.like and args.normalise:
        raise LookalikeError("--like refines on the stored vectors; leave out --normalise")
    with Collection.open(args.db) as col:
        k = None if args.all else args.k
        if args.like and args.cluster:
            raise LookalikeError("--like (relevance feedback) runs on this machine; leave out "
                                 "--cluster")
        if args.like:
            res = col.refine(args.refs + args.like, args.unlike, k=k, method=args.refine,
                             include_references=args.include_references, model=args.model,
                             category=args.category, path_prefix=args.path_prefix)
        else:
            res = col.nearest(args.refs or None, k=k, metric=args.metric, text=args.text,
                              include_references=args.include_references, model=args.model,
                              category=args.category, path_prefix=args.path_prefix,
                              approximate=args.approximate, max_distance=args.max_distance,
                              unlike=args.unlike or None, cluster=args.cluster,
                              normalise=args.normalise, controls=args.controls)
        credits = col.attributions(res.rows)
        others = [m for m in col.models if m != res.model] if args.model is None else []
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    if fmt == "table":
        text = _similar_table(res, credits, others)
        if not output:
            sys.stdout.write(text)
            return 0
        from .formats.export import atomic_write

        with atomic_write(output) as f:
            f.write(text.encode("utf-8"))
    elif fmt == "parquet" and to_stdout:
        _to_stdout(res.to_parquet, fmt)
        return 0
    else:
        writers: dict[str, Callable[..., str | None]] = {
            "json": res.to_json, "csv": res.to_csv, "tab": res.to_tab, "parquet": res.to_parquet}
        write = writers[fmt]
        if not output:  # parquet went to a file or the standard output above
            written = write()
            assert written is not None  # without a path, the text comes back
            sys.stdout.write(written if written.endswith("\n") else written + "\n")
            return 0
        write(output)
    print(f"wrote {len(res):,} look-alikes ({fmt}) to {output}")
    return 0


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
             _table(["rank", "distance"] + ["unlike distance"] * unlike
                    + ["category", "pixels", "size"] + extras
                    + ["nearest reference"] * several + ["path"],
                    [[r["rank"], f"{r['distance']:.4f}"]
                     + ([f"{r['unlike_distance']:.4f}"] if unlike else [])
                     + [r["category"] or "", _pixels(r), _bytes(r["size"])]
                     + [_short(r.get(c)) for c in extras]
                     + [short.get(r["nearest_reference"], "")] * several
                     + [_shown_path(r["path"])]
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


def _bytes(size: int | None) -> str:
    """A file size for people: 812 B, 4.5 kB, 12 MB (powers of 1000, as file managers show)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    return f"{value:,.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"


_BINARY_FORMATS = ("parquet", "npz")


def _refuse_binary_on_a_terminal(fmt: str) -> None:
    if fmt in _BINARY_FORMATS and sys.stdout.isatty():
        raise LookalikeError(f"{fmt} is a binary format: redirect the standard output to a file "
                             f"(`> out.{fmt}`) or a program (`| ...`), or give -o FILE")


def _to_stdout(write: Callable[[str], object], fmt: str):
    """What `write(path)` writes, copied to the standard output (for `-o -`); a binary format
    is refused when that is a terminal, where its bytes would garble the screen."""
    import shutil
    import tempfile

    _refuse_binary_on_a_terminal(fmt)
    with tempfile.TemporaryDirectory(prefix="lookalike-") as folder:
        path = os.path.join(folder, f"out.{fmt}")
        result = write(path)
        sys.stdout.flush()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return result


DUPLICATE_FORMATS = ("table", "json", "csv", "tab")


def add_explain(commands: _Commands) -> None:
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
    _db_option(p)
    _model_option(p, "the network that explains (default: the model last indexed); your own "
                     "ONNX models have no feature map and cannot")
    p.add_argument("-o", "--output", metavar="FILE.png",
                   help="write the two images side by side, each with its heat overlaid")
    p.set_defaults(handler=cmd_explain)


def _image_argument(text: str) -> str | int:
    """An id when `text` is a whole number that names no file, else the path or URL."""
    return int(text) if text.isdigit() and not os.path.exists(text) else text


def cmd_explain(args) -> int:
    from .api import Collection

    with Collection.open(args.db) as col:
        why = col.explain(_image_argument(args.a), _image_argument(args.b), model=args.model)
    print(f"distance {why.distance:.4f} ({why.metric}, {why.model})")
    for image, other, (x, y) in zip(why.images, why.images[::-1], why.peaks()):
        print(f"{image.name}: matches {other.name} most at x {x:.2f}, y {y:.2f}")
    if args.output:
        from .formats.explain_picture import draw_explanation
        from .formats.export import atomic_write

        with atomic_write(args.output) as f:
            f.write(draw_explanation(why))
        print(f"wrote {args.output} (png)")
    return 0


def add_duplicates(commands: _Commands) -> None:
    from .analysis.duplicates import CANDIDATE_DISTANCE, DEFAULT_TIER, TIERS

    p = commands.add_parser("duplicates", help="find groups of copies in the collection",
                            description="Print the groups of copies in the collection, largest "
                                        "first, each with the copy suggested to keep (most "
                                        "pixels, then largest file, then oldest, then "
                                        "--keep-priority). Nothing is deleted or moved.")
    _db_option(p)
    p.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER,
                   help="exact: the same bytes; pixels: the same decoded pixels; near: edited "
                        "copies (resized, re-encoded, cropped, brightened, mirrored, ...); "
                        "similar: look-alikes by distance alone (default: %(default)s)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--threshold", type=_non_negative_float, metavar="D",
                        help="the largest cosine distance of a candidate pair (default: near "
                             f"{CANDIDATE_DISTANCE['near']:g}, similar "
                             f"{CANDIDATE_DISTANCE['similar']:g})")
    window.add_argument("--range", type=_non_negative_float, nargs=2, metavar=("LO", "HI"),
                        help="candidate pairs between these cosine distances")
    p.add_argument("--across", metavar="DB",
                   help="another collection's database: which images of this one have a copy "
                        "there (a train/test leak check)")
    p.add_argument("--keep-priority", nargs="+", metavar="FOLDER", default=[],
                   help="folders whose copies to keep first, after pixels, size and age")
    _model_option(p, "whose vectors find the candidates (default: the model last indexed)")
    _format_option(p, DUPLICATE_FORMATS, "table for people; json, csv or tab for programs. "
                                         "Default: from the extension of --output, else table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of printing; - is the standard output")
    p.add_argument("--move-script", metavar="FILE",
                   help="also write a shell script that moves the copies not kept into "
                        "--move-to when you run it (it is not run: read it, then `sh FILE`)")
    p.add_argument("--move-to", metavar="FOLDER",
                   help="the folder the --move-script moves the copies into (sub-folders kept)")
    _quiet_option(p)
    p.set_defaults(handler=cmd_duplicates)


def cmd_duplicates(args) -> int:
    from .api import Collection
    from .formats.export import EXTENSIONS, atomic_write, write_duplicates

    output = None if args.output in (None, "-") else args.output
    fmt = args.format or EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "table")
    if fmt not in DUPLICATE_FORMATS:
        raise LookalikeError(f"duplicates writes {', '.join(DUPLICATE_FORMATS)}, not {fmt}; "
                             "give --format")
    if args.across is not None and not os.path.isfile(args.across):
        raise LookalikeError(f"{args.across}: no such database (--across)")
    _check_move_options(args)
    with Collection.open(args.db) as col:
        groups = col.duplicates(args.tier, args.threshold,
                                tuple(args.range) if args.range else None, model=args.model,
                                across=args.across, keep_priority=args.keep_priority,
                                progress=not args.quiet)
        if args.move_script:
            script = col.move_script(groups, os.path.abspath(os.path.expanduser(args.move_to)))
            with atomic_write(args.move_script) as f:
                f.write(script)
            print(f"wrote {args.move_script}: it moves the copies not kept into {args.move_to} "
                  f"when you run it (sh {shlex.quote(args.move_script)}); nothing moved yet",
                  file=sys.stderr)
    text = (_duplicates_table(groups, args.tier) if fmt == "table"
            else write_duplicates(groups, fmt))
    assert text is not None
    if not output:
        sys.stdout.write(text)
        return 0
    with atomic_write(output) as f:
        f.write(text.encode("utf-8"))
    print(f"wrote {len(groups):,} groups of copies ({fmt}) to {output}")
    return 0


def _check_move_options(args) -> None:
    if bool(args.move_script) != bool(args.move_to):
        raise LookalikeError("--move-script FILE and --move-to FOLDER go together: give both")
    if args.move_script and args.across:
        raise LookalikeError("--move-script moves copies within one collection; leave out "
                             "--across")
    if args.move_script and os.path.abspath(args.move_script) == os.path.abspath(args.output
                                                                                  or ""):
        raise LookalikeError(f"{args.move_script}: give --move-script and --output different "
                             "files")


def _duplicates_table(groups, tier: str) -> str:
    """The groups for people: largest first, the keeper marked, each member's distance to the
    group's first image."""
    images = sum(len(g) for g in groups)
    lines = [f"{len(groups):,} group{'s' * (len(groups) != 1)} of copies ({tier}), "
             f"{images:,} images"]
    for g in groups:
        lines.append(f"\ngroup {g.number}: {len(g)} images")
        lines.append(_table(["keep", "distance", "pixels", "size", "id", "path"],
                            [["keep" if (r["id"] == g.keep and (i == 0 or "collection" not in r))
                              else "", f"{d:.4f}", f"{r['width']}x{r['height']}",
                              _bytes(r["size"]), r["id"], _shown_path(r["path"])]
                             for i, (r, d) in enumerate(zip(g.rows, g.distances))]))
    if not groups:
        lines.append("(no copies found)")
    return "\n".join(lines) + "\n"


def add_not_duplicates(commands: _Commands) -> None:
    p = commands.add_parser("not-duplicates", help="remember that images are not copies",
                            description="Remember that these images (by id, as `duplicates` "
                                        "shows them) are not copies of each other: `duplicates` "
                                        "never groups them again, also after re-indexing.")
    p.add_argument("ids", nargs="+", type=_positive_int, metavar="ID",
                   help="an image id (the id column of `duplicates`)")
    _db_option(p)
    p.add_argument("--undo", action="store_true", help="forget that decision instead")
    p.set_defaults(handler=cmd_not_duplicates)


def cmd_not_duplicates(args) -> int:
    from .api import Collection

    with Collection.open(args.db) as col:
        changed = col.mark_not_duplicates(args.ids, not_duplicates=not args.undo)
    print(f"{'forgot' if args.undo else 'remembered'} {changed:,} pair{'s' * (changed != 1)} "
          "of images that are not copies")
    return 0


MAP_FORMATS = ("csv", "json", "tab", "parquet")


def add_map(commands: _Commands) -> None:
    p = commands.add_parser("map", help="lay the collection out as a 2-D map of its images",
                            description="Lay every image out as a point of a 2-D map (UMAP, "
                                        "t-SNE or PCA of its vectors), kept beside the database: "
                                        "images added later are placed into it until a quarter "
                                        "more have come, then it is fitted again. Prints a "
                                        "summary; -o writes id, path, category, x and y; "
                                        "--image draws it. `export` then adds x and y.")
    _db_option(p)
    _model_option(p, "whose vectors to lay out (default: the model last indexed)")
    p.add_argument("--method", choices=("umap", "tsne", "pca"), default="umap",
                   help="umap (default; about 2 minutes at 100,000 images), tsne (openTSNE, as "
                        "Orange) or pca (seconds)")
    p.add_argument("--refit", action="store_true",
                   help="fit the map again rather than placing new images into the kept one")
    _format_option(p, MAP_FORMATS, "of -o; default: from its extension, else csv")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write each image's id, path, category, x and y to FILE; - is the "
                        "standard output")
    p.add_argument("--image", metavar="FILE.png",
                   help="draw the map as a PNG: a dot per image, coloured by category")
    p.set_defaults(handler=cmd_map)


def cmd_map(args) -> int:
    from .api import Collection
    from .formats.export import EXTENSIONS, atomic_write, write_map
    from .formats.map_picture import draw_map

    output = None if args.output in (None, "-") else args.output
    fmt = args.format or EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "csv")
    if fmt not in MAP_FORMATS:
        raise LookalikeError(f"map writes {', '.join(MAP_FORMATS)}, not {fmt}; give --format")
    if args.output == "-":
        _refuse_binary_on_a_terminal(fmt)
    with Collection.open(args.db) as col:
        layout = col.map(model=args.model, method=args.method, refit=args.refit)
    if args.output == "-":
        _to_stdout(lambda path: write_map(layout, fmt, path), fmt)
    elif output:
        write_map(layout, fmt, output)
    if args.image:
        with atomic_write(args.image) as f:
            f.write(draw_map(layout))
    out = sys.stderr if args.output == "-" else sys.stdout
    done = {"fitted": f"fitted in {layout.seconds:.1f} s",
            "placed": f"{layout.placed:,} placed into the map fitted on {layout.fitted_on:,} "
                      f"images ({layout.seconds:.1f} s)",
            "cached": f"the map kept beside the database (fitted on {layout.fitted_on:,}, "
                      f"{layout.placed:,} placed since)"}[layout.action]
    print(f"{len(layout):,} images laid out by {layout.method} of {layout.model} vectors: "
          f"{done}", file=out)
    for target, what in ((output, fmt), (args.image, "png")):
        if target:
            print(f"wrote {target} ({what})", file=out)
    return 0


ANALYZE_FORMATS = ("csv", "json", "tab", "parquet")


def _clusters(text: str) -> str | int:
    if text.strip().lower() == "auto":
        return "auto"
    return _positive_int(text)


def add_analyze(commands: _Commands) -> None:
    p = commands.add_parser("analyze", help="clusters, outliers, quality flags and a diverse "
                                            "sample of the collection",
                            description="Print the collection's clusters by size with a few "
                                        "examples each, its most unusual images, the counts of "
                                        "its quality flags and, with --sample, a diverse sample. "
                                        "Results are kept in the database until it changes; "
                                        "-o writes them per image.")
    _db_option(p)
    _model_option(p, "whose vectors to analyse (default: the model last indexed)")
    p.add_argument("--clusters", type=_clusters, default="auto", metavar="auto|N",
                   help="auto finds the number of clusters (HDBSCAN; k-means above 20,000 "
                        "images), N asks k-means for N (default: auto)")
    p.add_argument("--sample", type=_positive_int, metavar="N",
                   help="also pick N images that cover the collection (farthest-point)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write every image's cluster, typicality, outlier score, place in the "
                        "sample and flags to FILE; - is the standard output")
    _format_option(p, ANALYZE_FORMATS, "for -o; default: from its extension, else csv")
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(args) -> int:
    from .api import Collection
    from .formats.analysis import write_analysis
    from .formats.export import resolve_format

    fmt = "csv"
    if args.output is not None:
        fmt = resolve_format(args.output, args.format or ("csv" if args.output == "-" else None),
                             ANALYZE_FORMATS)
        if args.output == "-":
            _refuse_binary_on_a_terminal(fmt)
    with Collection.open(args.db) as col:
        analysis = col.analyze(args.model, args.clusters, args.sample)
    if args.output is None:
        sys.stdout.write(_analysis_summary(analysis))
        return 0
    if args.output == "-":
        _to_stdout(lambda path: write_analysis(analysis, fmt, path), fmt)
        sys.stderr.write(_analysis_summary(analysis))
        return 0
    write_analysis(analysis, fmt, args.output)
    sys.stdout.write(_analysis_summary(analysis))
    print(f"wrote {len(analysis):,} images ({fmt}) to {args.output}")
    return 0


def _analysis_summary(a) -> str:
    """The analysis for people: clusters by size with examples, the most unusual images,
    the flag counts and the sample."""
    def name(image_id: int) -> str:
        return a.row(image_id)["name"] or _shown_path(a.row(image_id)["path"])

    summaries = a.clusters
    found = sum(s.cluster >= 0 for s in summaries)
    noise = sum(s.size for s in summaries if s.cluster < 0)
    how = "computed" if not a.reused else "stored"
    lines = [f"{len(a):,} images, model {a.model}: {found:,} cluster{'s' * (found != 1)} "
             f"({a.method}), {noise:,} in none ({how}, {a.seconds:.1f} s)", ""]
    lines.append(_table(["cluster", "images", "examples"],
                        [["none" if s.cluster < 0 else s.cluster, f"{s.size:,}",
                          ", ".join(_short(name(i), 28) for i in s.examples)]
                         for s in summaries[:_SUMMARY_CLUSTERS]]))
    if len(summaries) > _SUMMARY_CLUSTERS:
        lines.append(f"... and {len(summaries) - _SUMMARY_CLUSTERS:,} more clusters (-o FILE "
                     "lists every image)")
    lines += ["", "most unusual (distance to the 5th nearest neighbour):"]
    position = {int(i): n for n, i in enumerate(a.ids)}
    lines.append(_table(["outlier", "cluster", "id", "path"],
                        [[f"{a.outlier[position[i]]:.4f}", a.cluster[position[i]], i,
                          _shown_path(a.row(i)["path"])] for i in a.most_unusual()]))
    counts = a.flag_counts
    lines += ["", "quality flags: " + (", ".join(f"{k.replace('_', ' ')} {v:,}"
                                                for k, v in counts.items()))]
    if a.sample:
        lines += ["", f"diverse sample of {len(a.sample):,}:"]
        lines.append(_table(["#", "cluster", "id", "path"],
                            [[n + 1, a.cluster[position[i]], i, _shown_path(a.row(i)["path"])]
                             for n, i in enumerate(a.sample)]))
    return "\n".join(lines) + "\n"


_SUMMARY_CLUSTERS = 20


def add_export(commands: _Commands) -> None:
    p = commands.add_parser("export",
                            help="write the whole collection, with its vectors, to a file",
                            description="Write every usable image of the collection (skipped "
                                        "files are left out): id, path, name, category, width, "
                                        "height, size and the vector of one model. CSV and "
                                        "Orange's .tab give the vector as columns f0, f1, ... "
                                        "(the .tab loads in Orange as Image Embedding's output "
                                        "would); JSON and Parquet as a `vector` list; .npz as the "
                                        "arrays ids, vectors and paths.")
    _db_option(p)
    _model_option(p, "whose vectors to write (default: the model the collection was last indexed "
                     "with)")
    _format_option(p, EXPORT_FORMATS, "default: from the extension of --output")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the file to write; - writes to the standard output (csv unless "
                        "--format says otherwise)")
    p.add_argument("--no-vectors", action="store_true",
                   help="the catalogue only, without vectors (not for npz)")
    _quiet_option(p)
    p.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from .api import Collection
    from .formats.export import resolve_format

    to_stdout = args.output == "-"
    fmt = resolve_format(args.output, args.format or ("csv" if to_stdout else None),
                         EXPORT_FORMATS)
    if fmt == "npz" and args.no_vectors:
        print("lookalike: error: an .npz export holds the vectors; drop --no-vectors or choose "
              "another format", file=sys.stderr)
        return 2
    if to_stdout:
        _refuse_binary_on_a_terminal(fmt)  # before the work, not after
    with Collection.open(args.db) as col:
        def write(path):
            return col.export(path, fmt, model=args.model, vectors=not args.no_vectors,
                              progress=not args.quiet)
        report = _to_stdout(write, fmt) if to_stdout else write(args.output)
    # Written to the standard output, the export is followed by nothing else there.
    out = sys.stderr if to_stdout else sys.stdout
    where = "the standard output" if to_stdout else report.path
    what = f", {report.model} vectors of {report.dim} dimensions" if report.model else ""
    print(f"wrote {report.rows:,} images{what} to {where} ({fmt}, {report.seconds:.1f} s)",
          file=out)
    if report.without_vector:
        print(f"{report.without_vector:,} usable images have no {report.model} vector and were "
              f"left out; index them with --model {report.model} to include them", file=out)
    return 0


def add_models(commands: _Commands) -> None:
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
    _format_option(p, ("table", "json"), "table for people (default), json for programs",
                   default="table")
    p.add_argument("--db", help="also list the models of this collection, imported ones "
                                "included, with how many images each covers")
    own = p.add_argument_group("add")
    own.add_argument("--name", help="the name to use it by (letters, digits, . _ + -)")
    own.add_argument("--input-size", type=_positive_int, metavar="N",
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
    text.add_argument("--context-length", type=_positive_int, default=77, metavar="N",
                      help="token ids per text, start and end tokens included (default "
                           "%(default)s, CLIP's)")
    p.set_defaults(handler=cmd_models)


def cmd_models(args) -> int:
    if args.action == "add":
        return _add_own_model(args)
    if args.action == "add-text":
        return _add_text_model(args)
    if args.action == "remove-text":
        from .models import unregister_text_model

        if not args.target:
            raise LookalikeError("name the model whose text tower to remove: `lookalike models "
                                 "remove-text NAME`")
        kept = unregister_text_model(args.target)
        print(f"removed the text tower of your model {kept.name.partition('@')[0]}; the image "
              "model stays, and the text tower's file is kept")
        return 0
    if args.action == "remove":
        from .models import unregister_model

        if not args.target:
            raise LookalikeError("name the model to remove: `lookalike models remove NAME`")
        gone = unregister_model(args.target)
        print(f"removed your model {gone.name.partition('@')[0]} ({gone.file}); the file and "
              "the vectors made with it are kept")
        return 0
    return _list_models(args)


def _add_own_model(args) -> int:
    from .models import register_model

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
    from .models import register_text_model

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
    from .models import list_models

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
        print(_table(["name", "dim", "images", "model"],
                     [[m["name"], m["dim"], f"{m['images']:,}", m["model"]] for m in held]))
        print()
    print(_table(["name", "dim", "input", "licence", "package", "installed", "default"],
                 [[m.name, m.dim, f"{m.input_size}px", m.licence, m.package or f"yours: {m.file}",
                   "yes" if m.installed else "no", "*" if m.is_default else ""] for m in infos]))
    for m in infos:
        if m.text_file:
            print(f"{m.name} has a text tower: {m.text_file} (similar --text)")
        if not m.installed:
            print(f"{m.name} is not installed: {m.install_hint}" if not m.file else
                  f"{m.name}: its file {m.file} is gone")
    from .models import cpu

    print(cpu.int8_advice(cpu.cpu_flags()))
    return 0


def _collection_models(db) -> list[dict]:
    """The models a collection holds vectors of: name, dim, images, whether one of the user's
    own (a registered model, or vectors imported under a name lookalike does not know), what
    it is, in words, and the reading options its images were read with (vectors stored as
    MODEL~HASH8: `ReadingOptions.vector_key`)."""
    from .api import Collection
    from .ingest.reading import base_model

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
                        "own": own, "model": what, "reading": reading})
    return out


def _model_kind(name: str) -> tuple[bool, str]:
    """(whether the user's own, what it is in words) of a model's name."""
    from .models import ModelChangedError, UnknownModelError, get_model_info

    try:
        info = get_model_info(name)
    except UnknownModelError:
        return True, "your own (imported vectors, or an earlier file)"
    except ModelChangedError:
        return True, "your own (its file has changed: add it again)"
    own = bool(info.file) or info.name != name
    return own, (f"your own ({info.file})" if info.file else
                 "your own (imported vectors)" if own else "built in")


def add_skipped(commands: _Commands) -> None:
    p = commands.add_parser("skipped", help="list the files that could not be indexed, with "
                                            "reasons",
                            description="List every file that `index` found but could not use, "
                                        "with the reason (empty, truncated, not an image, too "
                                        "many pixels, a failed download, ...). The next `index` "
                                        "tries a file again once it has changed, and a URL every "
                                        "time.")
    _db_option(p)
    _format_option(p, FORMATS, "table for people (default); json or csv for programs",
                   default="table")
    p.set_defaults(handler=cmd_skipped)


def cmd_skipped(args) -> int:
    from .api import Collection

    with Collection.open(args.db) as col:
        rows = col.skipped()
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=["path", "reason"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            print(f"{row['path']}: {row['reason']}")
        print(f"{len(rows):,} skipped files")
    return 0


def add_tags(commands: _Commands) -> None:
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
    _db_option(p)
    p.add_argument("-k", type=_positive_int, default=None,
                   help="at most this many images (default: all)")
    _model_option(p, "whose tags (default: the collection's model)")
    _format_option(p, ("table", "json"), "table for people (default); json for programs",
                   default="table")
    p.set_defaults(handler=cmd_tags)


def cmd_tags(args) -> int:
    from .api import Collection

    if bool(args.words) == bool(args.image):
        raise LookalikeError("give WORDS to look for, or --image IMAGE to list its tags "
                             "(not both)")
    with Collection.open(args.db) as col:
        if args.image:
            image = int(args.image) if args.image.isdigit() and not os.path.exists(args.image) \
                else args.image
            found: list[dict] = col.tags(image, model=args.model)
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


def add_datasets(commands: _Commands) -> None:
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
    p.add_argument("--limit", type=_positive_int, metavar="N",
                   help="at most N images per class (the first ones; default: all)")
    _format_option(p, ("table", "json"), "how to list the collections", default="table")
    _quiet_option(p)
    p.set_defaults(handler=cmd_datasets)


def cmd_datasets(args) -> int:
    from . import datasets

    if args.action == "list":
        rows = list(datasets.DATASETS.values())
        if args.format == "json":
            print(json.dumps([{"name": d.name, "images": d.size, "licence": d.licence,
                               "source": d.source, "content": d.content,
                               "available": d.available, "install": d.install,
                               "attribution": d.attribution} for d in rows], indent=2))
            return 0
        print(_table(["name", "images", "licence", "installed", "from", "content"],
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


def add_demo(commands: _Commands) -> None:
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
    _db_option(p, "the sample's database file (default: DIR.db, beside the folder)")
    _model_option(p, "the network that embeds the images (default: the default model)")
    p.add_argument("--split", choices=("test", "train", "all"),
                   help="fashion-mnist only: which split (default test)")
    p.add_argument("--limit", type=_positive_int, metavar="N",
                   help="at most N images per class of the sample (default: all)")
    p.add_argument("--port", type=int,
                   help="the viewer's port (default 8000, or a free one when 8000 is taken; "
                        "0 picks a free one)")
    p.add_argument("--no-open", action="store_true",
                   help="do not open the page in a browser (the address is printed)")
    p.add_argument("--no-serve", action="store_true",
                   help="stop after indexing and the example, without starting the viewer")
    _quiet_option(p, "no progress bars")
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args) -> int:
    import platformdirs

    from . import datasets
    from .api import Collection
    from .catalogue.store import no_empty_database_left
    from .models import DEFAULT_MODEL

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
        print(_summary(report, col.store.path))
        if len(col):
            reference = sample.example or col.images(limit=1)[1][0]["path"]
            res = col.nearest([reference], k=5, model=report.model)
            inside = lambda path: os.path.relpath(path, folder)  # noqa: E731
            print(f"\nLook-alikes of {inside(reference)} (in {folder}):")
            print(_table(["rank", "distance", "image"],
                         [[r["rank"], f"{r['distance']:.4f}", inside(r["path"])]
                          for r in res.to_records()]))
            for credit in col.attributions(res.rows):
                print(credit)
    print()
    print(_next_steps(db, reference))
    if args.no_serve:
        return 0
    from .web import serve

    port = args.port
    if port is None:
        port = 8000 if _port_is_free("127.0.0.1", 8000) else 0
    open_browser = not args.no_open and _has_browser()
    if not args.no_open and not open_browser:
        print("no graphical browser here: open the address below in one", file=sys.stderr)
    serve(db, host="127.0.0.1", port=port, open_browser=open_browser)
    return 0


def _next_steps(db, reference: str | os.PathLike | None) -> str:
    """The commands to go on with the demo's collection, each as it can be typed here:
    ./demo.sh does not put .venv/bin on PATH, so they name the script when `lookalike` is
    not found, and always the demo's database."""
    # Absolute paths: ./demo.sh runs from its own folder, not the user's.
    command, db = _command(), _quoted(os.path.abspath(db))
    example = _quoted(os.path.abspath(reference)) if reference else "IMAGE"
    lines = ["Look-alikes of any image (indexed or not), e.g. this one:",
             f"  {command} similar {example} --db {db}",
             "Browse them in the web viewer:",
             f"  {command} serve --db {db} --open"]
    if command != "lookalike":
        activate = Path(sys.executable).parent / "activate"  # in a virtual environment
        if activate.is_file():
            lines.append(f"(or run `source {_quoted(activate)}` once, then type `lookalike ...`)")
    return "\n".join(lines)


def _port_is_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _has_browser() -> bool:
    """Whether opening a page can show it: on a machine without a display, Python's
    webbrowser would start a text-mode browser in this terminal, or nothing at all."""
    if os.environ.get("BROWSER") or sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def add_serve(commands: _Commands) -> None:
    p = commands.add_parser("serve", help="browse the collection and walk through look-alikes in "
                                          "a web browser",
                            description="Start the web viewer: a grid of every image; click one "
                                        "to see its look-alikes, click a look-alike to walk on. "
                                        "The page's data is also a JSON API, documented at /docs. "
                                        "It listens on this machine only unless --host says "
                                        "otherwise.")
    _db_option(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 shows the collection to the whole network, with a warning)")
    p.add_argument("--port", type=int, default=8000,
                   help="the port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in a web browser")
    p.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    from .web import serve

    if not 0 <= args.port <= 65535:
        print(f"lookalike: error: --port must be between 0 and 65535, not {args.port}",
              file=sys.stderr)
        return 2
    open_browser = args.open and _has_browser()
    if args.open and not open_browser:
        print("no graphical browser here: open the address below in one", file=sys.stderr)
    serve(args.db, host=args.host, port=args.port, open_browser=open_browser)
    return 0


#: The table view of `similar` shows at most this many metadata columns of a table source
#: (all of them are in the json, csv, parquet and tab formats).
_TABLE_EXTRAS = 4


def _table_extras(records: list[dict]) -> list[str]:
    from .api import RECORD_FIELDS
    from .formats.records import FEEDBACK_FIELDS

    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(k for k in r if k not in RECORD_FIELDS + FEEDBACK_FIELDS))
    return list(names)[:_TABLE_EXTRAS]


def _short(value, width: int = 24) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _reference_names(references: list[str]) -> dict[str, str]:
    """Each reference by its file name, or by its whole path where two share a name."""
    names = [os.path.basename(r.rstrip("/")) or r for r in references]
    if len(set(names)) < len(names):
        names = references
    return {r: _shown_path(n) for r, n in zip(references, names)}


def _shown_path(path: str) -> str:
    # A data: URL holds the whole image: too long to read in a table.
    return _short(path, 48) if is_data_url(path) else path


def _table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def add_cluster(commands: _Commands) -> None:
    from .distributed.workers import DEFAULT_PORT

    p = commands.add_parser("cluster", help="start Dask workers (and a scheduler) on this "
                                            "machine for `index --cluster`",
                            description="Start Dask worker processes that can run lookalike's "
                                        "work, joined to --scheduler or to a scheduler started "
                                        "here, whose address is printed; run until Ctrl-C. Start "
                                        "one on each machine of the cluster (all of them with "
                                        "lookalike installed and the images at the same paths), "
                                        "then `lookalike index PATH --cluster ADDRESS` anywhere. "
                                        "The same as `dask scheduler` and `dask worker ADDRESS "
                                        "--nworkers N`.")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="worker processes, sharing this machine's cores (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="join this scheduler (tcp://HOST:8786) instead of starting one")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address the scheduler started here listens on (default 127.0.0.1: "
                        "this machine only; 0.0.0.0 for workers on other machines)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"the scheduler's port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.set_defaults(handler=cmd_cluster)


def cmd_cluster(args) -> int:
    from .distributed.workers import serve_workers

    def ready(address: str) -> None:
        print(f"{args.workers} worker{'s' * (args.workers != 1)} ready; scheduler {address}\n"
              f"index with: {_command()} index PATH --cluster {address}\n"
              "(Ctrl-C stops them)", flush=True)

    try:
        serve_workers(args.workers, scheduler=args.scheduler, host=args.host, port=args.port,
                      ready=ready)
    except KeyboardInterrupt:
        print("workers stopped", file=sys.stderr)
    return 0
