"""`fit_max_tokens`: a JSON Schema tightened until every output it allows fits the token budget.

The guarantee is a proof by bytes. The grammar writes JSON with fixed separators and no free
whitespace, every token the grammar allows writes at least one byte, so an output is complete
within `max_tokens` when the longest JSON text the tightened schema allows (its worst case, in
bytes) is at most `max_tokens - 1` (one token is kept for the end of the stream).

Tightening only narrows what the schema allows, so every output still validates against the
schema as given: upper bounds come down (`maxLength`, `maxItems`, `maxProperties`, integer and
number ranges, decimal places through `multipleOf`), objects with declared properties are closed,
objects without any get at most a few short keys, and an unconstrained value (`{}`, `true`) becomes
a short string, integer, boolean or null. Lower bounds are never raised above: a schema whose
smallest caps still do not fit is refused with the budget it needs. Caps go down a ladder, from
generous to minimal, and the first rung that fits is used. `$ref`s are inlined first; a recursive
one is refused, since no finite bound exists.
"""

from __future__ import annotations

import json
import math
import warnings
from decimal import Decimal
from typing import Any

# (string length, array items, open-object keys, key length, integer digits, decimal places)
LADDER: list[tuple[int, int, int, int, int, int]] = [
    (256, 16, 8, 16, 12, 6),
    (128, 8, 6, 12, 9, 4),
    (64, 8, 4, 8, 9, 3),
    (32, 4, 4, 8, 6, 2),
    (16, 4, 2, 6, 6, 2),
    (8, 2, 2, 4, 4, 1),
    (4, 2, 1, 3, 3, 1),
    (2, 1, 1, 2, 2, 0),
    (1, 1, 1, 1, 1, 0),
    (0, 0, 0, 1, 1, 0),
]
ESCAPED_CHAR = 6  # the longest way JSON can write one character: \uXXXX
SEPARATOR = 2  # ", " and ": "
COMPOSITIONS = ("anyOf", "oneOf", "allOf")


class CannotBound(ValueError):
    """The schema has no finite worst case (a recursive $ref)."""


class TooSmall(ValueError):
    def __init__(self, needed_tokens: int) -> None:
        super().__init__(f"max_tokens must be at least {needed_tokens} for every output to be complete")
        self.needed_tokens = needed_tokens


MAX_INLINED_NODES = 20_000  # $refs used many times over can multiply a small schema without end


def fit(schema: dict[str, Any] | bool, max_tokens: int) -> tuple[dict[str, Any] | bool, int]:
    """The tightened schema and its worst case in bytes, or TooSmall with the budget it needs."""
    inlined = _inline(schema, schema, (), [0])
    budget = max_tokens - 1
    worst = math.inf
    for caps in LADDER:
        tightened = _tighten(inlined, caps)
        worst = worst_bytes(tightened)
        if worst <= budget:
            return tightened, int(worst)
    raise TooSmall(int(worst) + 1)


# --- walking a schema ------------------------------------------------------------------------------
SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_VALUES = (
    "items",
    "additionalItems",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
)


def map_subschemas(node: dict[str, Any], change: Any) -> dict[str, Any]:
    """`node` with `change(subschema, key)` applied to each of its direct subschemas (by keyword,
    so a property that happens to be named like a keyword is never taken for one)."""
    out = dict(node)
    for key in SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: change(value, key) for name, value in out[key].items()}
    for key in SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [change(value, key) for value in out[key]]
    for key in SCHEMA_VALUES:
        if key in out:
            out[key] = change(out[key], key)
    return out


# --- $ref ------------------------------------------------------------------------------------------
def _inline(node: Any, root: Any, seen: tuple[str, ...], count: list[int]) -> Any:
    if not isinstance(node, dict):
        return node
    count[0] += 1
    if count[0] > MAX_INLINED_NODES:
        raise CannotBound(f"with its $refs inlined the schema has over {MAX_INLINED_NODES} subschemas")
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            raise CannotBound(f"the $ref {ref} is recursive: no output length bounds it")
        target = _resolve(root, ref)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        merged = _inline(target, root, (*seen, ref), count)
        return {"allOf": [merged, _inline(rest, root, seen, count)]} if rest else merged
    # Definitions are inlined where they are used; kept, they would only be compiled for nothing.
    out = map_subschemas(node, lambda value, _key: _inline(value, root, seen, count))
    return {k: v for k, v in out.items() if k not in ("$defs", "definitions")}


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#/") and ref != "#":
        raise CannotBound(f"only local JSON-pointer $refs can be bounded, not {ref}")
    node = root
    try:
        for part in [p for p in ref[1:].split("/") if p]:
            key = part.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise CannotBound(f"the $ref {ref} does not resolve") from None
    return node


