"""The method table: each handler module declares its `METHODS`; `build` checks the table 1:1
against schemas/ at start-up, so no method runs without a schema and no schema names a ghost."""

from __future__ import annotations

from functools import partial

from runtime.methods import drafts, generate, metrics, models, runtime, sessions, tokenize
from runtime.methods.context import Services
from runtime.protocol import schemas
from runtime.protocol.dispatch import Method, build_method_table

MODULES = (runtime, models, generate, tokenize, drafts, sessions, metrics)


def method_names() -> list[str]:
    return [name for module in MODULES for name in module.METHODS]


def capabilities() -> list[str]:
    """What runtime/ready and runtime/info advertise: every method a host may call by name."""
    return sorted(name for name in method_names() if not name.startswith("$/"))


def build(services: Services) -> dict[str, Method]:
    table = build_method_table(
        [Method(name, partial(handler, services)) for module in MODULES for name, handler in module.METHODS.items()]
    )
    documented = schemas.method_schemas()
    if sorted(table) != sorted(documented):  # a method without a schema, or a schema without a method
        raise RuntimeError(f"the method table and schemas/ differ: {sorted(set(table) ^ set(documented))}")
    return table
