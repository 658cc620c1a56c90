"""Counters, gauges and log-bucket histograms, thread-safe, rendered as Prometheus text or JSON.

The interface is deliberately small (`counter(name).inc(n)`, `gauge(name).set(v)`,
`histogram(name).observe(v)`, `prometheus()`, `as_json()`). Where counters and histograms keep
their numbers is a `Cells` choice: the pure-Python cells here (a lock each), or the native module's
(`native_cells`: C++ atomics and a mutex, updated with the GIL released, so the engine and writer
threads record without holding it). The output is the same either way: this module renders both.
No MLX, no numpy here; the app hands the native module in.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

Labels = tuple[tuple[str, str], ...]


def log_buckets(low: float, high: float, per_decade: int = 4) -> tuple[float, ...]:
    """Upper bounds spaced evenly in log10 from `low` to at least `high` (rounded to 4 significant digits)."""
    if not (0 < low < high) or per_decade < 1:
        raise ValueError("log_buckets needs 0 < low < high and per_decade >= 1")
    steps = math.ceil(round(math.log10(high / low) * per_decade, 9))
    return tuple(float(f"{low * 10 ** (i / per_decade):.4g}") for i in range(steps + 1))


class Counter:
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def inc(self, n: float = 1) -> None:
        if n < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._value += n

    @property
    def value(self) -> float:
        return self._value


class Gauge:
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0.0

    def set(self, v: float) -> None:
        self._value = float(v)  # one store: atomic under the GIL

    def inc(self, n: float = 1) -> None:
        with self._lock:
            self._value += n

    def dec(self, n: float = 1) -> None:
        self.inc(-n)

    @property
    def value(self) -> float:
        return self._value


class Histogram:
    """Counts per bucket (not cumulative inside; cumulated when read), a sum and a count."""

    __slots__ = ("_lock", "bounds", "_counts", "_sum", "_count")

    def __init__(self, bounds: Sequence[float]) -> None:
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self._lock = threading.Lock()
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last is +Inf
        self._sum = 0.0
        self._count = 0

    def observe(self, v: float) -> None:
        i = bisect_left(self.bounds, v)  # le semantics: v == bound falls in that bucket
        with self._lock:
            self._counts[i] += 1
            self._sum += v
            self._count += 1

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """Cumulative (upper bound, count) pairs ending with +Inf, the sum and the count."""
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        return _cumulative(self.bounds, counts), total, count


def _cumulative(bounds: tuple[float, ...], counts: Sequence[int]) -> list[tuple[float, int]]:
    cumulative, running = [], 0
    for bound, n in zip((*bounds, math.inf), counts, strict=True):
        running += n
        cumulative.append((bound, running))
    return cumulative


class CounterCell(Protocol):
    def inc(self, n: float = 1) -> None: ...

    @property
    def value(self) -> float: ...


class HistogramCell(Protocol):
    bounds: tuple[float, ...]

    def observe(self, v: float) -> None: ...

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]: ...


class NativeHistogram:
    """The native module's histogram cell behind the same interface as `Histogram`."""

    __slots__ = ("_cell", "bounds", "observe")

    def __init__(self, cell: Any) -> None:
        self._cell, self.bounds = cell, tuple(cell.bounds)
        self.observe = cell.observe  # bound once: each observation is one call into C++

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        counts, total, count = self._cell.read()
        return _cumulative(self.bounds, counts), float(total), int(count)


@dataclass(frozen=True)
class Cells:
    """Where counters and histograms keep their numbers."""

    kind: str  # "python" or "native"
    counter: Callable[[], CounterCell]
    histogram: Callable[[tuple[float, ...]], HistogramCell]


PYTHON_CELLS = Cells("python", Counter, Histogram)


def native_cells(module: Any) -> Cells:
    """Cells from the native module (runtime.engine.native.module()): C++ atomics and a mutex."""
    return Cells("native", module.CounterCell, lambda bounds: NativeHistogram(module.HistogramCell(list(bounds))))


Metric = CounterCell | Gauge | HistogramCell


