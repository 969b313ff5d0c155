"""What this CPU offers the models: its name, its vector extensions and whether it has VNNI,
the int8 dot-product instructions that make the ``-int8`` models pay off. Read from
/proc/cpuinfo (Linux); elsewhere the flags are unknown.
"""

from __future__ import annotations

import functools
import os
import platform

#: The extensions that decide the speed of float and int8 models, as /proc/cpuinfo names them,
#: with the names people know them by, in the order they are reported.
EXTENSIONS = {"avx2": "AVX2", "avx512f": "AVX-512F", "avx512_vnni": "AVX-512 VNNI",
              "avx_vnni": "AVX-VNNI"}

#: Flags of the instructions that multiply uint8 by int8 and sum into 32 bits in one step.
#: onnxruntime's int8 kernels (MLAS) use them where present; without them an x86 CPU
#: multiplies in pairs summed to 16 bits, and int8 gains little over float (1.0-1.45x on
#: an AVX2-only EPYC against 1.5-2x with AVX-512 VNNI; README, "Speed").
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})

_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str] | None]:
    """The model name and the flags of the first processor in /proc/cpuinfo's ``text``
    (flags None when it lists none, as on some ARM kernels, which say "Features")."""
    name, flags = "", None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
        if not line.strip() and name:  # the end of the first processor's block
            break
    return name, flags


@functools.lru_cache(maxsize=1)
def _this_cpu() -> tuple[str, frozenset[str] | None]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            name, flags = parse_cpuinfo(f.read())
    except OSError:
        name, flags = "", None
    return name or platform.processor() or platform.machine() or "unknown CPU", flags


def cpu_name() -> str:
    """This CPU's model name, e.g. "AMD EPYC"."""
    return _this_cpu()[0]


def cpu_flags() -> frozenset[str] | None:
    """This CPU's flags as /proc/cpuinfo lists them; None where they cannot be read."""
    return _this_cpu()[1]


def is_x86(machine: str | None = None) -> bool:
    return (machine if machine is not None else platform.machine()).lower() in _X86


def has_vnni(flags: frozenset[str] | set[str] | None) -> bool:
    """Whether a CPU with these flags has VNNI (AVX-512 VNNI, AVX-VNNI or AMX int8)."""
    return bool(flags and VNNI_FLAGS & set(flags))


def extensions(flags: frozenset[str] | set[str] | None) -> list[str]:
    """The :data:`EXTENSIONS` among ``flags``, by their usual names."""
    return [label for flag, label in EXTENSIONS.items() if flags and flag in flags]


def core_count() -> int:
    """The cores this process may run on (fewer than the machine's in a container or under
    taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe(name: str | None = None, flags: frozenset[str] | set[str] | None = None,
             cores: int | None = None) -> str:
    """One line for the top of a benchmark's output, e.g. "AMD EPYC; AVX2, AVX-512F,
    AVX-512 VNNI; 2 cores". Without arguments, this machine."""
    if name is None:
        name, flags = _this_cpu()
    cores = core_count() if cores is None else cores
    if flags is None:
        vector = "vector extensions unknown"
    else:
        vector = ", ".join(extensions(flags)) or "none of " + ", ".join(EXTENSIONS.values())
    return f"{name}; {vector}; {cores} core{'s' if cores != 1 else ''}"


def int8_advice(flags: frozenset[str] | set[str] | None, machine: str | None = None) -> str:
    """One sentence for `lookalike models`: whether the ``-int8`` models are the faster
    choice on a CPU with these flags."""
    if not is_x86(machine) or flags is None:
        return ("Whether the -int8 models are faster on this CPU is not known "
                "(benchmarks/throughput.py measures it); the float models are the safe choice.")
    found = [label for flag, label in EXTENSIONS.items() if "vnni" in flag and flag in flags]
    if has_vnni(flags):
        which = " and ".join(found) or "VNNI"
        return (f"This CPU has {which}: the -int8 models are about 1.5-2x faster "
                "at almost the same quality (e.g. --model efficientnet-lite0-gem-int8).")
    return ("This CPU has no VNNI: the -int8 models gain little here (1.0-1.45x); "
            "keep the float models.")
