"""The outlines engine (`guidance.engine: "outlines"`): json_schema, regex and choice as one regex
that outlines-core compiles for the model's vocabulary.

outlines-core enforces fewer JSON Schema keywords than llguidance: it ignores numeric bounds and
`multipleOf`, `uniqueItems`, `contains`, object size and key rules. The runtime refuses a schema
that uses one (-32004, naming them) rather than let the engine ignore it. outlines closes every
object to its declared properties, which only narrows what is allowed. Its JSON has at most one
optional space between tokens, so whitespace cannot loop.
"""

from __future__ import annotations

import json
from typing import Any


class Unenforceable(ValueError):
    """What the outlines engine cannot enforce (the request layer answers -32004)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


OUTLINES_MODES = ("json_schema", "regex", "choice")
# Keywords outlines-core 0.2 parses but does not enforce (checked: the regex is the same without them).
NOT_ENFORCED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
        "minProperties",
        "maxProperties",
        "dependentRequired",
        "dependentSchemas",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)
REGEX_META = set(".^$*+?()[]{}|\\/")
# outlines-core writes counted repetitions out into its automaton: compiling minItems 100000 does
# not end. Larger counts are refused.
COUNTS = ("minItems", "maxItems", "minLength", "maxLength")
MAX_COUNT = 512


def regex_for(mode: str, guidance_params: dict[str, Any], schema: Any = None) -> str:
    """The whole output as a regex (`schema`: the json_schema mode's, already checked), or
    Unenforceable for what outlines cannot enforce."""
    if mode not in OUTLINES_MODES:
        raise Unenforceable(f"the outlines engine serves {', '.join(OUTLINES_MODES)}, not {mode}")
    if guidance_params.get("fit_max_tokens"):
        raise Unenforceable("fit_max_tokens needs the llguidance engine (outlines ignores numeric bounds)")
    if mode == "regex":
        return str(guidance_params["pattern"])
    if mode == "choice":
        return "(" + "|".join(escape(choice) for choice in guidance_params["choices"]) + ")"
    too_large = _largest_count(schema)
    if too_large > MAX_COUNT:
        raise Unenforceable(
            f"a count of {too_large} is too large for the outlines engine (its regex grows with it; "
            f"at most {MAX_COUNT}): use the llguidance engine",
            largest_count=too_large,
        )
    unenforced = sorted(_keywords(schema) & NOT_ENFORCED)
    if unenforced:
        raise Unenforceable(
            f"the outlines engine does not enforce {', '.join(unenforced)}: use the llguidance engine",
            unsupported_keywords=unenforced,
        )
    from outlines_core.json_schema import build_regex_from_schema

    try:
        return str(build_regex_from_schema(json.dumps(schema)))
    except Exception as exc:  # outlines-core raises ValueError for schemas it cannot read
        raise Unenforceable(f"outlines cannot compile this schema: {exc}") from None


def _largest_count(node: Any) -> int:
    """The largest minItems/maxItems/minLength/maxLength anywhere in the schema."""
    if isinstance(node, list):
        return max((_largest_count(item) for item in node), default=0)
    if not isinstance(node, dict):
        return 0
    own = [v for k, v in node.items() if k in COUNTS and isinstance(v, int)]
    nested = [_largest_count(v) for k, v in node.items() if k not in ("enum", "const", "default", "examples")]
    return max([0, *own, *nested])


def escape(text: str) -> str:
    return "".join("\\" + c if c in REGEX_META else c for c in text)


def _keywords(node: Any) -> set[str]:
    """Every keyword used anywhere in the schema (property names are not keywords)."""
    if isinstance(node, list):
        return set().union(*(_keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"):
            found |= (
                set().union(*(_keywords(v) for v in value.values())) if isinstance(value, dict) and value else set()
            )
        elif key not in ("enum", "const", "required", "examples", "default"):
            found |= _keywords(value)
    return found
