"""`runtime bench` plain-host scenario: single-stream decode as the simplest host sees it.

The lean host (bench/host.py) reads on its own thread with orjson. Most hosts are simpler: one
buffered `readline()` loop in the main thread and one stdlib `json.loads` per line. This scenario
measures the runtime through exactly that host, against raw `mlx_lm.stream_generate` in the bench
process (the same BLAS preload, the same files, prompt and settings; EOS suppressed on both sides
with `logit_bias`, greedy). Rounds alternate, and the order inside a pair alternates too (runtime
first, then raw first), so drift and order effects hit both sides alike. The figure is the median
of the per-pair ratios, with their spread, and the runtime's cost per token derived from the two
rates of each pair: 1/runtime_rate - 1/raw_rate.

Run it alone: `python -m runtime.bench.plain --runs 12` (or `runtime bench` with the other
scenarios skipped).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import IO, Any

from runtime.bench.host import median, spawn_runtime


class PlainHost:
    """A host as plain as they come: the main thread writes a request, then reads lines."""

    def __init__(self, ready_timeout: float = 60.0, args: tuple[str, ...] = ()) -> None:
        self.process = spawn_runtime(*args)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin: IO[bytes] = self.process.stdin
        self._stdout: IO[bytes] = self.process.stdout
        self._next_id = 0
        deadline = time.monotonic() + ready_timeout
        while self._read().get("method") != "runtime/ready":
            if time.monotonic() > deadline:
                self.process.kill()
                raise TimeoutError(f"runtime not ready in {ready_timeout}s")

    def _read(self) -> dict[str, Any]:
        line = self._stdout.readline()
        if not line:
            raise EOFError("the runtime closed its stdout")
        return json.loads(line)

    def _send(self, method: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        message = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        self._stdin.write(json.dumps(message).encode() + b"\n")
        self._stdin.flush()
        return self._next_id

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        request_id = self._send(method, params or {})
        while True:
            message = self._read()
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def timed_stream(self, params: dict[str, Any]) -> dict[str, float]:
        """One generate: TTFT from the request line to the first chunk, decode tokens/s from the
        first chunk to the final event, as every bench scenario times it."""
        sent = time.perf_counter()
        request_id = self._send("generate", params)
        stream_id, first, count = None, 0.0, 0
        while True:
            message = self._read()
            method = message.get("method")
            if method is None:
                if message.get("id") == request_id:
                    if "error" in message:
                        raise RuntimeError(f"generate: {message['error']}")
                    stream_id = message["result"]["stream_id"]
            elif method == "stream.chunk":
                if message["params"]["stream_id"] == stream_id:
                    first = first or time.perf_counter()
                    count += len(message["params"]["tokens"])
            elif method == "stream.event" and message["params"]["stream_id"] == stream_id:
                break
        done = time.perf_counter()
        if count != params["max_tokens"]:
            raise AssertionError(f"expected {params['max_tokens']} tokens, got {count}")
        return {"ttft_ms": (first - sent) * 1000, "decode_tps": (count - 1) / (done - first)}

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._send("shutdown", {})
            self.process.wait(timeout)
        except Exception:
            self.process.kill()
            self.process.wait(timeout)


def partial_character_tokens(model_id: str) -> list[int]:
    """Token ids that are a piece of a UTF-8 character: a random model strings them together, and a
    stream holds such text back until the character is whole, so the host would see every token
    arrive at the end (decode rates far above the bandwidth bound). Benches ban them (like EOS) on
    every side, so each token is a chunk when it is made."""
    if model_id == "tiny-chat":
        return []
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_id)
    return [i for i in range(len(tokenizer)) if "\ufffd" in tokenizer.decode([i])]


def run_plain(raw: Any, model: str, prompt: str, tokens: int, pairs: int, no_eos_bias: float) -> dict[str, Any]:
    """`raw`: the bench's in-process mlx-lm (`_RawMlxLm`), already loaded."""
    host = PlainHost()
    try:
        info = host.request("load_model", {"model_id": model})
        if sorted(info["eos_token_ids"]) != sorted(raw.eos_ids):
            raise AssertionError("the runtime and raw mlx-lm disagree on EOS ids")
        bias = {str(i): no_eos_bias for i in info["eos_token_ids"]}
        params = {"model_id": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "logit_bias": bias}
        host.timed_stream(params)  # warm both sides once
        raw.stream(tokens)
        rounds = []
        for index in range(pairs):
            if index % 2 == 0:
                ours = host.timed_stream(params)
                theirs = raw.stream(tokens)
            else:
                theirs = raw.stream(tokens)
                ours = host.timed_stream(params)
            rounds.append((ours, theirs))
    finally:
        host.close()
    return summarize(rounds, tokens)


