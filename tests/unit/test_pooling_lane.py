"""The embed/rerank lane and the embedding cache as state machines: bounded batches in admission
order, many jobs sharing a pass, cancel and deadlines, failures, and the cache's LRU bounds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from runtime import faults
from runtime.engine.events import Event, Finished, PromptStarted
from runtime.engine.jobs import PoolJob, PoolRequest
from runtime.engine.paths.pooling import PoolingLane
from runtime.scheduler.embed_cache import EmbeddingCache, input_key


@dataclass
class FakePooler:
    """Embeds an input as [its length, its first id]; records each pass's inputs."""

    passes: list[list[list[int]]] = field(default_factory=list)
    fail: bool = False
    task: str = "embed"
    seconds_per_token: float = 0.0  # a slow model: a pass takes this long per padded token

    def embed(self, batch: list[list[int]], pooling: str) -> Any:
        self.passes.append(batch)
        if self.seconds_per_token:
            time.sleep(self.seconds_per_token * len(batch) * max(len(ids) for ids in batch))
        if self.fail:
            raise RuntimeError("boom")
        return np.array([[len(ids), ids[0] if ids[0] >= 0 else np.nan] for ids in batch], dtype=np.float32)

    def score(self, batch: list[list[int]]) -> Any:
        """Scores an input len/100; a first id of -1 scores NaN, -2 infinity."""
        self.passes.append(batch)
        bad = {-1: np.nan, -2: np.inf}
        return np.array([bad.get(ids[0], len(ids) / 100) for ids in batch], dtype=np.float32)


@dataclass
class FakeLoaded:
    model_id: str
    pooler: FakePooler
    alive: threading.Event = field(default_factory=lambda: _set(threading.Event()))


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


def job(name: str, loaded: FakeLoaded, inputs: list[list[int]], events: list[Event], op: str = "embed") -> PoolJob:
    request = PoolRequest(op, tuple(inputs), "mean")  # type: ignore[arg-type]
    return PoolJob(name, loaded, request, events.append, threading.Event(), 0.0)  # type: ignore[arg-type]


def finished(events: list[Event]) -> list[Finished]:
    return [e for e in events if isinstance(e, Finished)]


def test_a_job_runs_in_passes_of_at_most_the_batch_size_shortest_inputs_first() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    lane = PoolingLane(max_batch=4, max_tokens=1000)
    inputs = [[1] * n for n in (5, 1, 3, 2, 4, 6, 7, 8, 9, 10)]
    lane.add(job("a", loaded, inputs, events))
    assert isinstance(events[0], PromptStarted) and events[0].path == "pooling"
    steps = 0
    while len(lane):
        lane.step(0.0)
        steps += 1
    assert steps == 3 and [len(p) for p in loaded.pooler.passes] == [4, 4, 2]
    assert [len(ids) for ids in loaded.pooler.passes[0]] == [1, 2, 3, 4]
    (end,) = finished(events)
    assert end.reason == "stop" and end.pooled is not None and end.pooled.batches == 3
    assert [int(row[0]) for row in end.pooled.rows] == [5, 1, 3, 2, 4, 6, 7, 8, 9, 10]  # in input order


def test_small_jobs_of_one_model_share_a_pass_and_other_models_wait_their_turn() -> None:
    first, second, events = FakeLoaded("m", FakePooler()), FakeLoaded("n", FakePooler()), []
    lane = PoolingLane(max_batch=8, max_tokens=1000)
    lane.add(job("a", first, [[1]], events))
    lane.add(job("b", second, [[2]], events))
    lane.add(job("c", first, [[3], [4]], events))
    lane.step(0.0)
    assert first.pooler.passes == [[[1], [3], [4]]] and second.pooler.passes == []
    lane.step(0.0)
    assert second.pooler.passes == [[[2]]]
    assert sorted(e.prompt_tokens for e in finished(events)) == [1, 1, 2]


def test_a_pass_never_holds_more_padded_tokens_than_the_bound() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    lane = PoolingLane(max_batch=32, max_tokens=100)
    lane.add(job("a", loaded, [[1] * 30, [1] * 30, [1] * 30, [1] * 30, [1] * 250], events))
    while len(lane):
        lane.step(0.0)
    assert [len(p) for p in loaded.pooler.passes] == [3, 1, 1]  # 3 x 30 fits; 4 x 30 does not; 250 alone
    assert finished(events)[0].reason == "stop"


def test_while_streams_decode_pooling_gets_half_the_engine_time() -> None:
    loaded, events = FakeLoaded("m", FakePooler(seconds_per_token=0.0005)), []  # 5 ms per 10-token input
    lane = PoolingLane(max_batch=32, max_tokens=10_000)
    lane.add(job("a", loaded, [[1] * 10] * 40, events))
    lane.step(0.0, decode_s=0.001)  # the model's speed is not known yet: one input, to measure it
    assert [len(p) for p in loaded.pooler.passes] == [1]
    for _ in range(4):  # 1 ms decode steps earn 4 ms: not enough for one 5 ms input
        lane.step(0.0, decode_s=0.001)
    assert len(loaded.pooler.passes) == 1
    lane.step(0.0, decode_s=0.003)  # 7 ms earned: one input (two would need 10 ms)
    assert [len(p) for p in loaded.pooler.passes] == [1, 1]
    lane.step(0.0, decode_s=0.02)  # a 20 ms decode step earns about four inputs
    assert 2 <= len(loaded.pooler.passes[-1]) <= 5
    lane.step(0.0)  # no stream decoding: the full bound
    assert len(loaded.pooler.passes[-1]) == 32


