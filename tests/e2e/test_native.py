"""4-bit and bf16 tiny models generate the same greedy text with and without the native route.

The embedded tiny-chat model is quantized (mlx-lm's quantize, affine) or cast to bf16 (mlx-lm's
convert) into a tmp dir; greedy text must be identical over several prompts, and the last-position
logits agree within 2e-3 (4-bit) / 1e-2 (bf16: bf16 activations, rounded after every matmul) of
their scale (the kernels accumulate in a different order than MLX's). Skipped only when the module
is not built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

mx = pytest.importorskip("mlx.core")

from runtime.engine import native  # noqa: E402
from runtime.engine.resolve import EMBEDDED_DIR  # noqa: E402

pytestmark = pytest.mark.skipif(
    native.module() is None, reason=f"native module unavailable ({native.status()['reason']}); run scripts/setup.sh"
)

PROMPTS = ["Once upon a time", "The cat sat on", "Tell me a story about a dog.", "Hello"]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory) -> Path:
    from mlx_lm.convert import convert

    out = tmp_path_factory.mktemp("q") / "tiny-chat-4bit"
    convert(str(EMBEDDED_DIR / "tiny-chat"), str(out), quantize=True, q_group_size=64, q_bits=4)
    return out


@pytest.fixture(scope="module")
def bf16(tmp_path_factory) -> Path:
    from mlx_lm.convert import convert

    out = tmp_path_factory.mktemp("bf16") / "tiny-chat-bf16"
    convert(str(EMBEDDED_DIR / "tiny-chat"), str(out), dtype="bfloat16")
    return out


def _greedy(model, tokenizer, prompt: str, n: int = 24) -> str:
    from mlx_lm import generate
    from mlx_lm.sample_utils import make_sampler

    return generate(model, tokenizer, prompt, max_tokens=n, sampler=make_sampler(temp=0.0))


def test_greedy_text_identical_with_native_route(quantized: Path):
    from mlx_lm import load

    model, tokenizer = load(str(quantized))
    plain = [_greedy(model, tokenizer, p) for p in PROMPTS]
    tokens = mx.array([tokenizer.encode(PROMPTS[0])])
    logits_plain = model(tokens)[0, -1].astype(mx.float32)
    counts = native.route(model)
    assert counts["routed"] > 0 and counts["kept"] == 0
    routed = [_greedy(model, tokenizer, p) for p in PROMPTS]
    logits_native = model(tokens)[0, -1].astype(mx.float32)
    native.unroute(model)
    assert routed == plain
    scale = mx.abs(logits_plain).max().item()
    assert mx.abs(logits_native - logits_plain).max().item() <= 2e-3 * scale


def test_model_store_routes_at_load(quantized: Path):
    from runtime.engine.models import ModelStore
    from runtime.engine.resolve import ResolvedModel

    store = ModelStore()
    loaded = store.load("q4", ResolvedModel(path=quantized, source="local"), None)
    try:
        layers = [m for _, m in loaded.model.named_modules() if getattr(m, "_runtime_native", False)]
        assert layers, "no layer was routed to the native kernel"
    finally:
        store.unload("q4")


def test_unsupported_quantization_keeps_mlx_path(caplog):
    import mlx.nn as nn

    layer = nn.QuantizedLinear(128, 16, bias=False, group_size=64, bits=3)  # 3 bits: not supported
    model = nn.Sequential(layer)
    x = mx.random.normal((2, 128))
    before = model(x)
    with caplog.at_level(logging.INFO, logger="runtime.engine.native"):
        counts = native.route(model)
    assert counts == {"routed": 0, "kept": 1}
    assert any("keep MLX's path" in r.getMessage() for r in caplog.records)
    assert mx.array_equal(model(x), before)


def test_the_runtime_serves_a_4bit_model_with_the_same_text_whether_the_native_kernels_are_on_or_off(
    quantized: Path,
) -> None:
    """Through the real process: runtime/info says which kernels serve, and the text does not change."""
    from tests.conftest import runtime_with

    request = {"model_id": "q4", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}
    texts, infos = [], []
    for env in ({}, {"RUNTIME_NATIVE": "0"}):
        with runtime_with(env=env, models=()) as rt:
            rt.request("load_model", {"model_id": "q4", "local_path": str(quantized)})
            infos.append(rt.request("runtime/info")["native"])
            texts.append(rt.collect(rt.request("generate", request)["stream_id"])["text"])
    assert infos[0]["available"] is True and infos[0]["isa"] in ("avx512_vnni", "avx2", "scalar")
    assert infos[1] == {"available": False, "reason": "disabled by RUNTIME_NATIVE=0", "version": None, "isa": None}
    assert texts[0] == texts[1] and texts[0]


def test_bf16_greedy_text_identical_with_native_route(bf16: Path):
    import mlx.nn as nn
    from mlx_lm import load

    model, tokenizer = load(str(bf16))
    plain = [_greedy(model, tokenizer, p) for p in PROMPTS]
    tokens = mx.array([tokenizer.encode(PROMPTS[0])])
    logits_plain = model(tokens)[0, -1].astype(mx.float32)
    counts = native.route(model)
    dense = [m for _, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    assert counts == {"routed": len(dense), "kept": 0}  # every projection and the tied head
    assert all(getattr(m, "_runtime_native", False) for m in dense)
    routed = [_greedy(model, tokenizer, p) for p in PROMPTS]
    logits_native = model(tokens)[0, -1].astype(mx.float32)
    graph = _graph(logits_native)
    for op in ("NativeMatmul", "NativeAttention", "NativeRMSNorm", "NativeRoPE"):  # bf16 layer ops too
        assert op in graph, op
    native.unroute(model)
    assert not any(getattr(m, "_runtime_native", False) for _, m in model.named_modules())
    assert "Native" not in _graph(model(tokens)[0, -1])
    assert routed == plain
    scale = mx.abs(logits_plain).max().item()
    assert mx.abs(logits_native - logits_plain).max().item() <= 1e-2 * scale


def _graph(out) -> str:
    import io

    text = io.StringIO()
    mx.export_to_dot(text, out)
    return text.getvalue()


def test_a_bf16_vision_model_gives_mlx_vlms_greedy_text_with_the_native_kernels_and_layer_ops(tmp_path: Path):
    import io

    from mlx_vlm import generate
    from PIL import Image

    from runtime.engine.vlm import load_vision

    weights = mx.load(str(EMBEDDED_DIR / "tiny-vlm" / "model.safetensors"))
    for f in (EMBEDDED_DIR / "tiny-vlm").iterdir():
        if f.name != "model.safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    half = {k: v.astype(mx.bfloat16) if v.dtype == mx.float32 else v for k, v in weights.items()}
    mx.save_safetensors(str(tmp_path / "model.safetensors"), half, metadata={"format": "mlx"})
    model, processor, tokenizer = load_vision(tmp_path, [2, 0])
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(png, "PNG")
    image = Image.open(io.BytesIO(png.getvalue())).convert("RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def greedy() -> str:
        return generate(model, processor, prompt, image=[image], max_tokens=24, temperature=0.0).text

    plain = greedy()
    assert native.route(model)["routed"] > 0
    module, calls = native.module(), {"attention": 0, "rms_norm": 0, "rope": 0}
    originals = {name: getattr(module, name) for name in calls}

    def counting(name: str):
        def call(*args, **kwargs):
            calls[name] += 1
            return originals[name](*args, **kwargs)

        return call

    try:
        for name in calls:
            setattr(module, name, counting(name))
        routed = greedy()
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)
        native.unroute(model)
    assert routed == plain
    assert calls["attention"] > 0 and calls["rms_norm"] > 0  # the vision tower's and the text model's


def test_bf16_linear_with_bias_and_an_embedding_head_are_routed():
    import mlx.nn as nn

    linear, embedding = nn.Linear(96, 24, bias=True), nn.Embedding(50, 96)
    model = nn.Sequential(linear, embedding)
    model.set_dtype(mx.bfloat16)
    x = mx.random.normal((2, 3, 96)).astype(mx.bfloat16)
    before = (linear(x), embedding.as_linear(x))
    assert native.route(model) == {"routed": 2, "kept": 0}
    after = (linear(x), embedding.as_linear(x))
    native.unroute(model)
    assert type(linear) is nn.Linear and type(embedding) is nn.Embedding
    for b, a in zip(before, after, strict=True):
        assert a.dtype == b.dtype == mx.bfloat16 and a.shape == b.shape
        scale = mx.abs(b.astype(mx.float32)).max().item()
        assert mx.abs(a.astype(mx.float32) - b.astype(mx.float32)).max().item() <= 2.0**-7 * scale


def test_fp32_linear_keeps_mlx_path_without_a_log_line(caplog):
    import mlx.nn as nn

    model = nn.Sequential(nn.Linear(64, 16))  # fp32: MLX's BLAS path is the better kernel
    with caplog.at_level(logging.INFO, logger="runtime.engine.native"):
        assert native.route(model) == {"routed": 0, "kept": 0}
    assert not caplog.records


def test_a_linear_subclass_with_its_own_call_keeps_mlx_path(caplog):
    import mlx.nn as nn

    class Scaled(nn.Linear):
        def __call__(self, x: mx.array) -> mx.array:
            return super().__call__(x) * 2

    layer = Scaled(64, 16)
    layer.set_dtype(mx.float16)
    model = nn.Sequential(layer)
    x = mx.random.normal((2, 64)).astype(mx.float16)
    before = model(x)
    with caplog.at_level(logging.INFO, logger="runtime.engine.native"):
        assert native.route(model) == {"routed": 0, "kept": 1}
    assert any("own __call__" in r.getMessage() for r in caplog.records)
    assert mx.array_equal(model(x), before)
