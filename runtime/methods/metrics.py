"""runtime/metrics: counters and histograms of the streams so far, and gauges read now; answered
on the reader thread (reading the collector takes its locks only briefly)."""

from __future__ import annotations

from typing import Any

from runtime.methods.context import Handler, Services
from runtime.protocol.dispatch import CallContext
from runtime.scheduler.registry import StreamState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics(services: Services, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    records = services.streams.active()
    running = sum(1 for r in records if r.state in (StreamState.PREFILLING, StreamState.DECODING))
    waiting = sum(1 for r in records if r.state is StreamState.QUEUED)
    batched = sum(1 for r in records if r.path == "batch" and r.state is not StreamState.QUEUED)
    collected = services.metrics
    collected.scraped(running, waiting, batched, len(services.store.all()), services.writer.queued())
    fmt, cells = params.get("format", "json"), collected.collector.cells.kind
    if fmt == "prometheus":
        return {"format": fmt, "cells": cells, "content_type": CONTENT_TYPE, "text": collected.collector.prometheus()}
    return {"format": fmt, "cells": cells, "metrics": collected.collector.as_json()}


METHODS: dict[str, Handler] = {"runtime/metrics": metrics}
