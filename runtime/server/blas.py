"""Find a real BLAS and load it before MLX so that MLX's CPU matmuls use it.

The Linux `mlx-cpu` wheel links the reference netlib BLAS (about 4 GFLOPS here). Loading OpenBLAS
with RTLD_GLOBAL before `mlx.core` is imported puts its `cblas_sgemm` first in the global symbol
scope, so libmlx binds to it instead (measured: 8 -> 263 GFLOPS on a 1024^2 fp32 matmul). No
re-exec and no LD_PRELOAD are needed. This module must not import mlx.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DISABLE_ENV = "RUNTIME_NO_BLAS"
PATH_ENV = "RUNTIME_BLAS"
THREADS_ENV = "RUNTIME_BLAS_THREADS"
# Read by the libraries when they load; an explicit setting by the user always wins.
LIBRARY_THREAD_ENVS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
]


@dataclass(frozen=True)
class BlasStatus:
    """What happened to the BLAS at start-up; `runtime doctor` and `runtime/info` report it."""

    name: str  # "openblas", "mkl", "other", "bundled" (the wheel's own) or "system" (macOS)
    path: str | None
    loaded: bool
    reason: str
    threads: int | None = None


_status: BlasStatus | None = None


def _candidate_paths() -> list[str]:
    paths = list(CANDIDATES)
    found = ctypes.util.find_library("openblas")
    if found:
        paths.append(found)
    # A pip-installed MKL (`pip install mkl`) puts libmkl_rt in the environment's lib folder.
    paths += [str(p) for p in sorted(Path(sys.prefix, "lib").glob("libmkl_rt.so*"))]
    return paths


def _kind(path: str) -> str:
    base = os.path.basename(path)
    return "openblas" if "openblas" in base else "mkl" if "mkl" in base else "other"


def blas_threads() -> int:
    """Half the cores by default: busy-waiting BLAS threads on every core starve the runtime's
    writer and the host (measured on 2 cores: one thread decodes faster and far more steadily)."""
    explicit = os.environ.get(THREADS_ENV)
    if explicit and explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return max(1, (os.cpu_count() or 2) // 2)


def _try_load(path: str) -> bool:
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        log.warning("could not load BLAS %s: %s", path, exc)
        return False
    return True


def preload_blas(enabled: bool = True) -> BlasStatus:
    """Load the best BLAS found, once; returns what was done. Call before importing mlx."""
    global _status
    if _status is not None:
        return _status
    _status = _choose(enabled)
    if _status.loaded:
        log.debug("BLAS: %s (%s)", _status.name, _status.path)
    elif _status.name == "bundled":
        log.warning("BLAS: %s; MLX CPU matmuls will be slow", _status.reason)
    return _status


def _choose(enabled: bool) -> BlasStatus:
    if not sys.platform.startswith("linux"):
        return BlasStatus("system", None, False, "not Linux: MLX uses the platform BLAS")
    if not enabled or os.environ.get(DISABLE_ENV):
        return BlasStatus("bundled", None, False, "turned off by flag or RUNTIME_NO_BLAS")
    if "mlx.core" in sys.modules:
        return BlasStatus("bundled", None, False, "mlx was imported before the BLAS could load")
    explicit = os.environ.get(PATH_ENV)
    threads = blas_threads()
    for name in LIBRARY_THREAD_ENVS:
        os.environ.setdefault(name, str(threads))
    for path in [explicit] if explicit else _candidate_paths():
        if path and os.path.exists(path) and _try_load(path):
            used = int(os.environ["MKL_NUM_THREADS" if _kind(path) == "mkl" else "OPENBLAS_NUM_THREADS"])
            return BlasStatus(_kind(path), path, True, "preloaded before mlx", used)
    return BlasStatus("bundled", None, False, "no OpenBLAS or MKL found (apt install libopenblas0)")
