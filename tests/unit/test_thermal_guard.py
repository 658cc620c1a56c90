"""The thermal guard as a state machine: a fake probe and a fake clock, the real admission queue."""

from __future__ import annotations

from typing import Any

from runtime.scheduler.queue import AdmissionQueue
from runtime.scheduler.thermal import GuardedSource, ThermalGuard


class World:
    def __init__(self) -> None:
        self.now, self.celsius = 0.0, 40.0
        self.reads = 0

    def clock(self) -> float:
        return self.now

    def probe(self) -> list[dict[str, Any]]:
        self.reads += 1
        return [{"zone": "thermal_zone0", "type": "x86_pkg_temp", "celsius": self.celsius}]


def source(policy: str, world: World, jobs: int = 3) -> GuardedSource[str]:
    queue: AdmissionQueue[str] = AdmissionQueue(max_active=8, max_queued=8)
    for i in range(jobs):
        queue.reserve(f"s{i}")
        queue.submit(f"s{i}", f"job{i}")
    return GuardedSource(queue, ThermalGuard(policy, 85, 2.0, world.probe, world.clock))


def test_a_cool_machine_admits_everything_and_the_policy_off_never_reads_the_probe() -> None:
    world = World()
    assert source("pace", world).take(0) == ["job0", "job1", "job2"]
    hot = World()
    hot.celsius = 99.0
    off = source("off", hot)
    assert off.take(0) == ["job0", "job1", "job2"] and off.guard.snapshot()["pressure"] is None
    assert hot.reads == 0


def test_pause_holds_new_streams_while_hot_and_admits_them_once_it_cools() -> None:
    world = World()
    world.celsius = 90.0
    guarded = source("pause", world)
    guarded.wake = lambda: None
    assert guarded.take(0) == [] and guarded.waiting() == 0
    snapshot = guarded.guard.snapshot()
    assert snapshot["admissions"] == "paused" and "90.0" in snapshot["reason"]
    world.celsius, world.now = 70.0, 1.5  # cooler, and the probe's second has passed
    assert guarded.waiting() == 3 and guarded.take(1.5) == ["job0", "job1", "job2"]


def test_pace_admits_one_stream_per_interval_while_serious_and_none_while_critical() -> None:
    world = World()
    world.celsius = 88.0
    guarded = source("pace", world)
    guarded.wake = lambda: None
    assert guarded.take(0) == ["job0"]
    world.now = 1.0
    assert guarded.take(1.0) == []
    world.now = 2.1
    assert guarded.take(2.1) == ["job1"] and guarded.guard.snapshot()["admissions"] == "paced"
    world.celsius, world.now = 96.0, 4.5
    assert guarded.take(4.5) == [] and guarded.guard.pressure() == "critical"


def test_the_probe_is_read_at_most_once_a_second() -> None:
    world = World()
    guarded = source("pause", world)
    for _ in range(50):
        guarded.guard.pressure()
    world.now = 1.2
    guarded.guard.pressure()
    assert world.reads == 2


def test_a_held_queue_wakes_the_engine_later_and_that_turn_sees_the_real_count() -> None:
    world = World()
    world.celsius = 90.0
    guarded = source("pause", world, jobs=1)
    woken: list[bool] = []
    guarded.wake = lambda: woken.append(True)
    assert guarded.waiting() == 0
    assert guarded._timer is not None
    guarded._timer.join(2.0)
    # every waiting() before the turn's expired() sees the real count (the engine's idle check
    # runs first), so the turn looks at the queue's deadlines; after it the engine sleeps again
    assert woken == [True] and guarded.waiting() == 1 and guarded.waiting() == 1
    assert guarded.expired(0.0) == [] and guarded.take(0.0) == []
    assert guarded.waiting() == 0
