"""What the CPU offers: its name, its bf16 / AMX instructions, the CPUs this process may use."""

from __future__ import annotations

import functools
import os
import platform


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The ``flags`` of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.cache
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_amx_bf16() -> bool:
    """Intel AMX tiles with bf16 (Sapphire Rapids and later)."""
    return "amx_bf16" in cpu_flags()


def has_fast_bf16() -> bool:
    """bf16 dot products in hardware (AVX-512 BF16 or AMX): bf16 inference is worth trying on this CPU."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the cgroup quota is not visible here)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int) -> int:
    """``0`` -> :func:`usable_cpus`; otherwise ``threads``."""
    return usable_cpus() if threads <= 0 else int(threads)
