"""The runtime's metric set: what each finished stream adds, and the gauges read at scrape time.

Nothing is recorded per token: a stream's handle keeps one timestamp (when it left the queue) and
everything else is derived once, when the stream ends, from its `Finished` event (TTFT, total time,
token counts, cached tokens, draft statistics). Inter-token latency is therefore each stream's mean,
(total - ttft) / (tokens - 1), observed once per stream (see docs/metrics.md).
"""

from __future__ import annotations

from typing import get_args

from runtime.engine.events import Finished, FinishReason
from runtime.metrics.collector import Collector, log_buckets

PREFIX = "mlx_runtime_"
SUCCESS = ("stop", "length")
SECONDS = log_buckets(1e-4, 1000.0, 4)  # 100 µs .. 1000 s
RATES = log_buckets(0.1, 1e5, 4)  # tokens per second


class RuntimeMetrics:
    """Owns the collector; `stream_finished` runs once per stream, on whichever thread ends it."""

    def __init__(self, collector: Collector | None = None) -> None:
        c = self.collector = collector or Collector()
        p = PREFIX
        self.prompt_tokens = c.counter(p + "prompt_tokens_total", "Prompt tokens of requests that reached the engine.")
        self.generation_tokens = c.counter(p + "generation_tokens_total", "Generated tokens (stop tokens excluded).")
        self.finished = {
            reason: c.counter(
                p + "requests_finished_total", "Finished requests by finish reason.", {"finished_reason": reason}
            )
            for reason in get_args(FinishReason)
        }
        self.success = {
            reason: c.counter(
                p + "request_success_total",
                "Requests that finished normally (stop or length).",
                {"finished_reason": reason},
            )
            for reason in SUCCESS
        }
        self.cache_queries = c.counter(p + "prefix_cache_queries_total", "Requests that reached the engine.")
        self.cache_hits = c.counter(
            p + "prefix_cache_hits_total", "Requests whose prompt was partly served from the prefix cache."
        )
        self.cached_tokens = c.counter(
            p + "prefix_cache_cached_tokens_total", "Prompt tokens served from the prefix cache (not prefilled)."
        )
        self.drafted = c.counter(p + "spec_decode_num_draft_tokens_total", "Tokens proposed by draft models.")
        self.accepted = c.counter(
            p + "spec_decode_num_accepted_tokens_total", "Draft tokens the target model accepted."
        )
        self.ttft = c.histogram(
            p + "time_to_first_token_seconds", "From request to first token (queue wait included).", SECONDS
        )
        self.itl = c.histogram(
            p + "inter_token_latency_seconds",
            "Per-stream mean time between tokens, (total - ttft) / (tokens - 1), observed once per stream.",
            SECONDS,
        )
        self.queue_time = c.histogram(
            p + "request_queue_time_seconds", "From request to leaving the admission queue.", SECONDS
        )
        self.e2e = c.histogram(p + "e2e_request_latency_seconds", "From request to its end.", SECONDS)
        self.prefill_rate = c.histogram(
            p + "prefill_tokens_per_second",
            "Per-stream prefill speed (prompt tokens not cached / prefill time).",
            RATES,
        )
        self.decode_rate = c.histogram(
            p + "decode_tokens_per_second", "Per-stream decode speed ((tokens - 1) / (total - ttft)).", RATES
        )
        self.pooled_requests = {
            op: c.counter(
                p + "pooling_requests_total", "embed and rerank requests that reached the engine.", {"op": op}
            )
            for op in ("embed", "score")
        }
        self.pooled_inputs = c.counter(
            p + "pooling_inputs_total", "Inputs embedded or scored by the engine (cache misses)."
        )
        self.pooled_tokens = c.counter(
            p + "pooling_tokens_total", "Tokens of the inputs embedded or scored by the engine."
        )
        self.pooled_time = c.histogram(
            p + "pooling_request_seconds",
            "From an embed or rerank request to its result (queue wait included).",
            SECONDS,
        )
        self.model_loads = c.counter(p + "model_loads_total", "Models loaded (each load_model that read weights).")
        self.model_load_time = c.histogram(
            p + "model_load_seconds",
            "What the host waited for a load: resolve, memory check, imports, weights.",
            SECONDS,
        )
        self.running = c.gauge(p + "requests_running", "Streams prefilling or decoding, at scrape time.")
        self.waiting = c.gauge(p + "requests_waiting", "Streams waiting in the admission queue, at scrape time.")
        self.batched = c.gauge(p + "requests_batched", "Streams on a model's continuous batch, at scrape time.")
        self.models_loaded = c.gauge(p + "models_loaded", "Models loaded, at scrape time.")
        self.outbound = c.gauge(p + "outbound_queue_messages", "Messages waiting for the writer, at scrape time.")

    def stream_finished(self, event: Finished, submitted_at: float | None, started_at: float | None) -> None:
        """One stream's end. `started_at` (perf_counter) is when it left the queue; None if it never did."""
        self.finished[event.reason].inc()
        if event.path == "pooling":
            self._pooled(event)
            return
        success = self.success.get(event.reason)
        if success is not None:
            success.inc()
        self.e2e.observe(event.total_s)
        generated = event.generated_tokens
        if generated:
            self.generation_tokens.inc(generated)
        if event.draft is not None:
            self.drafted.inc(event.draft.drafted)
            self.accepted.inc(event.draft.accepted)
        if started_at is None or submitted_at is None:
            return  # never left the queue: no prompt processed
        queued = max(0.0, started_at - submitted_at)
        self.queue_time.observe(queued)
        self.prompt_tokens.inc(event.prompt_tokens)
        self.cache_queries.inc()
        if event.cached_tokens:
            self.cache_hits.inc()
            self.cached_tokens.inc(event.cached_tokens)
        if event.ttft_s <= 0:
            return  # no first token
        self.ttft.observe(event.ttft_s)
        prefill_s = event.ttft_s - queued
        prefilled = event.prompt_tokens - event.cached_tokens
        if prefill_s > 0 and prefilled > 0:
            self.prefill_rate.observe(prefilled / prefill_s)
        decode_s = event.total_s - event.ttft_s
        if generated >= 2 and decode_s > 0:
            self.itl.observe(decode_s / (generated - 1))
            self.decode_rate.observe((generated - 1) / decode_s)

    def _pooled(self, event: Finished) -> None:
        """An embed or rerank job: counted apart, so streams' latency and token figures stay theirs."""
        if event.pooled is None:
            return
        scores = bool(event.pooled.rows) and isinstance(event.pooled.rows[0], float)
        self.pooled_requests["score" if scores else "embed"].inc()
        self.pooled_inputs.inc(len(event.pooled.rows))
        self.pooled_tokens.inc(event.prompt_tokens)
        self.pooled_time.observe(event.total_s)

    def model_loaded(self, seconds: float) -> None:
        self.model_loads.inc()
        self.model_load_time.observe(seconds)

    def scraped(self, running: int, waiting: int, batched: int, models: int, outbound: int) -> None:
        """The gauges, read from the registry, the queue, the store and the writer when scraped."""
        self.running.set(running)
        self.waiting.set(waiting)
        self.batched.set(batched)
        self.models_loaded.set(models)
        self.outbound.set(outbound)
