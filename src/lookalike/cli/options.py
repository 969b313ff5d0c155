"""The options several commands share (--db, --model, --format, --quiet), and what a number
option accepts: each check answers in argparse's words, `lookalike X: error: argument ...`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

#: What `build_parser` hands each `add_COMMAND`: it adds the command's parser to it.
Commands = argparse._SubParsersAction


def db_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--db", help=help or "the collection's database file (default: $LOOKALIKE_DB, "
                                        "else lookalike.db in the user data folder)")


def model_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--model", help=help)


def format_option(p: argparse.ArgumentParser, choices: Sequence[str], help: str,
                   default: str | None = None) -> None:
    p.add_argument("--format", choices=choices, default=default, help=help)


def quiet_option(p: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def non_negative_float(text: str) -> float:
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


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def positive_int(text: str) -> int:
    return _whole_number(text, 1)