class _Family:
    __slots__ = ("name", "kind", "help", "bounds", "children")

    def __init__(self, name: str, kind: str, help: str, bounds: tuple[float, ...] | None) -> None:
        self.name, self.kind, self.help, self.bounds = name, kind, help, bounds
        self.children: dict[Labels, Metric] = {}


class Collector:
    """Named metric families; each distinct label set is its own child, created on first use.

    Look a child up once and keep it: `inc`/`set`/`observe` on a kept child take one small lock.
    """

    def __init__(self, cells: Cells = PYTHON_CELLS) -> None:
        self.cells = cells
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}

    def counter(self, name: str, help: str = "", labels: Mapping[str, str] | None = None) -> CounterCell:
        return cast(CounterCell, self._child(name, "counter", help, None, labels))

    def gauge(self, name: str, help: str = "", labels: Mapping[str, str] | None = None) -> Gauge:
        return cast(Gauge, self._child(name, "gauge", help, None, labels))

    def histogram(
        self,
        name: str,
        help: str = "",
        buckets: Sequence[float] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> HistogramCell:
        bounds = tuple(buckets) if buckets is not None else log_buckets(1e-4, 100.0)
        return cast(HistogramCell, self._child(name, "histogram", help, bounds, labels))

    def _child(
        self, name: str, kind: str, help: str, bounds: tuple[float, ...] | None, labels: Mapping[str, str] | None
    ) -> Metric:
        key: Labels = tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items()))
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = self._families[name] = _Family(name, kind, help, bounds)
            elif family.kind != kind:
                raise ValueError(f"metric {name} is a {family.kind}, not a {kind}")
            child = family.children.get(key)
            if child is None:
                child = family.children[key] = self._new(kind, family.bounds or ())
            return child

    def _new(self, kind: str, bounds: tuple[float, ...]) -> Metric:
        if kind == "histogram":
            if not bounds or list(bounds) != sorted(set(bounds)):
                raise ValueError("histogram bounds must be strictly increasing")
            return self.cells.histogram(bounds)
        return self.cells.counter() if kind == "counter" else Gauge()

    def _families_snapshot(self) -> list[tuple[_Family, list[tuple[Labels, Metric]]]]:
        with self._lock:
            return [(f, list(f.children.items())) for f in self._families.values()]

    def prometheus(self) -> str:
        """The text exposition format 0.0.4: # HELP, # TYPE, then the samples of each family."""
        lines: list[str] = []
        for family, children in self._families_snapshot():
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for labels, child in children:
                if family.kind == "histogram":
                    buckets, total, count = cast(HistogramCell, child).snapshot()
                    for bound, n in buckets:
                        le = (*labels, ("le", _number(bound)))
                        lines.append(f"{family.name}_bucket{_labels(le)} {n}")
                    lines.append(f"{family.name}_sum{_labels(labels)} {_number(total)}")
                    lines.append(f"{family.name}_count{_labels(labels)} {count}")
                else:
                    lines.append(f"{family.name}{_labels(labels)} {_number(_value(child))}")
        return "\n".join(lines) + "\n" if lines else ""

    def as_json(self) -> dict[str, Any]:
        """{name: {type, help, samples: [{labels, value} | {labels, count, sum, buckets: [{le, count}]}]}}."""
        out: dict[str, Any] = {}
        for family, children in self._families_snapshot():
            samples: list[dict[str, Any]] = []
            for labels, child in children:
                if family.kind == "histogram":
                    buckets, total, count = cast(HistogramCell, child).snapshot()
                    samples.append(
                        {
                            "labels": dict(labels),
                            "count": count,
                            "sum": total,
                            "buckets": [{"le": _number(b), "count": n} for b, n in buckets],
                        }
                    )
                else:
                    value = _value(child)
                    samples.append({"labels": dict(labels), "value": int(value) if value.is_integer() else value})
            out[family.name] = {"type": family.kind, "help": family.help, "samples": samples}
        return out


def _value(child: Metric) -> float:
    return float(cast(CounterCell | Gauge, child).value)


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"
