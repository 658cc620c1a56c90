"""What MLX runs on here: versions, backend, device, memory counters. Cheap, any thread."""

from __future__ import annotations

import os
import resource
import sys
from importlib import metadata
from pathlib import Path
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


def memory() -> dict[str, int | None]:
    """MLX allocator counters, the process's resident set and the system's memory (bytes)."""
    system = system_memory()
    return {
        "system_total": system["total"],
        "system_available": system["available"],
        "rss": _rss_bytes(),
        "vms": _vms_bytes(),
        "peak_rss": _peak_rss_bytes(),
        "mlx_active": mx.get_active_memory(),
        "mlx_peak": mx.get_peak_memory(),
        "mlx_cache": mx.get_cache_memory(),
    }


def mlx_active_bytes() -> int:
    return mx.get_active_memory()


def system_memory(meminfo: str = "/proc/meminfo") -> dict[str, int | None]:
    """Physical memory and what the kernel says a new allocation can still get without swapping
    (Linux MemAvailable); `available` is None where the system does not say."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fields = _meminfo_fields(meminfo)
    return {"total": fields.get("MemTotal", total), "available": fields.get("MemAvailable")}


def _meminfo_fields(path: str) -> dict[str, int]:
    """`/proc/meminfo` as bytes per field ("MemAvailable:  123 kB" -> 125952)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    fields = {}
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return fields


def thermal(root: str = "/sys/class/thermal") -> list[dict[str, Any]]:
    """Linux thermal zones: each zone's type and temperature in °C (empty where none is exposed,
    as in most containers; macOS's thermal state needs the native probe, not built here)."""
    zones = []
    for zone in sorted(Path(root).glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            millidegrees = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        zones.append({"zone": zone.name, "type": kind, "celsius": millidegrees / 1000})
    return zones


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
