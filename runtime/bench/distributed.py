"""`runtime bench --only distributed`: one process against a two-rank group on loopback.

Both runtimes are read by the plain host (bench/plain.py: one `readline()` loop, `json.loads` per
line), greedy, EOS suppressed, the same prompt; rounds alternate (one process first, then the
group first) and every figure is a median of per-pair values. Models: tiny-chat (its 3 heads do not
divide between two ranks: its MLPs are split), and two random-weight models built at bench time and
never committed: a llama of hidden 1024 x 8 layers (tensor parallel, mlx-lm's shard()) and a
ministral3 of the same size (pipeline parallel, mlx-lm's pipeline()).

The communication cost per token is 1/group_rate - 1/single_rate of each pair: what the group adds
per token (its collectives, the turn's plan, and on two cores two processes sharing them). Split
by the collectives a token makes it is a cost per collective. No speed-up is expected on one
two-core machine: each rank does half the arithmetic, but both share the cores and the memory bus.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from runtime.bench.host import median
from runtime.bench.plain import PlainHost, partial_character_tokens
from runtime.server.distributed import loopback_hostfile

PROMPT = "Once upon a time, there was a little fox named Ruby. One day"
NO_EOS_BIAS = -100.0


def bench_models(directory: Path, layers: int) -> dict[str, dict[str, Any]]:
    from runtime.tinymodels.fixtures import build_random_model

    built = {
        arch: build_random_model(
            directory / f"{arch}-1024",
            arch=arch,
            hidden_size=1024,
            num_hidden_layers=layers,
            intermediate_size=2816,
            num_attention_heads=16,
            num_key_value_heads=8,
        )
        for arch in ("llama", "ministral3")
    }
    tensor, staged = built["llama"], built["ministral3"]
    return {
        "tiny-chat": {"id": "tiny-chat"},
        "llama-1024 (tensor)": {"id": tensor["path"], "parameters": tensor["parameters"]},
        "ministral3-1024 (pipeline)": {
            "id": staged["path"],
            "parameters": staged["parameters"],
            "parallel": "pipeline",
        },
    }


def run_distributed(rounds: int, tokens: int, layers: int = 8) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="runtime-bench-group-") as scratch:
        directory = Path(scratch)
        latency = probe_collectives(directory)
        models = bench_models(directory, layers)
        single = PlainHost()
        group = PlainHost(args=("--distributed", str(loopback_hostfile(directory))))
        try:
            results = {}
            for name, model in models.items():
                results[name] = _compare(single, group, model, rounds, tokens, latency)
                _unload(single, group, model["id"])
        finally:
            group.close(10.0)
            single.close()
    return {
        "host": "plain: one readline() loop in the main thread, stdlib json.loads per line",
        "ranks": 2,
        "transport": "ring backend over 127.0.0.1, both ranks on this machine",
        "tokens_per_run": tokens,
        "pairs": rounds,
        "collective_latency_us": latency,
        "models": results,
    }


def _compare(
    single: PlainHost, group: PlainHost, model: dict[str, Any], rounds: int, tokens: int, latency: dict[str, float]
) -> dict[str, Any]:
    options = {"parallel": model["parallel"]} if "parallel" in model else {}
    single_info = single.request("load_model", {"model_id": model["id"]})
    group_info = group.request("load_model", {"model_id": model["id"], **options})
    bias = {str(i): NO_EOS_BIAS for i in [*single_info["eos_token_ids"], *partial_character_tokens(model["id"])]}
    params = {"model_id": model["id"], "prompt": PROMPT, "max_tokens": tokens, "temperature": 0, "logit_bias": bias}
    single.timed_stream(params)  # warm both once
    group.timed_stream(params)
    pairs = []
    for index in range(rounds):
        if index % 2 == 0:
            alone, split = single.timed_stream(params), group.timed_stream(params)
        else:
            split, alone = group.timed_stream(params), single.timed_stream(params)
        pairs.append((alone, split))
    per_token_ms = [(1 / b["decode_tps"] - 1 / a["decode_tps"]) * 1000 for a, b in pairs]
    split_how = group_info.get("parallel")
    collectives = _collectives_per_token(split_how, _layers(model))
    comm_us = latency["plan_frame"] + (collectives - 1) * latency["hidden_vector"] if collectives else None
    return {
        "parallel": split_how,
        "single_decode_tps": median(a["decode_tps"] for a, _ in pairs),
        "group_decode_tps": median(b["decode_tps"] for _, b in pairs),
        "decode_ratio": median(b["decode_tps"] / a["decode_tps"] for a, b in pairs),
        "single_ttft_ms": median(a["ttft_ms"] for a, _ in pairs),
        "group_ttft_ms": median(b["ttft_ms"] for _, b in pairs),
        "added_ms_per_token": round(statistics.median(per_token_ms), 3),
        "collectives_per_token": collectives,
        "communication_us_per_token": round(comm_us, 1) if comm_us is not None else None,
        "load_ms": {"single": single_info["load_time_ms"], "group": group_info["load_time_ms"]},
        "rounds": [{"single": a, "group": b} for a, b in pairs],
    }


def _layers(model: dict[str, Any]) -> int | None:
    config = Path(model["id"]) / "config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["num_hidden_layers"])
    return 4 if model["id"] == "tiny-chat" else None


def _collectives_per_token(parallel: str | None, layers: int | None) -> int | None:
    """Each token: the turn's plan (one all_sum), plus the model's own: tensor, an all_sum after
    attention and one after the MLP per layer; mlp, one per layer; pipeline, one send/recv hop
    and the all_gather of the last hidden state."""
    if layers is None or parallel is None:
        return None
    model = {"tensor": 2 * layers, "mlp": layers, "pipeline": 2}[parallel]
    return 1 + model


def _unload(single: PlainHost, group: PlainHost, model_id: str) -> None:
    for host in (single, group):
        host.request("unload_model", {"model_id": model_id})


def print_distributed(result: dict[str, Any]) -> None:
    latency = result["collective_latency_us"]
    print(
        f"\ndistributed: one process vs {result['ranks']} ranks ({result['transport']}), plain host, "
        f"{result['tokens_per_run']} tokens x {result['pairs']} alternating pairs"
    )
    print(
        f"one all_sum between the ranks: {latency['plan_frame']:.0f} us (a turn's 1 KiB plan), "
        f"{latency['hidden_vector']:.0f} us (a 1024-float hidden state)"
    )
    header = f"{'model':<28}{'split':>9}{'1 proc tok/s':>13}{'2 ranks tok/s':>14}{'ratio':>7}"
    print(header + f"{'TTFT 1/2 ms':>14}{'added ms/tok':>13}{'coll/tok':>9}{'comm us/tok':>12}")
    for name, row in result["models"].items():
        ttft = f"{row['single_ttft_ms']:.0f}/{row['group_ttft_ms']:.0f}"
        comm = row["communication_us_per_token"]
        print(
            f"{name:<28}{row['parallel']:>9}{row['single_decode_tps']:>13.1f}{row['group_decode_tps']:>14.1f}"
            f"{row['decode_ratio']:>7.2f}{ttft:>14}{row['added_ms_per_token']:>13.2f}"
            f"{row['collectives_per_token'] or '-':>9}{comm if comm is not None else '-':>12}"
        )
    print("both ranks share this machine's cores: no speed-up is promised; comm us/tok = collectives x their latency")


# --- the collectives' own latency: two bare ranks, no model -----------------------------------
def probe_collectives(directory: Path, repeats: int = 400) -> dict[str, float]:
    """Median latency of one all_sum between two ranks on loopback: of a turn's plan frame, and of
    one token's hidden state (what a tensor-parallel layer sums)."""
    import os
    import subprocess
    import sys

    from runtime.server.distributed import read_hostfile

    spec = read_hostfile(str(loopback_hostfile(directory)))
    ring = directory / "ring.json"
    ring.write_text(spec.ring_hostfile())
    command = [sys.executable, "-m", "runtime.bench.distributed", "--probe", str(repeats)]
    ranks = [
        subprocess.Popen(
            command,
            env={**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(ring)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for rank in range(2)
    ]
    outputs = [rank.communicate(timeout=120)[0] for rank in ranks]
    return dict(json.loads(outputs[0]))


def _probe(repeats: int) -> None:
    import time

    import mlx.core as mx

    group = mx.distributed.init(backend="ring", strict=True)
    figures = {}
    for name, value in (("plan_frame", mx.zeros((1024,), mx.uint8)), ("hidden_vector", mx.zeros((1, 1, 1024)))):
        times = []
        for index in range(repeats + 50):
            started = time.perf_counter()
            mx.eval(mx.distributed.all_sum(value, group=group, stream=mx.cpu))
            if index >= 50:
                times.append((time.perf_counter() - started) * 1e6)
        figures[name] = round(statistics.median(times), 1)
    if group.rank() == 0:
        print(json.dumps(figures))


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        _probe(int(sys.argv[2]))
