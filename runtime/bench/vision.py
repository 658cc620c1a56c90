"""`runtime bench` vision scenario: tiny-vlm through the runtime vs mlx-vlm's own stream_generate.

Same model files, same image (the same PNG bytes: base64 in the request, decoded by PIL in-process
on the direct side), same chat prompt, greedy, EOS suppressed on both sides. Time to first token:
from the request (runtime: the line sent; mlx-vlm: decoding the PNG, then the call) to the first
token; decode
tokens/s: first token to last. Runs alternate; ratios are medians of per-pair ratios.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from runtime.bench.host import median, timed_stream, timing_medians

MODEL = "tiny-vlm"
QUESTION = "Tell me about this picture."
NO_EOS_BIAS = -100.0


def run_vision(client: Any, runs: int, tokens: int) -> dict[str, Any]:
    info = client.request("load_model", {"model_id": MODEL}, timeout=300)
    eos = info["eos_token_ids"]
    direct = _Direct(eos)
    cases = [_case(client, direct, name, data, mime, runs, tokens, eos) for name, data, mime in _images()]
    client.request("unload_model", {"model_id": MODEL}, timeout=120)
    return {
        "model": MODEL,
        "tokens_per_run": tokens,
        "runs": runs,
        "cases": cases,
        "targets": {"decode_ratio": ">= 0.95", "ttft_ratio (direct / runtime)": ">= 0.95"},
    }


def _images() -> list[tuple[str, bytes, str]]:
    """A worst case (noise does not compress: a 230 KB PNG) and a photo-like JPEG (a few KB)."""
    import numpy as np
    from PIL import Image

    noise = Image.fromarray((np.random.default_rng(0).random((240, 320, 3)) * 255).astype("uint8"))
    y, x = np.mgrid[0:240, 0:320]
    smooth = Image.fromarray(np.stack([x * 255 // 320, y * 255 // 240, (x + y) * 255 // 560], -1).astype("uint8"))
    images = []
    for name, image, fmt, mime in (
        ("320x240 noise PNG", noise, "PNG", "png"),
        ("320x240 photo-like JPEG", smooth, "JPEG", "jpeg"),
    ):
        buffer = io.BytesIO()
        image.save(buffer, fmt)
        images.append((name, buffer.getvalue(), mime))
    return images


def _case(
    client: Any, direct: _Direct, name: str, data: bytes, mime: str, runs: int, tokens: int, eos: list[int]
) -> dict[str, Any]:
    url = f"data:image/{mime};base64," + base64.b64encode(data).decode()
    part = {"type": "image_url", "image_url": {"url": url}}
    params = {
        "model_id": MODEL,
        "messages": [{"role": "user", "content": [part, {"type": "text", "text": QUESTION}]}],
        "max_tokens": tokens,
        "temperature": 0,
        "logit_bias": {str(i): NO_EOS_BIAS for i in eos},
    }
    _runtime(client, params)  # warm both paths
    direct.stream(data, tokens)
    pairs = [(_runtime(client, params), direct.stream(data, tokens)) for _ in range(runs)]
    ours, theirs = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "image": name,
        "encoded_bytes": len(data),
        "runtime": timing_medians(ours),
        "direct_mlx_vlm": timing_medians(theirs),
        "decode_ratio": median([a["decode_tps"] / b["decode_tps"] for a, b in pairs]),
        "ttft_ratio": median([b["ttft_ms"] / a["ttft_ms"] for a, b in pairs]),
    }


def _runtime(client: Any, params: dict[str, Any]) -> dict[str, float]:
    timing = timed_stream(client, params)
    return {"ttft_ms": timing["ttft_ms"], "decode_tps": timing["decode_tps"]}


class _Direct:
    """mlx-vlm in this process on the same files, with the runtime's image-processor kwargs filter."""

    def __init__(self, eos: list[int]) -> None:
        import mlx.core as mx

        from runtime.engine.resolve import resolve
        from runtime.engine.vlm import load_vision

        if mx.default_device() == mx.cpu:
            mx.disable_compile()  # as the runtime does on CPU
        self.model, self.processor, tokenizer = load_vision(resolve(MODEL).path, eos)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
        self.prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        self.bias = {i: NO_EOS_BIAS for i in eos}

    def stream(self, data: bytes, tokens: int) -> dict[str, float]:
        from mlx_vlm import stream_generate
        from PIL import Image

        started, first, count = time.perf_counter(), None, 0
        image = Image.open(io.BytesIO(data)).convert("RGB")  # both sides start from the same encoded bytes
        for _ in stream_generate(
            self.model,
            self.processor,
            self.prompt,
            image=[image],  # type: ignore[list-item]  # mlx-vlm takes PIL images too; its annotation says paths
            max_tokens=tokens,
            temperature=0.0,
            logit_bias=self.bias,
        ):
            first = first or time.perf_counter()
            count += 1
        assert first is not None, "mlx-vlm produced no token"
        return {"ttft_ms": (first - started) * 1000, "decode_tps": (count - 1) / (time.perf_counter() - first)}


def print_vision(report: dict[str, Any]) -> None:
    print(f"\nvision ({report['model']}), {report['tokens_per_run']} tokens x {report['runs']} alternating runs")
    print(f"{'image':<26}{'bytes':>8}{'decode rt/direct':>18}{'TTFT rt':>10}{'TTFT direct':>13}{'direct/rt':>11}")
    for case in report["cases"]:
        ours, theirs = case["runtime"], case["direct_mlx_vlm"]
        print(
            f"{case['image']:<26}{case['encoded_bytes']:>8}{case['decode_ratio']:>18}"
            f"{ours['ttft_ms']:>10}{theirs['ttft_ms']:>13}{case['ttft_ratio']:>11}"
        )
    print("targets: decode >= 0.95 of direct, TTFT direct/runtime >= 0.95")
