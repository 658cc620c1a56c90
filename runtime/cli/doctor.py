"""`runtime doctor`: which backend, device and BLAS this machine gives MLX, and how fast."""

from __future__ import annotations

import argparse
import json
import time


def run_doctor(args: argparse.Namespace) -> int:
    from runtime.server.blas import preload_blas

    blas = preload_blas(enabled=not args.no_blas)
    import mlx.core as mx

    from runtime.engine import native, platform
    from runtime.engine.resolve import embedded_models

    report = {
        **platform.describe(),
        "blas": blas.__dict__,
        "native": native.status(),
        "matmul_gflops_fp32_1024": _matmul_gflops(mx),
        "embedded_models": embedded_models(),
        "cuda_available": bool(mx.cuda.is_available()),
    }
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    if report["backend"] == "cpu" and not blas.loaded and blas.name == "bundled":
        print(
            "\nwarning: MLX uses the wheel's reference BLAS;"
            " install libopenblas0-pthread (Debian/Ubuntu) for ~40x faster matmuls"
        )
    if report["backend"] == "cpu" and not report["native"]["available"]:
        reason = report["native"]["reason"]
        print(f"\nnote: the native CPU kernels are not in use ({reason}); quantized models decode slowly")
    return 0


def _matmul_gflops(mx, n: int = 1024, repeats: int = 5) -> float:
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a @ b)
    started = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    return round(2 * n**3 * repeats / (time.perf_counter() - started) / 1e9, 1)