# --- tightening ------------------------------------------------------------------------------------
def _any_value(caps: tuple[int, ...]) -> dict[str, Any]:
    """An unconstrained value, narrowed to what is short: a string, an integer, true/false or null."""
    strings, _, _, _, digits, _ = caps
    top = 10**digits - 1
    return {
        "anyOf": [
            {"type": "string", "maxLength": strings},
            {"type": "integer", "minimum": -top, "maximum": top},
            {"type": "boolean"},
            {"type": "null"},
        ]
    }


def _constrains(node: dict[str, Any]) -> bool:
    return any(key in node for key in ("type", "const", "enum", *COMPOSITIONS))


def _tighten(node: Any, caps: tuple[int, ...], branch: bool = False) -> Any:
    """`branch`: a member of anyOf/oneOf/allOf, which its parent's own keywords bound too, so an
    unconstrained member stays as it is (narrowed to a short scalar, it would contradict them)."""
    if node is True or (isinstance(node, dict) and not _constrains(node)):
        if branch:
            return node
        return {**(node if isinstance(node, dict) else {}), **_any_value(caps)}
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in COMPOSITIONS:
        if key in out:
            out[key] = [_tighten(member, caps, branch=True) for member in out[key]]
    types = out.get("type")
    kinds = set(types if isinstance(types, list) else [types] if types else [])
    if "string" in kinds:
        out["maxLength"] = max(_shortest_string(out), min(out.get("maxLength", caps[0]), caps[0]))
    if "integer" in kinds or "number" in kinds:
        _tighten_numbers(out, caps, integral="number" not in kinds)
    if "array" in kinds:
        _tighten_array(out, caps)
    if "object" in kinds:
        _tighten_object(out, caps)
    return out


# The shortest text of each JSON Schema string format llguidance knows (a cap below it would leave no
# valid string at all).
FORMAT_SHORTEST = {
    "date": 10,
    "time": 9,  # llguidance's time needs a zone: 00:00:00Z
    "date-time": 20,
    "uuid": 36,
    "email": 3,
    "ipv4": 7,
    "ipv6": 2,
    "uri": 3,
    "duration": 3,
    "hostname": 1,
}


def _shortest_string(node: dict[str, Any]) -> int:
    """The fewest characters a string of this schema has: minLength, its format's, its pattern's."""
    fmt = node.get("format")
    shortest = max(node.get("minLength", 0), FORMAT_SHORTEST.get(fmt, 1) if isinstance(fmt, str) else 0)
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        try:
            with warnings.catch_warnings():  # the stdlib parser knows a regex's shortest match
                warnings.simplefilter("ignore", DeprecationWarning)
                import sre_parse

            shortest = max(shortest, sre_parse.parse(pattern).getwidth()[0])
        except Exception:  # an ECMA-only construct: llguidance will say whether it compiles
            shortest = max(shortest, len(pattern))
    return shortest


def _cap(node: dict[str, Any], upper: str, lower: str, cap: int) -> None:
    node[upper] = max(node.get(lower, 0), min(node.get(upper, cap), cap))


def _tighten_numbers(node: dict[str, Any], caps: tuple[int, ...], integral: bool) -> None:
    """The range clipped to `caps` digits (a range wholly beyond them keeps its bound nearest zero);
    numbers get at most `caps` decimal places through multipleOf."""
    top = 10 ** caps[4] - 1
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    new_low = -top if low is None else max(low, -top)
    new_high = top if high is None else min(high, top)
    if new_low > new_high and low is not None and low > top:  # all it allows lies above +top
        new_low, new_high = low, high if high is not None else low + 10
    elif new_low > new_high and high is not None:  # ... or below -top
        new_low, new_high = low if low is not None else high - 10, high
    node["minimum"], node["maximum"] = new_low, new_high  # beside any exclusive bound, which still applies
    if not integral and "multipleOf" not in node:
        places = caps[5]
        while places < 12 and not _has_multiple(new_low, new_high, Decimal(1).scaleb(-places)):
            places += 1  # a range narrower than the step: more decimal places
        node["multipleOf"] = 1 if places == 0 else float(Decimal(1).scaleb(-places))


def _has_multiple(low: float, high: float, step: Decimal) -> bool:
    first = math.ceil(Decimal(str(low)) / step) * step
    return first <= Decimal(str(high))


def _tighten_array(node: dict[str, Any], caps: tuple[int, ...]) -> None:
    _cap(node, "maxItems", "minItems", caps[1])
    if "prefixItems" in node:
        node["prefixItems"] = [_tighten(item, caps) for item in node["prefixItems"]]
    if node.get("items", True) is not False:
        node["items"] = _tighten(node.get("items", True), caps)