def test_a_cancelled_job_ends_between_passes_and_leaves_the_others_running() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    lane = PoolingLane(max_batch=2, max_tokens=1000)
    doomed, kept = job("a", loaded, [[1]] * 6, events), job("b", loaded, [[2]], events)
    lane.add(doomed)
    lane.add(kept)
    lane.step(0.0)
    doomed.cancel.set()
    while len(lane):
        lane.step(0.0)
    reasons = {e.prompt_tokens: e.reason for e in finished(events)}
    assert reasons == {6: "cancelled", 1: "stop"}
    assert loaded.pooler.passes[-1] == [[2]]


def test_a_job_past_its_deadline_times_out() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    lane = PoolingLane()
    late = job("a", loaded, [[1]], events)
    late.deadline = 5.0
    lane.add(late)
    lane.step(10.0)
    assert finished(events)[0].reason == "timeout" and loaded.pooler.passes == []


def test_a_failed_pass_ends_its_jobs_with_an_error_and_a_nan_row_names_the_input() -> None:
    broken, events = FakeLoaded("m", FakePooler(fail=True)), []
    lane = PoolingLane()
    lane.add(job("a", broken, [[1]], events))
    lane.step(0.0)
    assert finished(events)[0].reason == "error" and "boom" in str(finished(events)[0].failure)
    nan_events: list[Event] = []
    lane.add(job("b", FakeLoaded("n", FakePooler()), [[1], [-1]], nan_events))
    lane.step(0.0)
    (end,) = finished(nan_events)
    assert end.reason == "error" and "input 1" in str(end.failure) and "NaN" in str(end.failure)
    assert not len(lane)


def test_a_nan_or_infinite_rerank_score_fails_its_job_naming_the_document() -> None:
    loaded, lane = FakeLoaded("m", FakePooler()), PoolingLane()
    for bad in (-1, -2):
        events: list[Event] = []
        lane.add(job("a", loaded, [[1] * 10, [bad, 1], [1] * 5], events, op="score"))
        lane.step(0.0)
        (end,) = finished(events)
        assert end.reason == "error" and end.pooled is None
        assert "document 1" in str(end.failure) and "NaN or inf" in str(end.failure)
        assert isinstance(end.failure, faults.GenerationFailed)  # -32002, as for a non-finite vector
        assert not len(lane)


def test_unloading_a_model_ends_its_jobs() -> None:
    loaded, other, events = FakeLoaded("m", FakePooler()), FakeLoaded("n", FakePooler()), []
    lane = PoolingLane()
    lane.add(job("a", loaded, [[1]], events))
    lane.add(job("b", other, [[1]], events))
    lane.end_model("m")
    assert [e.reason for e in finished(events)] == ["cancelled"]
    lane.step(0.0)
    assert [e.reason for e in finished(events)] == ["cancelled", "stop"]


def test_a_job_whose_model_was_unloaded_while_it_waited_ends_with_model_not_loaded() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    loaded.alive.clear()
    lane = PoolingLane()
    lane.add(job("a", loaded, [[1]], events))
    (end,) = finished(events)
    assert end.reason == "error" and "not loaded" in str(end.failure) and not len(lane)


def test_rerank_jobs_get_one_score_per_input() -> None:
    loaded, events = FakeLoaded("m", FakePooler()), []
    lane = PoolingLane()
    lane.add(job("a", loaded, [[1] * 10, [1] * 50], events, op="score"))
    lane.step(0.0)
    (end,) = finished(events)
    assert end.pooled is not None and end.pooled.rows == pytest.approx((0.1, 0.5))


def test_the_cache_keeps_the_most_recent_entries_within_its_entry_and_byte_bounds() -> None:
    cache = EmbeddingCache(max_entries=3, max_bytes=40)
    keys = [input_key("m", "f", "mean", [i]) for i in range(5)]
    for key in keys[:3]:
        cache.put(key, b"x" * 10)
    assert cache.get(keys[0]) == b"x" * 10  # now the most recent
    cache.put(keys[3], b"y" * 10)  # a fourth entry: the least recent (keys[1]) goes
    assert cache.get(keys[1]) is None and cache.get(keys[0]) is not None
    cache.put(keys[4], b"z" * 25)  # 55 bytes: entries go until it fits 40
    assert cache.get(keys[4]) == b"z" * 25
    stats = cache.stats()
    assert stats.bytes <= 40 and stats.entries == 2
    assert stats.hits == 3 and stats.misses == 1


def test_cache_keys_differ_by_model_fingerprint_pooling_and_tokens() -> None:
    base = input_key("m", "f", "mean", [1, 2, 3])
    assert base == input_key("m", "f", "mean", [1, 2, 3])
    others = [
        input_key("n", "f", "mean", [1, 2, 3]),
        input_key("m", "g", "mean", [1, 2, 3]),
        input_key("m", "f", "cls", [1, 2, 3]),
        input_key("m", "f", "mean", [1, 2, 4]),
    ]
    assert all(other != base for other in others)


def test_a_cache_sized_zero_keeps_nothing() -> None:
    cache = EmbeddingCache(0, 0)
    key = input_key("m", "f", "mean", [1])
    cache.put(key, b"x")
    assert not cache.enabled and cache.get(key) is None
