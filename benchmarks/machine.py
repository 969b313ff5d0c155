"""Which machine a benchmark ran on, in one line: CPU model, the vector extensions that decide
model speed (AVX2, AVX-512F, AVX-512 VNNI, AVX-VNNI) and cores. Every benchmark prints it
first and stores it with its figures, since the figures hold only for that kind of CPU.
"""

from __future__ import annotations

import sys

from lookalike.models.cpu import describe


def machine() -> str:
    """e.g. "AMD EPYC; AVX2, AVX-512F, AVX-512 VNNI; 2 cores"."""
    return describe()


def print_machine(file=sys.stdout) -> str:
    """Print "machine: ..." (stdout unless told) and return the description."""
    line = machine()
    print(f"machine: {line}", file=file, flush=True)
    return line