def summarize(rounds: list[tuple[dict[str, float], dict[str, float]]], tokens: int) -> dict[str, Any]:
    ratios = [a["decode_tps"] / b["decode_tps"] for a, b in rounds]
    costs_us = [(1 / a["decode_tps"] - 1 / b["decode_tps"]) * 1e6 for a, b in rounds]
    return {
        "host": "plain: one readline() loop in the main thread, stdlib json.loads per line",
        "tokens_per_run": tokens,
        "pairs": len(rounds),
        "runtime_decode_tps": median(a["decode_tps"] for a, _ in rounds),
        "raw_decode_tps": median(b["decode_tps"] for _, b in rounds),
        "decode_ratio": median(ratios),
        "decode_ratio_spread": _spread(ratios),
        "runtime_us_per_token": round(statistics.median(costs_us), 1),
        "runtime_us_per_token_spread": _spread(costs_us, 1),
        "ttft_overhead_ms": median(a["ttft_ms"] - b["ttft_ms"] for a, b in rounds),
        "rounds": [{"runtime": a, "raw_mlx_lm": b} for a, b in rounds],
        "targets": {"decode_ratio": ">= 0.97", "runtime_us_per_token": "<= 40"},
    }


def _spread(values: list[float], digits: int = 3) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    marks = (ordered[0], q1, q3, ordered[-1])
    return {key: round(v, digits) for key, v in zip(("min", "q1", "q3", "max"), marks, strict=True)}


def print_plain(result: dict[str, Any]) -> None:
    ratio, cost = result["decode_ratio_spread"], result["runtime_us_per_token_spread"]
    print(
        f"\nsingle stream, plain host (main-thread readline + json.loads), {result['tokens_per_run']} tokens x "
        f"{result['pairs']} alternating pairs"
    )
    print(f"{'runtime tok/s':>14}{'raw tok/s':>11}{'ratio':>8}  {'ratio min/q1/q3/max':<26}{'runtime us/token':>17}")
    print(
        f"{result['runtime_decode_tps']:>14.1f}{result['raw_decode_tps']:>11.1f}{result['decode_ratio']:>8.3f}  "
        f"{ratio['min']:.3f}/{ratio['q1']:.3f}/{ratio['q3']:.3f}/{ratio['max']:.3f}{'':<3}"
        f"{result['runtime_us_per_token']:>17.1f}  (q1..q3 {cost['q1']:.1f}..{cost['q3']:.1f})"
    )
    print("targets: ratio >= 0.97, runtime <= 40 us/token")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.bench.plain", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-chat")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=12, help="alternating pairs")
    parser.add_argument("--out", default="bench-plain.json")
    args = parser.parse_args(argv)

    from runtime.server.blas import preload_blas

    preload_blas()
    from runtime.bench import NO_EOS_BIAS, PROMPT, _RawMlxLm

    raw = _RawMlxLm(args.model, [])
    raw.eos_ids = sorted(raw.tokenizer.eos_token_ids)
    result = run_plain(raw, args.model, PROMPT, args.tokens, args.runs, NO_EOS_BIAS)
    print_plain(result)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
