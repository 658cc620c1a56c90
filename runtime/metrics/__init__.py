"""Metrics: a small thread-safe collector (counters, gauges, log-bucket histograms) and the runtime's
metric set, rendered by the `runtime/metrics` method as Prometheus text or JSON. Pure Python."""

from runtime.metrics.collector import Collector, Counter, Gauge, Histogram, log_buckets
from runtime.metrics.streams import PREFIX, RuntimeMetrics

__all__ = ["PREFIX", "Collector", "Counter", "Gauge", "Histogram", "RuntimeMetrics", "log_buckets"]
