"""The metrics collector: log buckets, thread safety, the exposition formats, the runtime's metric
set, what the lifecycle records per stream, and the method's schema."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime import faults
from runtime.engine.events import DraftStats, Finished, PromptProcessed, PromptStarted, TokenEvent
from runtime.engine.jobs import StreamJob
from runtime.engine.request import GenerationRequest
from runtime.methods import metrics as metrics_method
from runtime.metrics import Collector, RuntimeMetrics, log_buckets
from runtime.metrics.collector import PYTHON_CELLS, Cells, native_cells
from runtime.protocol import schemas
from runtime.scheduler.breaker import CircuitBreaker
from runtime.scheduler.lifecycle import StreamLifecycle
from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.registry import StreamRegistry


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_log_buckets_are_log_spaced_and_cover_the_range() -> None:
    bounds = log_buckets(1e-4, 1000.0, 4)
    assert bounds[0] == 1e-4 and bounds[-1] == 1000.0 and len(bounds) == 29
    ratios = [b / a for a, b in zip(bounds, bounds[1:], strict=False)]
    assert all(abs(r - 10**0.25) < 1e-3 for r in ratios)
    assert log_buckets(1, 10, 1) == (1.0, 10.0)
    with pytest.raises(ValueError):
        log_buckets(0, 1)


def test_histogram_buckets_are_le_and_cumulative() -> None:
    h = Collector().histogram("h_seconds", "h", buckets=(1.0, 10.0))
    for v in (0.5, 1.0, 1.5, 10.0, 11.0):
        h.observe(v)
    buckets, total, count = h.snapshot()
    assert buckets == [(1.0, 2), (10.0, 4), (math.inf, 5)]
    assert total == 24.0 and count == 5


def test_counters_refuse_to_go_down_and_kinds_do_not_mix() -> None:
    c = Collector()
    with pytest.raises(ValueError):
        c.counter("a_total").inc(-1)
    with pytest.raises(ValueError):
        c.gauge("a_total")
    assert c.counter("a_total") is c.counter("a_total")
    assert c.counter("a_total", labels={"x": "1"}) is not c.counter("a_total")


def cell_kinds() -> list[Any]:
    """The pure-Python cells, and the native module's where it is in use."""
    from runtime.engine import native

    module = native.module()
    kinds: list[Any] = [pytest.param(PYTHON_CELLS, id="python")]
    missing = module is None or not hasattr(module, "CounterCell")
    native_kind = None if missing else native_cells(module)
    kinds.append(pytest.param(native_kind, id="native", marks=pytest.mark.skipif(missing, reason="no native module")))
    return kinds


@pytest.mark.parametrize("cells", cell_kinds())
def test_concurrent_updates_from_many_threads_are_all_counted(cells: Cells) -> None:
    c = Collector(cells)
    counter, hist = c.counter("n_total"), c.histogram("v_seconds", buckets=(0.5,))
    per_thread, threads = 20000, 8

    def work() -> None:
        for i in range(per_thread):
            counter.inc()
            hist.observe(i % 2)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    scrapes: list[str] = []
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        scrapes.append(c.prometheus())  # scraping while others write never breaks the text
    for w in workers:
        w.join()
    assert counter.value == per_thread * threads
    buckets, total, count = hist.snapshot()
    assert count == per_thread * threads and buckets[0][1] == count // 2 and total == count // 2
    for text in scrapes[-3:]:
        families(text)


