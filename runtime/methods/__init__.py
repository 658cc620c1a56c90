"""The method table: every wire method, built explicitly (checked 1:1 against schemas/)."""

from __future__ import annotations

from runtime.methods import drafts, generate, models, runtime, sessions, tokenize
from runtime.methods.context import Services
from runtime.protocol.dispatch import Method, build_method_table

METHOD_NAMES = [
    "runtime/info",
    "runtime/state",
    "shutdown",
    "load_model",
    "load_vision_model",
    "unload_model",
    "generate",
    "generate_with_image",
    "batch_generate",
    "cancel",
    "$/cancelRequest",
    "tokenize",
    "batch_tokenize",
    "detokenize",
    "check_draft",
    "batch_check_draft",
    "set_draft",
    "session/save",
    "session/load",
    "session/list",
    "session/drop",
]


def build(services: Services) -> dict[str, Method]:
    table = build_method_table(
        runtime.methods(services, METHOD_NAMES)
        + models.methods(services)
        + generate.methods(services)
        + tokenize.methods(services)
        + drafts.methods(services)
        + sessions.methods(services)
    )
    if sorted(table) != sorted(METHOD_NAMES):
        raise RuntimeError(f"method table and METHOD_NAMES differ: {sorted(set(table) ^ set(METHOD_NAMES))}")
    return table
