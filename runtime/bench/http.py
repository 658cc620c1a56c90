"""`runtime bench` HTTP scenario: one stream through the HTTP front door as a plain SSE client
reads it, through stdio as the plain host reads it, and raw mlx-lm in this process.

The SSE client is as plain as the stdio one (bench/plain.py): `http.client`, one `readline()` loop,
one `json.loads` per `data:` line, on `/v1/completions` with the same prompt, greedy, EOS
suppressed with `logit_bias`, so all three sides make the same tokens. Rounds rotate the order of
the three; each ratio is the median of per-round ratios. Target: HTTP >= 0.95 of stdio on tiny-chat.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any
from urllib.parse import urlparse

from runtime.bench.host import median
from runtime.bench.plain import PlainHost

SERVING = "MLX Runtime serving HTTP on "


class HttpServer:
    """`runtime serve --port 0` as a child process; its URL from the line it prints."""

    def __init__(self, timeout: float = 60.0) -> None:
        command = [sys.executable, "-m", "runtime", "serve", "--port", "0"]
        self.process = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=dict(os.environ)
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if SERVING in line:
                self.url = urlparse(line.split(SERVING, 1)[1].strip())
                return

    def _drain(self, lines: queue.Queue[str]) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            lines.put(raw.decode(errors="replace"))

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.url.hostname or "127.0.0.1", self.url.port, timeout=600)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            connection = self.connection()
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
            time.sleep(0.1)
        raise TimeoutError("the HTTP server's default model never got ready")

    def timed_stream(self, body: dict[str, Any]) -> dict[str, float]:
        """TTFT from the request to the first text chunk; decode tokens/s from there to [DONE]."""
        connection = self.connection()
        sent = time.perf_counter()
        connection.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        first, tokens = 0.0, 0
        while True:
            line = response.readline()
            if not line or line == b"data: [DONE]\n":
                break
            if not line.startswith(b"data: "):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices"):
                first = first or time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
        done = time.perf_counter()
        connection.close()
        if tokens != body["max_tokens"]:
            raise AssertionError(f"expected {body['max_tokens']} tokens, got {tokens}")
        return {"ttft_ms": (first - sent) * 1000, "decode_tps": (tokens - 1) / (done - first)}

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_http(raw: Any, model: str, prompt: str, tokens: int, rounds: int, no_eos_bias: float) -> dict[str, Any]:
    """`raw`: the bench's in-process mlx-lm (`_RawMlxLm`), already loaded."""
    server, host = HttpServer(), PlainHost()
    try:
        server.wait_ready()
        eos = host.request("load_model", {"model_id": model})["eos_token_ids"]
        bias = {str(i): no_eos_bias for i in eos}
        stdio_params = {"model_id": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "logit_bias": bias}
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": tokens,
            "temperature": 0,
            "logit_bias": bias,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        sides = {
            "http": lambda: server.timed_stream(body),
            "stdio": lambda: host.timed_stream(stdio_params),
            "raw": lambda: raw.stream(tokens),
        }
        for measure in sides.values():  # warm each once
            measure()
        results: list[dict[str, dict[str, float]]] = []
        order = list(sides)
        for index in range(rounds):
            turn = order[index % 3 :] + order[: index % 3]
            results.append({name: sides[name]() for name in turn})
    finally:
        host.close()
        server.close()
    return _summary(results, tokens)


def _summary(results: list[dict[str, dict[str, float]]], tokens: int) -> dict[str, Any]:
    def tps(name: str) -> float:
        return median(r[name]["decode_tps"] for r in results)

    def ttft(name: str) -> float:
        return median(r[name]["ttft_ms"] for r in results)

    return {
        "client": "plain: http.client readline() loop + json.loads per data line (/v1/completions, SSE)",
        "tokens_per_run": tokens,
        "rounds": len(results),
        "decode_tps": {"http": tps("http"), "stdio": tps("stdio"), "raw_mlx_lm": tps("raw")},
        "ttft_ms": {"http": ttft("http"), "stdio": ttft("stdio"), "raw_mlx_lm": ttft("raw")},
        "http_vs_stdio": median(r["http"]["decode_tps"] / r["stdio"]["decode_tps"] for r in results),
        "http_vs_raw": median(r["http"]["decode_tps"] / r["raw"]["decode_tps"] for r in results),
        "http_ttft_overhead_ms": median(r["http"]["ttft_ms"] - r["stdio"]["ttft_ms"] for r in results),
        "targets": {"http_vs_stdio": ">= 0.95"},
        "runs": results,
    }


def print_http(result: dict[str, Any]) -> None:
    tps, ttft = result["decode_tps"], result["ttft_ms"]
    print(f"\nHTTP front door, {result['tokens_per_run']} tokens x {result['rounds']} rotating rounds (plain clients)")
    print(f"{'':<12}{'http':>10}{'stdio':>10}{'raw mlx-lm':>12}")
    print(f"{'decode tok/s':<12}{tps['http']:>10.1f}{tps['stdio']:>10.1f}{tps['raw_mlx_lm']:>12.1f}")
    print(f"{'TTFT ms':<12}{ttft['http']:>10.1f}{ttft['stdio']:>10.1f}{ttft['raw_mlx_lm']:>12.1f}")
    print(f"http/stdio {result['http_vs_stdio']:.3f} (target >= 0.95), http/raw {result['http_vs_raw']:.3f}")