def test_prometheus_text_parses_with_help_type_and_histogram_series() -> None:
    c = Collector()
    c.counter("x_requests_total", "Requests.", {"finished_reason": "stop"}).inc(3)
    c.counter("x_requests_total", "Requests.", {"finished_reason": 'we"ird\\'}).inc()
    c.gauge("x_running", "Running.\nnow").set(2)
    h = c.histogram("x_latency_seconds", "Latency.", buckets=(0.1, 1.0))
    h.observe(0.05)
    h.observe(0.5)
    text = c.prometheus()
    assert "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n" in text
    assert 'x_latency_seconds_bucket{le="+Inf"} 2\n' in text and "x_latency_seconds_count 2\n" in text
    parsed = families(text)
    requests = parsed["x_requests"]
    assert requests.type == "counter"
    assert {s.labels["finished_reason"]: s.value for s in requests.samples} == {"stop": 3.0, 'we"ird\\': 1.0}
    assert parsed["x_running"].type == "gauge" and parsed["x_running"].documentation == "Running.\nnow"
    hist = parsed["x_latency_seconds"]
    assert hist.type == "histogram"
    series = {(s.name, s.labels.get("le")): s.value for s in hist.samples}
    assert series == {
        ("x_latency_seconds_bucket", "0.1"): 1.0,
        ("x_latency_seconds_bucket", "1"): 2.0,
        ("x_latency_seconds_bucket", "+Inf"): 2.0,
        ("x_latency_seconds_sum", None): 0.55,
        ("x_latency_seconds_count", None): 2.0,
    }


def test_json_mirrors_the_text() -> None:
    c = Collector()
    c.counter("a_total", "A.").inc(2)
    c.histogram("b_seconds", "B.", buckets=(1.0,)).observe(0.5)
    assert c.as_json() == {
        "a_total": {"type": "counter", "help": "A.", "samples": [{"labels": {}, "value": 2}]},
        "b_seconds": {
            "type": "histogram",
            "help": "B.",
            "samples": [
                {"labels": {}, "count": 1, "sum": 0.5, "buckets": [{"le": "1", "count": 1}, {"le": "+Inf", "count": 1}]}
            ],
        },
    }


def sample(m: RuntimeMetrics, name: str, **labels: str) -> Any:
    for s in m.collector.as_json()[name]["samples"]:
        if s["labels"] == labels:
            return s
    raise KeyError(name)


def test_a_finished_stream_adds_up_in_the_runtime_metric_set() -> None:
    m = RuntimeMetrics()
    draft = DraftStats("d", 4, drafted=8, accepted=6)
    # submitted at 0, left the queue at 0.1, first token at 0.3 (ttft), 11 tokens by 1.3
    m.stream_finished(
        Finished(
            reason="stop", prompt_tokens=30, generated_tokens=11, ttft_s=0.3, total_s=1.3, cached_tokens=10, draft=draft
        ),
        0.0,
        0.1,
    )
    m.stream_finished(Finished(reason="cancelled", prompt_tokens=7, total_s=0.05), 0.0, None)  # never started
    assert sample(m, "mlx_runtime_generation_tokens_total")["value"] == 11
    assert sample(m, "mlx_runtime_prompt_tokens_total")["value"] == 30  # the unstarted one processed none
    assert sample(m, "mlx_runtime_requests_finished_total", finished_reason="stop")["value"] == 1
    assert sample(m, "mlx_runtime_requests_finished_total", finished_reason="cancelled")["value"] == 1
    assert sample(m, "mlx_runtime_request_success_total", finished_reason="stop")["value"] == 1
    assert sample(m, "mlx_runtime_prefix_cache_hits_total")["value"] == 1
    assert sample(m, "mlx_runtime_prefix_cache_cached_tokens_total")["value"] == 10
    assert sample(m, "mlx_runtime_spec_decode_num_draft_tokens_total")["value"] == 8
    assert sample(m, "mlx_runtime_spec_decode_num_accepted_tokens_total")["value"] == 6
    assert sample(m, "mlx_runtime_e2e_request_latency_seconds")["count"] == 2
    assert sample(m, "mlx_runtime_time_to_first_token_seconds")["sum"] == pytest.approx(0.3)
    assert sample(m, "mlx_runtime_request_queue_time_seconds")["sum"] == pytest.approx(0.1)
    assert sample(m, "mlx_runtime_inter_token_latency_seconds")["sum"] == pytest.approx(0.1)  # 1.0 s / 10 gaps
    assert sample(m, "mlx_runtime_decode_tokens_per_second")["sum"] == pytest.approx(10.0)
    assert sample(m, "mlx_runtime_prefill_tokens_per_second")["sum"] == pytest.approx(20 / 0.2)
    families(m.collector.prometheus())