def _tighten_object(node: dict[str, Any], caps: tuple[int, ...]) -> None:
    declared = dict(node.get("properties", {}))
    for name in node.get("required", []):
        declared.setdefault(name, True)
    node.pop("patternProperties", None)
    if declared:  # closed: extra keys would be unbounded in number and length
        node["properties"] = {name: _tighten(schema, caps) for name, schema in declared.items()}
        node["additionalProperties"] = False
        return
    extra = node.get("additionalProperties", True)
    node["additionalProperties"] = False
    if extra is False:
        return
    _cap(node, "maxProperties", "minProperties", caps[2])
    node["patternProperties"] = {f"^[A-Za-z0-9_]{{1,{caps[3]}}}$": _tighten(extra, caps)}


# --- the worst case --------------------------------------------------------------------------------
def worst_bytes(node: Any) -> float:
    """The longest JSON text (bytes, compact separators) that `node` allows; inf if unbounded."""
    if node is False:
        return 0
    if not isinstance(node, dict) or not _constrains(node):
        return math.inf
    bounds = []
    if "const" in node:
        bounds.append(_literal(node["const"]))
    if "enum" in node:
        bounds.append(max((_literal(v) for v in node["enum"]), default=0))
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        bounds.append(max(_typed(node, kind) for kind in types))
    for key in ("anyOf", "oneOf"):
        if key in node:
            bounds.append(max((worst_bytes(b) for b in node[key]), default=0))
    if "allOf" in node:
        bounds.append(min((worst_bytes(b) for b in node["allOf"]), default=math.inf))
    return min(bounds)


def _literal(value: Any) -> float:
    """The longest way the grammar writes a constant: strings with every character escaped, floats
    in positional notation (llguidance writes 1e100 out in full), containers part by part."""
    if isinstance(value, str):
        return 2 + ESCAPED_CHAR * len(value)
    if isinstance(value, dict):
        parts = [_literal(str(key)) + SEPARATOR + _literal(item) for key, item in value.items()]
        return 2 + sum(parts) + SEPARATOR * max(len(parts) - 1, 0)
    if isinstance(value, list):
        return 2 + sum(_literal(item) for item in value) + SEPARATOR * max(len(value) - 1, 0)
    if isinstance(value, float) and math.isfinite(value):
        return len(format(Decimal(repr(value)), "f"))
    return len(json.dumps(value))


def _typed(node: dict[str, Any], kind: str) -> float:
    if kind == "string":
        return 2 + ESCAPED_CHAR * node["maxLength"] if "maxLength" in node else math.inf
    if kind in ("integer", "number"):
        return _number(node, kind == "integer")
    if kind == "boolean":
        return 5
    if kind == "null":
        return 4
    if kind == "array":
        return _array(node)
    if kind == "object":
        return _object(node)
    return math.inf


def _number(node: dict[str, Any], integral: bool) -> float:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is None or high is None:
        return math.inf
    digits = len(str(int(max(abs(low), abs(high)))))
    sign = 1 if low < 0 else 0
    if integral:
        return sign + digits
    step = node.get("multipleOf")
    if step is None:
        return math.inf
    places = max(0, -int(Decimal(str(step)).normalize().as_tuple().exponent))
    return sign + digits + (1 + places if places else 0)


def _array(node: dict[str, Any]) -> float:
    if "maxItems" not in node:
        return math.inf
    prefix = node.get("prefixItems", [])
    rest = node.get("items", True)
    count = node["maxItems"] if rest is not False else min(node["maxItems"], len(prefix))
    parts = [worst_bytes(prefix[i]) if i < len(prefix) else worst_bytes(rest) for i in range(count)]
    return 2 + sum(parts) + SEPARATOR * max(count - 1, 0)


def _object(node: dict[str, Any]) -> float:
    if node.get("additionalProperties", True) is not False:
        return math.inf
    entries = [_literal(name) + SEPARATOR + worst_bytes(schema) for name, schema in node.get("properties", {}).items()]
    patterns = node.get("patternProperties", {})
    if patterns:
        if "maxProperties" not in node:
            return math.inf
        key_length = max(int(pattern.rsplit(",", 1)[1].split("}")[0]) for pattern in patterns)
        value = max(worst_bytes(schema) for schema in patterns.values())
        entries += [2 + ESCAPED_CHAR * key_length + SEPARATOR + value] * node["maxProperties"]
    return 2 + sum(entries) + SEPARATOR * max(len(entries) - 1, 0)
