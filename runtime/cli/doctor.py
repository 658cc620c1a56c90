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
        "distributed_backends": [b for b in ("ring", "mpi", "jaccl", "nccl") if mx.distributed.is_available(b)],
    }
    if getattr(args, "distributed", None):
        report["distributed_group"] = _group_report(args.distributed)
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


def _group_report(hostfile: str) -> dict[str, object]:
    """Form the hostfile's group for real (a runtime with --distributed), and report what it says
    of itself: backend, world size, each rank's host, pid and heartbeat."""
    from runtime.bench.plain import PlainHost

    try:
        host = PlainHost(ready_timeout=150.0, args=("--distributed", hostfile))
    except (OSError, EOFError, TimeoutError) as exc:
        return {"formed": False, "error": f"the group did not form ({type(exc).__name__}: {exc}); see its log"}
    try:
        info, state = host.request("runtime/info"), host.request("runtime/state")
    finally:
        host.close()
    return {"formed": True, **info["distributed"], "ranks": state["distributed"]["ranks"]}


def _matmul_gflops(mx, n: int = 1024, repeats: int = 5) -> float:
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a @ b)
    started = time.perf_counter()
    for _ in range(repeats):
        mx.eval(a @ b)
    return round(2 * n**3 * repeats / (time.perf_counter() - started) / 1e9, 1)
