"""fit_max_tokens: a schema tightened so that its longest output fits the budget, or refused with the
budget it needs; strict mode closes objects."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.engine.guidance import json_schema_grammar
from runtime.requests import fit
from runtime.requests.guidance import close_objects
from tests.support.open_schemas import OPEN_SCHEMAS


@pytest.mark.parametrize("schema", OPEN_SCHEMAS)
@pytest.mark.parametrize("max_tokens", [48, 128, 512])
def test_a_fitted_schema_has_a_worst_case_within_the_budget_and_compiles(
    schema: dict[str, Any], max_tokens: int
) -> None:
    try:
        tightened, worst = fit.fit(schema, max_tokens)
    except fit.TooSmall as exc:
        assert exc.needed_tokens > max_tokens
        tightened, worst = fit.fit(schema, exc.needed_tokens)  # the budget it names is enough
        max_tokens = exc.needed_tokens
    assert worst == fit.worst_bytes(tightened) <= max_tokens - 1
    json_schema_grammar(tightened)  # llguidance compiles it


def test_without_tightening_an_open_schema_has_no_worst_case() -> None:
    assert all(fit.worst_bytes(schema) == float("inf") for schema in OPEN_SCHEMAS)


def test_a_budget_below_the_smallest_instance_is_refused_with_the_budget_needed() -> None:
    schema = {
        "type": "object",
        "properties": {"a_long_property_name": {"type": "string", "minLength": 20}},
        "required": ["a_long_property_name"],
    }
    with pytest.raises(fit.TooSmall) as caught:
        fit.fit(schema, 30)
    needed = caught.value.needed_tokens
    assert needed > 30 and fit.fit(schema, needed)[1] == needed - 1


def test_a_recursive_schema_cannot_be_bounded() -> None:
    tree = {
        "$defs": {
            "node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}
        }
    }
    with pytest.raises(fit.CannotBound):
        fit.fit({**tree, "$ref": "#/$defs/node"}, 4096)


def test_tightening_keeps_lower_bounds_and_explicit_narrower_bounds() -> None:
    schema = {"type": "array", "minItems": 3, "maxItems": 5, "items": {"type": "integer", "minimum": 0, "maximum": 9}}
    tightened, _ = fit.fit(schema, 4096)
    assert tightened["minItems"] == 3 and tightened["maxItems"] == 5
    assert (tightened["items"]["minimum"], tightened["items"]["maximum"]) == (0, 9)


def test_strict_closes_every_object_but_the_members_of_an_allof_and_a_property_named_like_a_keyword() -> None:
    schema = {
        "type": "object",
        "properties": {"properties": {"type": "object"}, "type": {"type": "string"}},
        "allOf": [{"properties": {"a": {"type": "string"}}}],
        "$defs": {"x": {"type": "object", "properties": {"b": {}}}},
    }
    closed = close_objects(schema)
    assert closed["additionalProperties"] is False
    assert closed["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in closed["properties"]
    assert "additionalProperties" not in closed["allOf"][0]
    assert closed["$defs"]["x"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("schema", "max_tokens"),
    [
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "anyOf": [{"required": ["a"]}, {"required": []}],
            },
            200,
        ),
        ({"type": "object", "properties": {"x": {"const": 1e100}}, "required": ["x"]}, 200),
        ({"type": "object", "properties": {"t": {"type": "string", "format": "time"}}, "required": ["t"]}, 70),
        ({"type": "integer", "exclusiveMinimum": 1e13}, 100),
        ({"type": "number", "minimum": 0.1, "maximum": 0.9}, 5),
        ({"type": "string", "format": "hostname"}, 100),
    ],
)
def test_tightening_never_leaves_a_schema_that_nothing_satisfies(schema: dict[str, Any], max_tokens: int) -> None:
    tightened, worst = fit.fit(schema, max_tokens)
    assert worst <= max_tokens - 1
    json_schema_grammar(tightened)  # an unsatisfiable schema would not compile


def test_a_float_constant_counts_as_llguidance_writes_it_out_in_full() -> None:
    assert fit.worst_bytes({"const": 1e100}) == 101


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/missing"},
        {
            "$defs": {
                **{
                    f"d{i}": {"type": "array", "prefixItems": [{"$ref": f"#/$defs/d{i - 1}"}] * 2} for i in range(1, 25)
                },
                "d0": {"type": "integer"},
            },
            "$ref": "#/$defs/d24",
        },
    ],
)
def test_a_dangling_ref_or_one_that_multiplies_without_end_cannot_be_bounded(schema: dict[str, Any]) -> None:
    with pytest.raises(fit.CannotBound):
        fit.fit(schema, 4096)
