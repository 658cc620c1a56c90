"""runtime/metrics over the real runtime: counts and histograms add up exactly after a few streams
(one cancelled), the running/waiting gauges during a long stream, both formats, bad params."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MODEL, assert_schema_clean, runtime_with
from tests.e2e.test_streams import LONG, stream_state, wait_until
from tests.support.harness import RpcFailure, RuntimeClient


@pytest.fixture(scope="module")
def one_at_a_time() -> Iterator[RuntimeClient]:
    """A runtime of this module's own (metrics start at zero) that decodes one stream at a time."""
    with runtime_with("--max-active-streams", "1") as client:
        yield client
        assert_schema_clean(client)


def value(metrics: dict[str, Any], name: str, **labels: str) -> Any:
    return next(s for s in metrics[name]["samples"] if s["labels"] == labels)


def test_counts_and_histograms_add_up_after_normal_and_cancelled_streams(one_at_a_time: RuntimeClient) -> None:
    rt = one_at_a_time
    before = rt.request("runtime/metrics")["metrics"]
    assert value(before, "mlx_runtime_generation_tokens_total")["value"] == 0
    outs = [
        rt.collect(
            rt.request("generate", {"model_id": MODEL, "prompt": p, "max_tokens": 12, "temperature": 0})["stream_id"]
        )
        for p in ("Once upon a time", "Lily had a red ball.")
    ]
    long_id = rt.request("generate", LONG)["stream_id"]
    wait_until(lambda: stream_state(rt, long_id) == "decoding")
    queued_id = rt.request("generate", {"model_id": MODEL, "prompt": "The fox", "max_tokens": 5, "temperature": 0})[
        "stream_id"
    ]
    during = rt.request("runtime/metrics")["metrics"]  # one stream decodes, one waits for its place
    assert value(during, "mlx_runtime_requests_running")["value"] == 1
    assert value(during, "mlx_runtime_requests_waiting")["value"] == 1
    assert value(during, "mlx_runtime_models_loaded")["value"] == 1
    assert value(during, "mlx_runtime_model_loads_total")["value"] == 1
    assert value(during, "mlx_runtime_model_load_seconds")["count"] == 1
    rt.request("cancel", {"stream_id": long_id})
    outs += [rt.collect(long_id), rt.collect(queued_id)]
    stats = [o["stats"] for o in outs]
    assert [s["finish_reason"] for s in stats][2] == "cancelled"

    m = rt.request("runtime/metrics")["metrics"]
    assert value(m, "mlx_runtime_generation_tokens_total")["value"] == sum(s["tokens_generated"] for s in stats)
    assert value(m, "mlx_runtime_prompt_tokens_total")["value"] == sum(s["prompt_tokens"] for s in stats)
    reasons = Counter(s["finish_reason"] for s in stats)
    for reason in ("stop", "length", "cancelled", "timeout", "error"):
        assert value(m, "mlx_runtime_requests_finished_total", finished_reason=reason)["value"] == reasons[reason]
    for reason in ("stop", "length"):
        assert value(m, "mlx_runtime_request_success_total", finished_reason=reason)["value"] == reasons[reason]
    ttft = value(m, "mlx_runtime_time_to_first_token_seconds")
    assert ttft["count"] == 4 and ttft["buckets"][-1] == {"le": "+Inf", "count": 4}
    assert ttft["sum"] == pytest.approx(sum(s["time_to_first_token"] for s in stats), rel=1e-6)
    e2e = value(m, "mlx_runtime_e2e_request_latency_seconds")
    assert e2e["count"] == 4 and e2e["sum"] == pytest.approx(sum(s["total_time"] for s in stats), rel=1e-6)
    assert value(m, "mlx_runtime_request_queue_time_seconds")["count"] == 4
    decoding = sum(1 for s in stats if s["tokens_generated"] >= 2)
    assert value(m, "mlx_runtime_inter_token_latency_seconds")["count"] == decoding
    assert value(m, "mlx_runtime_decode_tokens_per_second")["count"] == decoding
    assert value(m, "mlx_runtime_prefill_tokens_per_second")["count"] == 4
    assert value(m, "mlx_runtime_requests_running")["value"] == 0
    assert value(m, "mlx_runtime_requests_waiting")["value"] == 0

    text = rt.request("runtime/metrics", {"format": "prometheus"})
    assert text["format"] == "prometheus" and text["content_type"].startswith("text/plain; version=0.0.4")
    parsed = {f.name: f for f in text_string_to_metric_families(text["text"])}
    tokens = parsed["mlx_runtime_generation_tokens"]
    assert tokens.type == "counter" and tokens.samples[0].value == sum(s["tokens_generated"] for s in stats)
    hist = parsed["mlx_runtime_time_to_first_token_seconds"]
    assert hist.type == "histogram"
    assert next(s.value for s in hist.samples if s.name.endswith("_count")) == 4


@pytest.mark.parametrize(
    ("params", "path"), [({"format": "xml"}, "/format"), ({"fmt": "json"}, "/fmt"), ({"format": 1}, "/format")]
)
def test_bad_params_get_invalid_params_with_the_field_path(
    one_at_a_time: RuntimeClient, params: dict[str, Any], path: str
) -> None:
    with pytest.raises(RpcFailure) as caught:
        one_at_a_time.request("runtime/metrics", params)
    assert caught.value.code == -32602 and caught.value.data is not None
    assert caught.value.data["errors"][0]["path"] == path


async def test_the_python_binding_reads_both_formats() -> None:
    from mlx_rpc_client import RuntimeClient as AsyncClient

    from tests.e2e.test_python_binding import spawn

    async with await spawn() as rt:
        assert isinstance(rt, AsyncClient)
        as_json = await rt.metrics()
        assert as_json["format"] == "json" and "mlx_runtime_requests_running" in as_json["metrics"]
        text = (await rt.metrics("prometheus"))["text"]
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"mlx_runtime_prompt_tokens", "mlx_runtime_time_to_first_token_seconds"} <= names


def test_the_metrics_say_which_cells_keep_them(one_at_a_time: RuntimeClient) -> None:
    """The native module's cells where it is in use, the pure-Python ones with RUNTIME_NATIVE=0."""
    from runtime.engine import native

    expected = "native" if native.module() is not None else "python"
    assert one_at_a_time.request("runtime/metrics")["cells"] == expected
    assert one_at_a_time.request("runtime/metrics", {"format": "prometheus"})["cells"] == expected
