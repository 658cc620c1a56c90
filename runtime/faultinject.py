"""Test-only fault injection, off by default and unreachable from the wire.

The host that spawns the runtime may set RUNTIME_INJECT_FAULTS to a comma-separated list of fault
names; nothing else can turn a fault on. Each engine site asks `armed(name)` where the fault lives.
RUNTIME_INJECT_THERMAL_ROOT points the thermal probe at a directory of fake thermal zones.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

ENV = "RUNTIME_INJECT_FAULTS"
KNOWN = {
    "engine_crash_on_unload": "the engine thread dies while unloading (fatal path)",
    "stream_fault": "the sampler of a stream whose prompt holds STREAM_FAULT_MARKER raises at step 3",
    "slow_load": "every model load waits SLOW_LOAD_S before reading its weights (readiness tests)",
    "read_fails": "reading a model's weights fails (armed on one rank of a group through its hostfile's envs)",
}
SLOW_LOAD_S = 3.0
STREAM_FAULT_MARKER = "[[inject-stream-fault]]"
_armed = frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())
if _armed:
    log.warning("fault injection armed: %s", ", ".join(sorted(_armed)))
    unknown = _armed - KNOWN.keys()
    if unknown:
        raise SystemExit(f"{ENV}: unknown faults {sorted(unknown)}; known: {sorted(KNOWN)}")


# A thermal-zone directory read instead of /sys/class/thermal (tests of the thermal guard).
THERMAL_ROOT_ENV = "RUNTIME_INJECT_THERMAL_ROOT"
_thermal_root = os.environ.get(THERMAL_ROOT_ENV) or None
if _thermal_root:
    log.warning("thermal zones read from %s (%s)", _thermal_root, THERMAL_ROOT_ENV)


def thermal_root() -> str | None:
    return _thermal_root


class InjectedCrash(BaseException):
    """A BaseException on purpose: it must escape the engine's per-call error handling."""


def armed(name: str) -> bool:
    return name in _armed
