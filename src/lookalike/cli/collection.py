"""What is found across the whole collection, and the collection written out: `duplicates`,
`not-duplicates`, `map`, `analyze` and `export`."""

from __future__ import annotations

import os
import shlex
import sys

from ..errors import LookalikeError
from .options import (
    Commands,
    db_option,
    format_option,
    model_option,
    non_negative_float,
    positive_int,
    quiet_option,
)
from .output import copy_to_stdout, refuse_binary_on_a_terminal
from .tables import file_size, shortened, shown_path, text_table

DUPLICATE_FORMATS = ("table", "json", "csv", "tab")


def add_duplicates(commands: Commands) -> None:
    from ..analysis.duplicates import CANDIDATE_DISTANCE, DEFAULT_TIER, TIERS

    p = commands.add_parser("duplicates", help="find groups of copies in the collection",
                            description="Print the groups of copies in the collection, largest "
                                        "first, each with the copy suggested to keep (most "
                                        "pixels, then largest file, then oldest, then "
                                        "--keep-priority). Nothing is deleted or moved.")
    db_option(p)
    p.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER,
                   help="exact: the same bytes; pixels: the same decoded pixels; near: edited "
                        "copies (resized, re-encoded, cropped, brightened, mirrored, ...); "
                        "similar: look-alikes by distance alone (default: %(default)s)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--threshold", type=non_negative_float, metavar="D",
                        help="the largest cosine distance of a candidate pair (default: near "
                             f"{CANDIDATE_DISTANCE['near']:g}, similar "
                             f"{CANDIDATE_DISTANCE['similar']:g})")
    window.add_argument("--range", type=non_negative_float, nargs=2, metavar=("LO", "HI"),
                        help="candidate pairs between these cosine distances")
    p.add_argument("--across", metavar="DB",
                   help="another collection's database: which images of this one have a copy "
                        "there (a train/test leak check)")
    p.add_argument("--keep-priority", nargs="+", metavar="FOLDER", default=[],
                   help="folders whose copies to keep first, after pixels, size and age")
    model_option(p, "whose vectors find the candidates (default: the model last indexed)")
    format_option(p, DUPLICATE_FORMATS, "table for people; json, csv or tab for programs. "
                                         "Default: from the extension of --output, else table")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE instead of printing; - is the standard output")
    p.add_argument("--move-script", metavar="FILE",
                   help="also write a shell script that moves the copies not kept into "
                        "--move-to when you run it (it is not run: read it, then `sh FILE`)")
    p.add_argument("--move-to", metavar="FOLDER",
                   help="the folder the --move-script moves the copies into (sub-folders kept)")
    quiet_option(p)
    p.set_defaults(handler=cmd_duplicates)


def cmd_duplicates(args) -> int:
    from ..api import Collection
    from ..formats.export import EXTENSIONS, atomic_write, write_duplicates

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
        lines.append(text_table(["keep", "distance", "pixels", "size", "id", "path"],
                            [["keep" if (r["id"] == g.keep and (i == 0 or "collection" not in r))
                              else "", f"{d:.4f}", f"{r['width']}x{r['height']}",
                              file_size(r["size"]), r["id"], shown_path(r["path"])]
                             for i, (r, d) in enumerate(zip(g.rows, g.distances))]))
    if not groups:
        lines.append("(no copies found)")
    return "\n".join(lines) + "\n"


def add_not_duplicates(commands: Commands) -> None:
    p = commands.add_parser("not-duplicates", help="remember that images are not copies",
                            description="Remember that these images (by id, as `duplicates` "
                                        "shows them) are not copies of each other: `duplicates` "
                                        "never groups them again, also after re-indexing.")
    p.add_argument("ids", nargs="+", type=positive_int, metavar="ID",
                   help="an image id (the id column of `duplicates`)")
    db_option(p)
    p.add_argument("--undo", action="store_true", help="forget that decision instead")
    p.set_defaults(handler=cmd_not_duplicates)


