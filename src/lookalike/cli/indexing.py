"""Images in: `index` (folders, files, tables, URLs, object stores), `import` (vectors made
elsewhere) and `skipped` (what `index` could not use, and why)."""

from __future__ import annotations

import argparse
import json
import sys

from .options import (
    Commands,
    db_option,
    format_option,
    model_option,
    non_negative_int,
    positive_float,
    positive_int,
    quiet_option,
)
from .shell import program, quoted


def add_index(commands: Commands) -> None:
    from ..distributed.indexing import DEFAULT_SHARD_SIZE

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
    db_option(p)
    model_option(p, "the network that embeds the images (see `lookalike models`; default: the "
                     "default model)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="images per inference batch and per database commit (default 32)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="decoding and inference threads (default: the number of CPU cores)")
    p.add_argument("--max-pixels", type=positive_int, metavar="N",
                   help="refuse images with more pixels than this (default 268,435,456); "
                        "TIFF and OME-Zarr images over it are read at a reduced resolution")
    _reading_options(p)
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="embed on a Dask cluster: local, local:N (N worker processes on this "
                        "machine) or a scheduler address such as tcp://HOST:8786 (see `lookalike "
                        "cluster`); the workers must reach the images by the same paths or URLs")
    p.add_argument("--shard-size", type=positive_int, metavar="N",
                   help="images per task sent to a worker, committed as one "
                        f"(default {DEFAULT_SHARD_SIZE})")
    quiet_option(p)
    p.add_argument("-v", "--verbose", action="store_true", help="list every skipped file")
    p.set_defaults(handler=cmd_index)


def _reading_options(p: argparse.ArgumentParser) -> None:
    """How scientific images (OME-TIFF, TIFF stacks, OME-Zarr, 16-bit) are read: kept with the
    collection, so each option given replaces the collection's and the others stay."""
    from ..ingest.reading import DEFAULT_WINDOW

    group = p.add_argument_group("scientific images", "kept with the collection: an option "
                                 "given replaces the collection's, the others stay")
    group.add_argument("--z", metavar="Z|max|mean",
                       help="the z plane of a stack, or a maximum or mean projection (default 0)")
    group.add_argument("--t", metavar="T", type=non_negative_int,
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

    from ..ingest.reading import parse_channels, parse_window, parse_z

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
    from ..ingest import downloads as dl  # the library's defaults, shown and used as they are

    p.add_argument("--download-timeout", type=positive_float, default=dl.DEFAULT_TIMEOUT,
                   metavar="SECONDS", help="give up on a URL after this long without an answer "
                                           f"(default {dl.DEFAULT_TIMEOUT:g})")
    p.add_argument("--download-retries", type=non_negative_int, default=dl.DEFAULT_RETRIES,
                   metavar="N", help="tries again after a connection error, a timeout or a "
                                     "5xx/429 answer, waiting longer each time "
                                     f"(default {dl.DEFAULT_RETRIES})")
    p.add_argument("--download-limit", type=positive_float, default=dl.DEFAULT_MAX_BYTES / MIB,
                   metavar="MiB", help="skip downloads larger than this many mebibytes "
                                       f"(default {dl.DEFAULT_MAX_BYTES / MIB:g})")
    p.add_argument("--downloads", type=positive_int, default=dl.DEFAULT_CONCURRENCY, metavar="N",
                   help=f"downloads in flight at once (default {dl.DEFAULT_CONCURRENCY})")


#: --download-limit is in mebibytes, the unit of the library's limit (64 MiB).
MIB = 1 << 20


def cmd_index(args) -> int:
    from ..api import Collection
    from ..catalogue.store import no_empty_database_left
    from ..ingest.decode import DEFAULT_MAX_PIXELS
    from ..ingest.downloads import Downloader
    from ..models import DEFAULT_MODEL

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
        print(index_summary(report, col.store.path))
        if args.verbose and report.skipped:
            print("skipped files:")
            for path, reason in report.skipped:
                print(f"  {path}: {reason}")
        elif report.skipped:
            print(f"run `{program()} skipped --db {quoted(col.store.path)}` (or index "
                  "--verbose) for the list of skipped files")
    return 0


def add_import(commands: Commands) -> None:
    p = commands.add_parser("import", help="add vectors computed elsewhere (no image is read)",
                            description="Store vectors made elsewhere (on a GPU machine, by your "
                                        "own pipeline, or by `lookalike export`) as a model's "
                                        "vectors, one per image path or URL, without reading "
                                        "the images. Reads Parquet or JSON (a `vector` list "
                                        "column), CSV, TSV or .tab (columns f0, f1, ...) and "
                                        ".npz (arrays paths and vectors). Importing a path "
                                        "again replaces its vector; a bad file writes nothing.")
    p.add_argument("file", metavar="FILE", help="a .parquet, .json, .csv, .tsv, .tab or .npz file")
    db_option(p)
    model_option(p, "the model that made the vectors: one lookalike knows (the dimension must "
                     "match) or a name of your own (default: the model the file names)")
    p.add_argument("--path-column", metavar="COL",
                   help="the column of image paths or URLs (default: path, image, file or url)")
    p.add_argument("--vector-column", metavar="COL",
                   help="a list column of vectors, or the prefix of numbered columns COL0, "
                        "COL1, ... (default: vector or embedding, else f0, f1, ...)")
    p.set_defaults(handler=cmd_import)


def cmd_import(args) -> int:
    from ..api import Collection
    from ..catalogue.store import no_empty_database_left

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


def index_summary(report, db) -> str:
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


def add_skipped(commands: Commands) -> None:
    p = commands.add_parser("skipped", help="list the files that could not be indexed, with "
                                            "reasons",
                            description="List every file that `index` found but could not use, "
                                        "with the reason (empty, truncated, not an image, too "
                                        "many pixels, a failed download, ...). The next `index` "
                                        "tries a file again once it has changed, and a URL every "
                                        "time.")
    db_option(p)
    format_option(p, FORMATS, "table for people (default); json or csv for programs",
                   default="table")
    p.set_defaults(handler=cmd_skipped)


FORMATS = ("table", "json", "csv")


def cmd_skipped(args) -> int:
    from ..api import Collection

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
