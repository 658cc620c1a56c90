"""The batch_* methods' shared shape: each entry is checked against the single method's schema
and succeeds or fails on its own; results come back in request order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime import faults
from runtime.protocol import schemas
from runtime.protocol.errors import to_wire_error


def run_entries(method: str, entries: list[Any], run: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """`run` each entry that fits `method`'s params; one {success, result, error, ...} per entry."""
    schema = schemas.method_schemas()[method]
    results = []
    for index, entry in enumerate(entries):
        try:
            problems = schemas.check(schema, "params", entry)
            if problems:
                raise faults.InvalidInput(
                    [{"path": f"/requests/{index}{p['path']}", "message": p["message"]} for p in problems]
                )
            results.append({"success": True, "result": run(entry), "error": None})
        except Exception as exc:
            error = to_wire_error(exc)
            results.append(
                {
                    "success": False,
                    "result": None,
                    "error": error["message"],
                    "code": error["code"],
                    "data": error.get("data"),
                }
            )
    return results