def cmd_not_duplicates(args) -> int:
    from ..api import Collection

    with Collection.open(args.db) as col:
        changed = col.mark_not_duplicates(args.ids, not_duplicates=not args.undo)
    print(f"{'forgot' if args.undo else 'remembered'} {changed:,} pair{'s' * (changed != 1)} "
          "of images that are not copies")
    return 0


MAP_FORMATS = ("csv", "json", "tab", "parquet")


def add_map(commands: Commands) -> None:
    p = commands.add_parser("map", help="lay the collection out as a 2-D map of its images",
                            description="Lay every image out as a point of a 2-D map (UMAP, "
                                        "t-SNE or PCA of its vectors), kept beside the database: "
                                        "images added later are placed into it until a quarter "
                                        "more have come, then it is fitted again. Prints a "
                                        "summary; -o writes id, path, category, x and y; "
                                        "--image draws it. `export` then adds x and y.")
    db_option(p)
    model_option(p, "whose vectors to lay out (default: the model last indexed)")
    p.add_argument("--method", choices=("umap", "tsne", "pca"), default="umap",
                   help="umap (default; about 2 minutes at 100,000 images), tsne (openTSNE, as "
                        "Orange) or pca (seconds)")
    p.add_argument("--refit", action="store_true",
                   help="fit the map again rather than placing new images into the kept one")
    format_option(p, MAP_FORMATS, "of -o; default: from its extension, else csv")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write each image's id, path, category, x and y to FILE; - is the "
                        "standard output")
    p.add_argument("--image", metavar="FILE.png",
                   help="draw the map as a PNG: a dot per image, coloured by category")
    p.set_defaults(handler=cmd_map)


def cmd_map(args) -> int:
    from ..api import Collection
    from ..formats.export import EXTENSIONS, atomic_write, write_map
    from ..formats.map_picture import draw_map

    output = None if args.output in (None, "-") else args.output
    fmt = args.format or EXTENSIONS.get(os.path.splitext(output or "")[1].lower(), "csv")
    if fmt not in MAP_FORMATS:
        raise LookalikeError(f"map writes {', '.join(MAP_FORMATS)}, not {fmt}; give --format")
    if args.output == "-":
        refuse_binary_on_a_terminal(fmt)
    with Collection.open(args.db) as col:
        layout = col.map(model=args.model, method=args.method, refit=args.refit)
    if args.output == "-":
        copy_to_stdout(lambda path: write_map(layout, fmt, path), fmt)
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
    return positive_int(text)


def add_analyze(commands: Commands) -> None:
    p = commands.add_parser("analyze", help="clusters, outliers, quality flags and a diverse "
                                            "sample of the collection",
                            description="Print the collection's clusters by size with a few "
                                        "examples each, its most unusual images, the counts of "
                                        "its quality flags and, with --sample, a diverse sample. "
                                        "Results are kept in the database until it changes; "
                                        "-o writes them per image.")
    db_option(p)
    model_option(p, "whose vectors to analyse (default: the model last indexed)")
    p.add_argument("--clusters", type=_clusters, default="auto", metavar="auto|N",
                   help="auto finds the number of clusters (HDBSCAN; k-means above 20,000 "
                        "images), N asks k-means for N (default: auto)")
    p.add_argument("--sample", type=positive_int, metavar="N",
                   help="also pick N images that cover the collection (farthest-point)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write every image's cluster, typicality, outlier score, place in the "
                        "sample and flags to FILE; - is the standard output")
    format_option(p, ANALYZE_FORMATS, "for -o; default: from its extension, else csv")
    p.set_defaults(handler=cmd_analyze)


