"""JSON Schemas with nothing that bounds their output (open objects, $refs, unbounded strings,
arrays and numbers, `{}`): what fit_max_tokens must tighten. Shared by its unit and end-to-end tests."""

from __future__ import annotations

from typing import Any

OPEN_SCHEMAS: list[dict[str, Any]] = [
    {"type": "object"},
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    },
    {"type": "array", "items": {"type": "number"}},
    {
        "$defs": {"pet": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}},
        "type": "object",
        "properties": {"first": {"$ref": "#/$defs/pet"}, "second": {"$ref": "#/$defs/pet"}},
        "required": ["first"],
    },
    {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]+$"}, "note": {"type": ["string", "null"]}},
    },
    {"anyOf": [{"type": "integer"}, {"type": "object", "additionalProperties": {"type": "boolean"}}]},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date"}, "any": {}}, "required": ["when"]},
]
