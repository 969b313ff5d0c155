"""The `lookalike` command line: a thin translation to the Python API.

Each command is two functions side by side, in the module of its group: `add_NAME` declares
its options (those several commands share come from `options`) and `cmd_NAME` runs it with the
parsed arguments. This module builds the parser, in the order `lookalike --help` lists the
commands, and runs the one asked for.

Errors a user can fix are printed as one line, `lookalike: error: ...`, with exit status 1
(2 for a wrong option, as argparse does); tracebacks are only for bugs.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import LookalikeError, LookalikeWarning
from .collection import add_analyze, add_duplicates, add_export, add_map, add_not_duplicates
from .indexing import add_import, add_index, add_skipped
from .models import add_models
from .samples import add_datasets, add_demo
from .searching import add_explain, add_similar, add_tags
from .serving import add_cluster, add_serve

__all__ = ["build_parser", "main"]


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
