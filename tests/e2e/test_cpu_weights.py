"""load_model's cpu_weights: what serves a quantized or bf16 model's layers on the CPU, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.engine import native
from runtime.engine.resolve import EMBEDDED_DIR
from tests.conftest import MODEL, runtime_with
from tests.support.harness import RpcFailure

GREEDY = {"model_id": "q4", "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlx_lm.convert import convert

    out = tmp_path_factory.mktemp("cpu-weights") / "tiny-chat-4bit"
    convert(str(EMBEDDED_DIR / "tiny-chat"), str(out), quantize=True, q_group_size=64, q_bits=4)
    return out


@pytest.fixture(scope="module")
def bf16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlx_lm.convert import convert

    out = tmp_path_factory.mktemp("cpu-weights") / "tiny-chat-bf16"
    convert(str(EMBEDDED_DIR / "tiny-chat"), str(out), dtype="bfloat16")
    return out


def served(env: dict[str, str], path: Path, **params: str) -> tuple[str | None, str]:
    """What serves the quantized layers, and the greedy text, in a runtime of its own."""
    with runtime_with(env=env, models=()) as rt:
        info = rt.request("load_model", {"model_id": "q4", "local_path": str(path), **params})
        return info["cpu_weights"], rt.collect(rt.request("generate", GREEDY)["stream_id"])["text"]


def test_without_native_kernels_auto_dequantizes_to_fp32_and_writes_the_same_text_as_fp32(quantized: Path) -> None:
    off = {"RUNTIME_NATIVE": "0"}
    auto, auto_text = served(off, quantized)
    fp32, fp32_text = served(off, quantized, cpu_weights="fp32")
    assert (auto, fp32) == ("fp32", "fp32") and auto_text == fp32_text and auto_text


@pytest.mark.skipif(native.module() is None, reason=f"native module unavailable ({native.status()['reason']})")
def test_with_native_kernels_auto_keeps_the_weights_quantized_and_the_text_matches_fp32(quantized: Path) -> None:
    auto, auto_text = served({}, quantized)
    _, fp32_text = served({}, quantized, cpu_weights="fp32")
    assert auto == "native" and auto_text == fp32_text


def test_a_bf16_model_reports_what_serves_it_and_the_text_does_not_change(bf16: Path) -> None:
    """The native dense kernel where it is in use, MLX's own bf16 path where it is off."""
    off, off_text = served({"RUNTIME_NATIVE": "0"}, bf16)
    assert off == "mlx" and off_text
    if native.module() is not None:
        on, on_text = served({}, bf16)
        assert on == "native" and on_text == off_text


def test_asking_for_native_kernels_that_are_off_is_refused_with_the_reason(quantized: Path) -> None:
    with runtime_with(env={"RUNTIME_NATIVE": "0"}, models=()) as rt:
        with pytest.raises(RpcFailure) as refused:
            rt.request("load_model", {"model_id": "q4", "local_path": str(quantized), "cpu_weights": "native"})
        assert refused.value.code == -32602
        assert refused.value.data["errors"][0]["path"] == "/cpu_weights"
        assert "RUNTIME_NATIVE=0" in refused.value.data["errors"][0]["message"]
        assert rt.request("runtime/state")["loaded_models"] == []


def test_a_model_without_quantized_layers_reports_no_cpu_weights_policy() -> None:
    with runtime_with(models=()) as rt:
        assert rt.request("load_model", {"model_id": MODEL, "cpu_weights": "fp32"})["cpu_weights"] is None


def test_an_unknown_policy_is_refused_with_the_field_path() -> None:
    with runtime_with(models=()) as rt:
        with pytest.raises(RpcFailure) as refused:
            rt.request("load_model", {"model_id": MODEL, "cpu_weights": "int3"})
        assert refused.value.code == -32602 and refused.value.data["errors"][0]["path"] == "/cpu_weights"