class Output:
    def __init__(self) -> None:
        self.ended: list[Finished] = []

    def token(self, event: TokenEvent) -> None:
        pass

    def end(self, event: Finished) -> None:
        self.ended.append(event)


def open_stream(lifecycle: StreamLifecycle, stream_id: str, submitted_at: float) -> Any:
    handle = lifecycle.open(stream_id, "m", None, Output())
    job = StreamJob(
        stream_id,
        SimpleNamespace(model_id="m"),  # type: ignore[arg-type]
        GenerationRequest([1, 2, 3], 8),
        handle,
        handle.record.cancel,
        submitted_at,
        None,
    )
    lifecycle.start(handle, job, "normal", None)
    return handle


def make_lifecycle(metrics: RuntimeMetrics | None) -> StreamLifecycle:
    queue: AdmissionQueue[StreamJob] = AdmissionQueue(max_active=4, max_queued=4)
    return StreamLifecycle(StreamRegistry(), queue, CircuitBreaker(5, 60, 10), lambda: None, metrics)


def test_the_lifecycle_records_each_stream_once_and_a_queued_cancel_as_unstarted() -> None:
    m = RuntimeMetrics()
    lifecycle = make_lifecycle(m)
    handle = open_stream(lifecycle, "a", 0.0)
    lifecycle.queue.take(0.0)
    handle(PromptStarted("solo"))
    assert handle.started_at is not None
    handle(PromptProcessed(3, 0.01))
    for i in range(5):
        handle(TokenEvent(i, "x"))
    end = Finished(reason="length", prompt_tokens=3, generated_tokens=5, ttft_s=0.01, total_s=0.02)
    handle(end)
    handle(end)  # a second end is ignored, and not counted
    open_stream(lifecycle, "b", 0.0)
    assert lifecycle.cancel("b")
    assert sample(m, "mlx_runtime_requests_finished_total", finished_reason="length")["value"] == 1
    assert sample(m, "mlx_runtime_requests_finished_total", finished_reason="cancelled")["value"] == 1
    assert sample(m, "mlx_runtime_generation_tokens_total")["value"] == 5
    assert sample(m, "mlx_runtime_prompt_tokens_total")["value"] == 3
    assert sample(m, "mlx_runtime_request_queue_time_seconds")["count"] == 1


def test_a_failing_collector_never_stops_a_stream_from_ending() -> None:
    class Broken(RuntimeMetrics):
        def stream_finished(self, event: Finished, submitted_at: float | None, started_at: float | None) -> None:
            raise RuntimeError("boom")

    lifecycle = make_lifecycle(Broken())
    handle = open_stream(lifecycle, "a", 0.0)
    assert lifecycle.cancel("a")
    assert handle.output.ended and handle.output.ended[0].reason == "cancelled"


def test_the_schema_examples_and_real_results_validate() -> None:
    doc = schemas.method_schemas()["runtime/metrics"]
    for key in ("x-example", "x-example-prometheus"):
        assert schemas.check(doc, "params", doc[key]["params"]) == []
        assert schemas.check(doc, "result", doc[key]["result"]) == []
    families(doc["x-example-prometheus"]["result"]["text"])
    services = SimpleNamespace(
        streams=StreamRegistry(),
        store=SimpleNamespace(all=lambda: []),
        writer=SimpleNamespace(queued=lambda: 0),
        metrics=RuntimeMetrics(),
    )
    for params in ({}, {"format": "json"}, {"format": "prometheus"}):
        result = metrics_method.metrics(services, params, None)  # type: ignore[arg-type]
        assert schemas.check(doc, "result", result) == []
    assert schemas.check(doc, "result", {"format": "prometheus", "metrics": {}}) != []


def test_bad_params_name_the_field() -> None:
    with pytest.raises(faults.InvalidInput) as raised:
        schemas.validate_params("runtime/metrics", {"format": "xml"})
    assert raised.value.details["errors"][0]["path"] == "/format"
    with pytest.raises(faults.InvalidInput) as raised:
        schemas.validate_params("runtime/metrics", {"fromat": "json"})
    assert raised.value.details["errors"][0]["path"] == "/fromat"
