"""Stream registry: legal transitions only, exactly one terminal transition per stream, no leaks."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from runtime.scheduler.registry import (
    DuplicateStream,
    IllegalTransition,
    RegistryClosed,
    StreamRegistry,
    StreamState,
)


def test_a_stream_goes_queued_prefilling_decoding_finished() -> None:
    registry = StreamRegistry()
    record = registry.register("s", "m")
    registry.advance("s", StreamState.PREFILLING)
    registry.advance("s", StreamState.DECODING)
    assert registry.finish("s", "stop") is record and record.state is StreamState.FINISHED
    assert registry.active() == [] and registry.finished_total == 1
    registry.forget("s")
    assert registry.wait_idle(0.1)


def test_finishing_twice_reports_only_the_first_time() -> None:
    registry = StreamRegistry()
    registry.register("s", "m")
    assert registry.finish("s", "cancelled") is not None
    assert registry.finish("s", "stop") is None


@pytest.mark.parametrize(
    "path",
    [
        [StreamState.DECODING],
        [StreamState.PREFILLING, StreamState.PREFILLING],
        [StreamState.PREFILLING, StreamState.DECODING, StreamState.PREFILLING],
    ],
)
def test_illegal_transitions_raise(path: list[StreamState]) -> None:
    registry = StreamRegistry()
    registry.register("s", "m")
    with pytest.raises(IllegalTransition):
        for state in path:
            registry.advance("s", state)


def test_an_active_id_cannot_be_reused_but_a_finished_one_can() -> None:
    registry = StreamRegistry()
    registry.register("s", "m")
    with pytest.raises(DuplicateStream):
        registry.register("s", "m")
    registry.finish("s", "stop")
    with pytest.raises(DuplicateStream):  # its terminal notifications are not sent yet
        registry.register("s", "m")
    registry.forget("s")
    registry.register("s", "m")


def test_a_closed_registry_refuses_new_streams() -> None:
    registry = StreamRegistry()
    registry.close()
    with pytest.raises(RegistryClosed):
        registry.register("s", "m")


def test_cancel_where_flags_only_matching_streams() -> None:
    registry = StreamRegistry()
    a, b = registry.register("a", "m1", request_id=1), registry.register("b", "m2", request_id=2)
    assert registry.cancel_where(model_id="m1") == ["a"]
    assert a.cancel.is_set() and not b.cancel.is_set()
    assert registry.cancel("nope") is False


class RegistryMachine(RuleBasedStateMachine):
    """Random interleavings of register, advance, cancel and finish keep the books straight."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = StreamRegistry()
        self.registered = 0
        self.terminal_events: dict[str, int] = {}

    @rule(sid=st.sampled_from("abcdef"))
    def register(self, sid: str) -> None:
        try:
            self.registry.register(sid, "m")
            self.registered += 1
            self.terminal_events.setdefault(sid, 0)
        except DuplicateStream:
            assert self.registry.get(sid) is not None

    @rule(sid=st.sampled_from("abcdef"), state=st.sampled_from([StreamState.PREFILLING, StreamState.DECODING]))
    def advance(self, sid: str, state: StreamState) -> None:
        record = self.registry.get(sid)
        legal = record is not None and state in {
            StreamState.QUEUED: {StreamState.PREFILLING},
            StreamState.PREFILLING: {StreamState.DECODING},
        }.get(record.state, set())
        if legal:
            self.registry.advance(sid, state)
        else:
            with pytest.raises(IllegalTransition):
                self.registry.advance(sid, state)

    @rule(sid=st.sampled_from("abcdef"))
    def cancel(self, sid: str) -> None:
        self.registry.cancel(sid)

    @rule(sid=st.sampled_from("abcdef"), reason=st.sampled_from(["stop", "length", "cancelled", "error"]))
    def finish(self, sid: str, reason: str) -> None:
        if self.registry.finish(sid, reason) is not None:
            self.terminal_events[sid] = self.terminal_events.get(sid, 0) + 1
            assert self.registry.finish(sid, reason) is None  # never twice
            self.registry.forget(sid)

    @invariant()
    def counts_add_up(self) -> None:
        assert self.registered == len(self.registry.active()) + self.registry.finished_total
        assert sum(self.terminal_events.values()) == self.registry.finished_total


TestRegistryMachine = RegistryMachine.TestCase
TestRegistryMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