def cmd_analyze(args) -> int:
    from ..api import Collection
    from ..formats.analysis import write_analysis
    from ..formats.export import resolve_format

    fmt = "csv"
    if args.output is not None:
        fmt = resolve_format(args.output, args.format or ("csv" if args.output == "-" else None),
                             ANALYZE_FORMATS)
        if args.output == "-":
            refuse_binary_on_a_terminal(fmt)
    with Collection.open(args.db) as col:
        analysis = col.analyze(args.model, args.clusters, args.sample)
    if args.output is None:
        sys.stdout.write(_analysis_summary(analysis))
        return 0
    if args.output == "-":
        copy_to_stdout(lambda path: write_analysis(analysis, fmt, path), fmt)
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
        return a.row(image_id)["name"] or shown_path(a.row(image_id)["path"])

    summaries = a.clusters
    found = sum(s.cluster >= 0 for s in summaries)
    noise = sum(s.size for s in summaries if s.cluster < 0)
    how = "computed" if not a.reused else "stored"
    lines = [f"{len(a):,} images, model {a.model}: {found:,} cluster{'s' * (found != 1)} "
             f"({a.method}), {noise:,} in none ({how}, {a.seconds:.1f} s)", ""]
    lines.append(text_table(["cluster", "images", "examples"],
                        [["none" if s.cluster < 0 else s.cluster, f"{s.size:,}",
                          ", ".join(shortened(name(i), 28) for i in s.examples)]
                         for s in summaries[:_SUMMARY_CLUSTERS]]))
    if len(summaries) > _SUMMARY_CLUSTERS:
        lines.append(f"... and {len(summaries) - _SUMMARY_CLUSTERS:,} more clusters (-o FILE "
                     "lists every image)")
    lines += ["", "most unusual (distance to the 5th nearest neighbour):"]
    position = {int(i): n for n, i in enumerate(a.ids)}
    lines.append(text_table(["outlier", "cluster", "id", "path"],
                        [[f"{a.outlier[position[i]]:.4f}", a.cluster[position[i]], i,
                          shown_path(a.row(i)["path"])] for i in a.most_unusual()]))
    counts = a.flag_counts
    lines += ["", "quality flags: " + (", ".join(f"{k.replace('_', ' ')} {v:,}"
                                                for k, v in counts.items()))]
    if a.sample:
        lines += ["", f"diverse sample of {len(a.sample):,}:"]
        lines.append(text_table(["#", "cluster", "id", "path"],
                            [[n + 1, a.cluster[position[i]], i, shown_path(a.row(i)["path"])]
                             for n, i in enumerate(a.sample)]))
    return "\n".join(lines) + "\n"


_SUMMARY_CLUSTERS = 20


EXPORT_FORMATS = ("csv", "json", "parquet", "tab", "npz")


def add_export(commands: Commands) -> None:
    p = commands.add_parser("export",
                            help="write the whole collection, with its vectors, to a file",
                            description="Write every usable image of the collection (skipped "
                                        "files are left out): id, path, name, category, width, "
                                        "height, size and the vector of one model. CSV and "
                                        "Orange's .tab give the vector as columns f0, f1, ... "
                                        "(the .tab loads in Orange as Image Embedding's output "
                                        "would); JSON and Parquet as a `vector` list; .npz as the "
                                        "arrays ids, vectors and paths.")
    db_option(p)
    model_option(p, "whose vectors to write (default: the model the collection was last indexed "
                     "with)")
    format_option(p, EXPORT_FORMATS, "default: from the extension of --output")
    p.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="the file to write; - writes to the standard output (csv unless "
                        "--format says otherwise)")
    p.add_argument("--no-vectors", action="store_true",
                   help="the catalogue only, without vectors (not for npz)")
    quiet_option(p)
    p.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from ..api import Collection
    from ..formats.export import resolve_format

    to_stdout = args.output == "-"
    fmt = resolve_format(args.output, args.format or ("csv" if to_stdout else None),
                         EXPORT_FORMATS)
    if fmt == "npz" and args.no_vectors:
        print("lookalike: error: an .npz export holds the vectors; drop --no-vectors or choose "
              "another format", file=sys.stderr)
        return 2
    if to_stdout:
        refuse_binary_on_a_terminal(fmt)  # before the work, not after
    with Collection.open(args.db) as col:
        def write(path):
            return col.export(path, fmt, model=args.model, vectors=not args.no_vectors,
                              progress=not args.quiet)
        report = copy_to_stdout(write, fmt) if to_stdout else write(args.output)
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
