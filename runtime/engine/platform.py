"""What MLX runs on here: versions, backend, device, memory counters. Cheap, any thread."""

from __future__ import annotations

import resource
import sys
from importlib import metadata
from typing import Any

import mlx.core as mx


def version_of(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def mlx_version() -> str:
    version: str = mx.__version__  # type: ignore[attr-defined]  # mlx.core's stubs leave it out
    return version


def backend() -> str:
    if mx.default_device() == mx.cpu:
        return "cpu"
    return "cuda" if mx.cuda.is_available() else "metal"


def describe() -> dict[str, Any]:
    return {
        "mlx_version": mlx_version(),
        "mlx_lm_version": version_of("mlx-lm") or "unknown",
        "backend": backend(),
        "device": str(mx.default_device()),
    }


def _peak_rss_bytes() -> int:
    """ru_maxrss is in KiB on Linux and already in bytes on macOS."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory() -> dict[str, int]:
    """MLX allocator counters plus the process's resident set (bytes)."""
    return {
        "rss": _rss_bytes(),
        "vms": _vms_bytes(),
        "peak_rss": _peak_rss_bytes(),
        "mlx_active": mx.get_active_memory(),
        "mlx_peak": mx.get_peak_memory(),
        "mlx_cache": mx.get_cache_memory(),
    }


def _statm() -> list[int]:
    try:
        with open("/proc/self/statm") as f:
            return [int(x) * resource.getpagesize() for x in f.read().split()[:2]]
    except OSError:
        return [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, 0]


def _rss_bytes() -> int:
    return _statm()[1]


def _vms_bytes() -> int:
    return _statm()[0]
