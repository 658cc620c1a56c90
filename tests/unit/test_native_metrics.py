"""The native metric cells: the same output as the pure-Python cells for the same updates, every
update counted under concurrency, and the same refusals. Skipped where the module is not built."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.engine import native
from runtime.metrics import Collector, RuntimeMetrics
from runtime.metrics.collector import PYTHON_CELLS, Cells, native_cells
from tests.unit.test_metrics import families

MODULE = native.module()
pytestmark = pytest.mark.skipif(
    MODULE is None or not hasattr(MODULE, "CounterCell"),
    reason=f"native module not in use: {native.status()['reason']}",
)


def module_cells() -> Cells:
    return native_cells(MODULE)


def fill(collector: Collector) -> Collector:
    """The same updates, whatever the cells."""
    collector.counter("x_requests_total", "Requests.", {"finished_reason": "stop"}).inc(3)
    collector.counter("x_requests_total", "Requests.", {"finished_reason": "length"}).inc(0.5)
    collector.gauge("x_running", "Running.").set(2)
    latency = collector.histogram("x_latency_seconds", "Latency.", buckets=(0.1, 1.0, 10.0))
    for v in (0.05, 0.1, 0.2, 1.0, 5.0, 50.0, float("inf")):
        latency.observe(v)
    return collector


def test_native_cells_render_exactly_what_python_cells_render() -> None:
    python, native_ = fill(Collector(PYTHON_CELLS)), fill(Collector(module_cells()))
    assert native_.prometheus() == python.prometheus()
    assert native_.as_json() == python.as_json()
    families(native_.prometheus())


def test_the_runtimes_metric_set_is_the_same_on_native_cells() -> None:
    assert RuntimeMetrics(Collector(module_cells())).collector.as_json() == RuntimeMetrics().collector.as_json()


@pytest.mark.parametrize("cells", [PYTHON_CELLS, None], ids=["python", "native"])
def test_both_cells_refuse_a_falling_counter_and_unordered_bounds(cells: Any) -> None:
    collector = Collector(cells or module_cells())
    with pytest.raises(ValueError, match="only goes up"):
        collector.counter("a_total").inc(-1)
    with pytest.raises(ValueError, match="strictly increasing"):
        collector.histogram("b_seconds", buckets=(1.0, 1.0))
