"""The registry's pure parts: keep-alive parsing, the catalog's own checks, and the idle timers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.catalog import CatalogError, from_document, parse_keep_alive
from runtime.scheduler.keepalive import IdleTimers


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("90s", 90.0),
        ("500ms", 0.5),
        ("300", 300.0),
        (300, 300.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0", 0.0),
        (-1, None),
        ("-1", None),
        ("-5m", None),
    ],
)
def test_keep_alive_reads_ollamas_durations_seconds_zero_and_negative(value: Any, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 m", "m5", "1m30", "", "5mm", True, None, [5]])
def test_a_keep_alive_that_does_not_parse_raises_with_an_example(value: Any) -> None:
    with pytest.raises(ValueError, match="5m"):
        parse_keep_alive(value)


@given(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"]))
def test_every_whole_duration_parses_to_its_seconds(number: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_keep_alive(f"{number}{unit}") == pytest.approx(number * factor)


def chat(**extra: Any) -> dict[str, Any]:
    return {"source": {"embedded": "tiny-chat"}, **extra}


def test_a_catalog_resolves_aliases_to_ids_and_keeps_each_entrys_options() -> None:
    catalog = from_document(
        {
            "default_model": "c",
            "models": {
                "chat": chat(aliases=["c"], keep_alive="10m", load={"cpu_weights": "fp32"}, draft="d"),
                "draft": {"source": {"hub": "owner/draft", "revision": "v1"}, "aliases": ["d"], "pinned": True},
            },
        },
        "models.json",
    )
    entry = catalog.lookup("c")
    assert entry is not None and entry.model_id == "chat" and entry.keep_alive == 600 and entry.keep_alive_set
    assert entry.load == {"cpu_weights": "fp32"} and catalog.canonical("d") == "draft"
    draft = catalog.lookup("draft")
    assert draft is not None and draft.kind == "hub" and draft.revision == "v1" and draft.pinned
    assert not draft.keep_alive_set
    assert catalog.lookup("nothing") is None


@pytest.mark.parametrize(
    ("models", "where"),
    [
        ({"a": chat(aliases=["b"]), "b": chat()}, "/models/a/aliases/0"),
        ({"a": chat(aliases=["x"]), "b": chat(aliases=["x"])}, "/models/b/aliases/0"),
        ({"a": chat(draft="a")}, "/models/a/draft"),
        ({"a": chat(draft="zz")}, "/models/a/draft"),
        ({"a/b": chat(keep_alive="later")}, "/models/a~1b/keep_alive"),
    ],
)
def test_the_catalog_refuses_what_a_schema_cannot_see_with_the_fields_path(models: dict[str, Any], where: str) -> None:
    with pytest.raises(CatalogError) as failure:
        from_document({"models": models}, None)
    assert failure.value.path == where


def test_a_local_path_outside_the_allowed_directories_is_refused(tmp_path: Any) -> None:
    inside, outside = tmp_path / "models" / "m", tmp_path / "elsewhere"
    document = {"models": {"m": {"source": {"path": str(inside)}}, "o": {"source": {"path": str(outside)}}}}
    with pytest.raises(CatalogError) as failure:
        from_document(document, None, (str(tmp_path / "models"),))
    assert failure.value.path == "/models/o/source/path"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_idle_model_falls_due_when_its_keep_alive_passes_and_not_before() -> None:
    clock = Clock()
    timers = IdleTimers(clock)
    timers.track("m", 10.0)
    clock.now += 9.9
    assert timers.due() == [] and timers.seconds_to_next() == pytest.approx(0.1)
    clock.now += 0.2
    assert timers.due() == ["m"]


def test_a_busy_model_never_falls_due_and_its_timer_restarts_when_the_last_stream_ends() -> None:
    clock = Clock()
    timers = IdleTimers(clock)
    timers.track("m", 5.0)
    timers.stream_opened("m")
    timers.stream_opened("m")
    clock.now += 60
    assert timers.due() == [] and timers.seconds_to_next() is None
    timers.stream_ended("m")
    assert timers.due() == [] and not timers.is_idle("m")
    timers.stream_ended("m")
    clock.now += 4
    assert timers.due() == [] and timers.snapshot("m")["expires_in_s"] == pytest.approx(1.0)
    clock.now += 1.5
    assert timers.due() == ["m"]


def test_a_keep_alive_of_zero_is_due_as_its_last_stream_ends_and_minus_one_or_pinned_never() -> None:
    clock = Clock()
    timers = IdleTimers(clock)
    timers.track("zero", 0.0)
    timers.track("never", None)
    timers.track("pinned", 0.0, pinned=True)
    for model in ("zero", "never", "pinned"):
        timers.stream_opened(model)
        timers.stream_ended(model)
    clock.now += 3600
    assert timers.due() == ["zero"]


def test_a_requests_keep_alive_replaces_the_models_and_due_models_come_oldest_first() -> None:
    clock = Clock()
    timers = IdleTimers(clock)
    timers.track("a", None)
    clock.now += 1
    timers.track("b", 1.0)
    timers.set_keep_alive("a", 1.0)
    clock.now += 5
    assert timers.due() == ["a", "b"]
    timers.forget("a")
    assert timers.due() == ["b"] and timers.snapshot("a")["keep_alive_s"] is None
