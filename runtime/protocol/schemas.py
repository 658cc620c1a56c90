"""Load the packaged JSON Schemas once and validate params, results and notifications.

`schemas/` (repo root) is the single source of truth; the wheel carries it as `runtime/schemas`.
Validation failures become `[{path, message}]` lists written by us, never library text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from runtime import faults

PACKAGED = Path(__file__).resolve().parents[1] / "schemas"
SOURCE_TREE = Path(__file__).resolve().parents[2] / "schemas"


def schema_dir() -> Path:
    for candidate in (PACKAGED, SOURCE_TREE):
        if (candidate / "common.json").is_file():
            return candidate
    raise FileNotFoundError(f"schemas not found in {PACKAGED} or {SOURCE_TREE}")


@cache
def _documents() -> dict[str, dict[str, Any]]:
    root = schema_dir()
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}


@cache
def _registry() -> Registry:
    resources = [(doc["$id"], Resource.from_contents(doc)) for doc in _documents().values()]
    return Registry().with_resources(resources)


def _by_name(folder: str, key: str) -> dict[str, dict[str, Any]]:
    return {doc[key]: doc for path, doc in _documents().items() if path.startswith(folder + "/")}


def method_schemas() -> dict[str, dict[str, Any]]:
    """Method name -> its schema document (`x-method` names it)."""
    return _by_name("methods", "x-method")


def notification_schemas() -> dict[str, dict[str, Any]]:
    return _by_name("notifications", "x-notification")


def document(name: str) -> dict[str, Any]:
    """A schema document by its path under schemas/ (e.g. "models-file.json")."""
    return _documents()[name]


def error_table() -> list[dict[str, Any]]:
    codes: list[dict[str, Any]] = _documents()["errors.json"]["x-codes"]
    return codes


@cache
def _validator(document_id: str, definition: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{document_id}#/$defs/{definition}"}, registry=_registry())


def check(document: dict[str, Any], definition: str, value: Any) -> list[dict[str, str]]:
    """Every problem with `value` against `document`'s `$defs[definition]`, as {path, message}."""
    validator = _validator(document["$id"], definition)
    problems: list[dict[str, str]] = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        problems.extend(_describe(error))
    return problems


def validate_params(method: str, params: Any) -> None:
    """Raise InvalidInput with field-level errors when `params` do not fit `method`."""
    problems = check(method_schemas()[method], "params", params)
    if problems:
        raise faults.InvalidInput(problems)


def _pointer(path: Any, *extra: str) -> str:
    parts = [str(p) for p in path] + list(extra)
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts) if parts else ""


def _describe(error: ValidationError) -> list[dict[str, str]]:
    kind, expected, path = error.validator, error.validator_value, error.absolute_path
    if kind == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        return [{"path": _pointer(path, k), "message": "is required"} for k in expected if k not in present]
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in known] if isinstance(error.instance, dict) else []
        return [{"path": _pointer(path, k), "message": "is not a known field"} for k in extra]
    return [{"path": _pointer(path), "message": _message(kind, expected, error)}]


def _message(kind: str, expected: Any, error: ValidationError) -> str:
    simple: dict[str, Callable[[], str]] = {
        "type": lambda: f"must be of type {_type_words(expected)}",
        "minimum": lambda: f"must be >= {expected}",
        "maximum": lambda: f"must be <= {expected}",
        "exclusiveMinimum": lambda: f"must be > {expected}",
        "exclusiveMaximum": lambda: f"must be < {expected}",
        "minLength": lambda: f"must be at least {expected} characters long",
        "maxLength": lambda: f"must be at most {expected} characters long",
        "minItems": lambda: f"must have at least {expected} items",
        "maxItems": lambda: f"must have at most {expected} items",
        "minProperties": lambda: f"must have at least {expected} fields",
        "maxProperties": lambda: f"must have at most {expected} fields",
        "uniqueItems": lambda: "must not contain duplicate items",
        "enum": lambda: "must be one of " + ", ".join(json.dumps(v) for v in expected),
        "const": lambda: f"must be {json.dumps(expected)}",
        "pattern": lambda: f"must match the pattern {expected}",
        "propertyNames": lambda: "has a field name that is not allowed",
        "not": lambda: "is not allowed here",
    }
    if kind in simple:
        return simple[kind]()
    if kind in ("oneOf", "anyOf"):
        message: str = error.schema.get("x-error", "does not match any of the allowed forms")
        return message
    return f"is invalid ({kind})"


def _type_words(expected: Any) -> str:
    return " or ".join(expected) if isinstance(expected, list) else str(expected)
