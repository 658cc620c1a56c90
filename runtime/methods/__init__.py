"""The method table: each handler module declares its `METHODS`; `build` checks the table 1:1
against schemas/ at start-up, so no method runs without a schema and no schema names a ghost."""

from __future__ import annotations

from functools import partial

from runtime.methods import drafts, generate, metrics, models, pooling, registry, runtime, sessions, tokenize
from runtime.methods.context import Handler, Services
from runtime.methods.ondemand import on_demand
from runtime.protocol import schemas
from runtime.protocol.dispatch import Method, build_method_table

MODULES = (runtime, models, registry, generate, pooling, tokenize, drafts, sessions, metrics)
# Methods that name models and load registered ones on demand (load_model loads by itself).
ON_DEMAND = frozenset(
    {
        "generate",
        "generate_with_image",
        "batch_generate",
        "tokenize",
        "count_tokens",
        "embed",
        "rerank",
        "batch_tokenize",
        "detokenize",
        "check_draft",
        "batch_check_draft",
        "set_draft",
        "session/load",
    }
)


def method_names() -> list[str]:
    return [name for module in MODULES for name in module.METHODS]


def capabilities() -> list[str]:
    """What runtime/ready and runtime/info advertise: every method a host may call by name."""
    return sorted(name for name in method_names() if not name.startswith("$/"))


def build(services: Services) -> dict[str, Method]:
    table = build_method_table(
        [
            Method(name, partial(_wrapped(name, handler), services))
            for module in MODULES
            for name, handler in module.METHODS.items()
        ]
    )
    if not set(table) >= ON_DEMAND:
        raise RuntimeError(f"ON_DEMAND names methods that do not exist: {sorted(ON_DEMAND - set(table))}")
    documented = schemas.method_schemas()
    if sorted(table) != sorted(documented):  # a method without a schema, or a schema without a method
        raise RuntimeError(f"the method table and schemas/ differ: {sorted(set(table) ^ set(documented))}")
    return table


def _wrapped(name: str, handler: Handler) -> Handler:
    return on_demand(handler) if name in ON_DEMAND else handler
