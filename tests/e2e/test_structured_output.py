"""Structured output over the real runtime: every constrained output obeys its schema or grammar,
whatever the model would rather write, alone or in a batch, and bad constraints fail before any token."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import lark
import pytest

from runtime.tinymodels.fixtures import build_random_model
from tests.conftest import MODEL
from tests.support.harness import RpcFailure, RuntimeClient
from tests.support.open_schemas import OPEN_SCHEMAS

PROMPT = "<|im_start|>user\nDescribe a dog as data.<|im_end|>\n<|im_start|>assistant\n"
NAME = {"type": "string", "minLength": 1, "maxLength": 12}
SCHEMAS: dict[str, dict[str, Any]] = {
    "nested objects": {
        "type": "object",
        "properties": {
            "name": NAME,
            "owner": {
                "type": "object",
                "properties": {"name": NAME, "address": {"type": "object", "properties": {"city": NAME}}},
                "required": ["name", "address"],
            },
        },
        "required": ["name", "owner"],
    },
    "array with min and max items": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "minItems": 2,
        "maxItems": 4,
    },
    "enum": {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]},
    "number with exclusive bounds": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
    "integer with bounds": {
        "type": "object",
        "properties": {"age": {"type": "integer", "minimum": 3, "maximum": 17}},
        "required": ["age"],
    },
    "string pattern": {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[A-Z][a-z]{2,6}-[0-9]{2}$"}},
        "required": ["code"],
    },
    "string formats": {
        "type": "object",
        "properties": {"born": {"type": "string", "format": "date"}, "id": {"type": "string", "format": "uuid"}},
        "required": ["born", "id"],
    },
    "required and optional": {
        "type": "object",
        "properties": {"name": NAME, "nickname": NAME, "good": {"type": "boolean"}},
        "required": ["name", "good"],
        "additionalProperties": False,
    },
    "refs and defs": {
        "$defs": {
            "pet": {
                "type": "object",
                "properties": {"name": NAME, "legs": {"type": "integer", "minimum": 0, "maximum": 8}},
                "required": ["name", "legs"],
            }
        },
        "type": "object",
        "properties": {"first": {"$ref": "#/$defs/pet"}, "second": {"$ref": "#/$defs/pet"}},
        "required": ["first", "second"],
    },
    "anyOf": {
        "type": "object",
        "properties": {"value": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 99}, {"type": "boolean"}]}},
        "required": ["value"],
    },
    "oneOf": {
        "oneOf": [
            {"type": "object", "properties": {"cat": NAME}, "required": ["cat"], "additionalProperties": False},
            {"type": "string", "maxLength": 8},
        ]
    },
    "nullable": {
        "type": "object",
        "properties": {"toy": {"type": ["string", "null"], "maxLength": 10}},
        "required": ["toy"],
    },
    "const and boolean": {
        "type": "object",
        "properties": {"kind": {"const": "dog"}, "happy": {"type": "boolean"}},
        "required": ["kind", "happy"],
    },
    "array of objects": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 20}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "minItems": 1,
        "maxItems": 3,
    },
    "tuple with prefixItems": {
        "type": "array",
        "prefixItems": [NAME, {"type": "integer", "minimum": 0, "maximum": 5}],
        "items": False,
        "minItems": 2,
    },
    "allOf": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["a"]},
            {"properties": {"b": NAME}, "required": ["b"]},
        ],
        "properties": {"a": True, "b": True},
    },
}


def closed(schema: Any) -> Any:
    """additionalProperties: false on every object with properties: without it, JSON Schema allows
    any extra property, and a small model happily writes them until max_tokens."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: value if key == "allOf" else closed(value) for key, value in schema.items()}
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


SCHEMAS = {name: closed(schema) for name, schema in SCHEMAS.items()}


SAMPLING = [{"temperature": 0.0}, {"temperature": 0.8, "seed": 11}, {"temperature": 1.2, "seed": 5}]


def start(client: RuntimeClient, guidance: dict[str, Any] | None = None, **params: Any) -> str:
    body = {"model_id": MODEL, "prompt": PROMPT, "max_tokens": 300, **params}
    if guidance is not None:
        body["guidance"] = guidance
    return client.request("generate", body)["stream_id"]


def run(client: RuntimeClient, guidance: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
    return client.collect(start(client, guidance, **params))


def assert_whole_json(outcome: dict[str, Any], schema: dict[str, Any]) -> None:
    event = outcome["event"]
    assert event["finish_reason"] == "stop" and event["guidance"] == {"mode": "json_schema", "complete": True}, event
    value = json.loads(outcome["text"])
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator, format_checker=jsonschema.FormatChecker())
    assert event["parsed"] == value


ENGINES = ["llguidance", "outlines"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sampling", SAMPLING, ids=["greedy", "t0.8", "t1.2"])
def test_every_output_validates_against_its_json_schema(
    runtime: RuntimeClient, sampling: dict[str, Any], engine: str
) -> None:
    """On both engines; outlines refuses the schemas with keywords it would ignore, naming them."""
    entries = [
        {
            "model_id": MODEL,
            "prompt": PROMPT,
            "max_tokens": 300,
            "guidance": {"mode": "json_schema", "schema": schema, "engine": engine},
            **sampling,
        }
        for schema in SCHEMAS.values()
    ]
    results = runtime.request("batch_generate", {"requests": entries})["results"]
    refused = {name: r["data"] for name, r in zip(SCHEMAS, results, strict=True) if not r["success"]}
    assert engine == "outlines" or not refused, refused
    for name, data in refused.items():
        assert data["unsupported_keywords"] and all(
            f'"{k}"' in json.dumps(SCHEMAS[name]) for k in data["unsupported_keywords"]
        )
    assert engine == "llguidance" or len(refused) <= len(SCHEMAS) // 2
    for name, result in zip(SCHEMAS, results, strict=True):
        if name in refused:
            continue
        outcome = runtime.collect(result["result"]["stream_id"])
        try:
            assert_whole_json(outcome, SCHEMAS[name])
        except (AssertionError, jsonschema.ValidationError, ValueError) as exc:
            raise AssertionError(f"schema {name!r}: {outcome['text']!r}") from exc


def test_eight_concurrent_streams_with_different_schemas_share_one_batch(runtime: RuntimeClient) -> None:
    names = list(SCHEMAS)[:8]
    ids = [
        start(runtime, {"mode": "json_schema", "schema": SCHEMAS[n]}, temperature=0.9, seed=i)
        for i, n in enumerate(names)
    ]
    outs = [runtime.collect(stream_id) for stream_id in ids]
    for name, out in zip(names, outs, strict=True):
        assert_whole_json(out, SCHEMAS[name])
    assert {out["stats"]["path"] for out in outs} == {"batch"}, "the constrained streams never shared a batch"


def test_a_constrained_stream_moving_into_a_batch_writes_what_it_writes_alone(runtime: RuntimeClient) -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 99}},
            "required": ["name", "age"],
        },
        "minItems": 40,
    }
    guidance = {"mode": "json_schema", "schema": schema}
    alone = run(runtime, guidance, temperature=0, max_tokens=250)
    moving = start(runtime, guidance, temperature=0, max_tokens=250)
    first = next(runtime.stream(moving))  # it decodes solo now; the next stream makes it join a batch
    joiner = run(runtime, guidance, temperature=0.7, seed=3, max_tokens=40)
    rest = runtime.collect(moving)
    together = "".join(t["token"] for t in first["params"]["tokens"]) + rest["text"]
    assert together == alone["text"] and alone["event"]["finish_reason"] == "length"
    assert (alone["stats"]["path"], rest["stats"]["path"], rest["stats"]["handovers"]) == ("solo", "batch", 1)
    assert joiner["event"]["guidance"]["mode"] == "json_schema"


@pytest.mark.parametrize("engine", ENGINES)
def test_regex_outputs_match_the_pattern(runtime: RuntimeClient, engine: str) -> None:
    patterns = [
        r"[a-z]{3,8}-[0-9]{2}",
        r"(yes|no), because [a-z ]{1,30}\.",
        r"\d{4}-\d{2}-\d{2}",
        r"[A-Z][a-z]+ (is|was) [a-z]+",
    ]
    for pattern in patterns:
        for sampling in SAMPLING:
            outcome = run(runtime, {"mode": "regex", "pattern": pattern, "engine": engine}, **sampling)
            assert re.fullmatch(pattern, outcome["text"]), (pattern, outcome["text"])
            assert outcome["event"]["guidance"] == {"mode": "regex", "complete": True}


@pytest.mark.parametrize("engine", ENGINES)
def test_choice_outputs_are_exactly_one_of_the_choices(runtime: RuntimeClient, engine: str) -> None:
    choices = ["yes", "no", 'he said "maybe"', "back\\slash", "naïve ☃", "two\nlines"]
    seen = set()
    for seed in range(8):
        outcome = run(runtime, {"mode": "choice", "choices": choices, "engine": engine}, temperature=1.5, seed=seed)
        assert outcome["text"] in choices and outcome["event"]["finish_reason"] == "stop"
        seen.add(outcome["text"])
    assert len(seen) >= 2, "sampling should reach more than one choice"


ARITHMETIC_LARK = """
start: expr
expr: term (OP term)*
term: NUMBER | "(" expr ")"
OP: "+" | "-" | "*"
NUMBER: /[1-9][0-9]{0,2}/
"""
ARITHMETIC_EBNF = """
root ::= expr
expr ::= term (op term)*
term ::= number | "(" expr ")"
op ::= "+" | "-" | "*"
number ::= [1-9] [0-9]? [0-9]?
"""


def test_grammar_outputs_parse_with_their_grammar(runtime: RuntimeClient) -> None:
    parser = lark.Lark(ARITHMETIC_LARK, start="start")
    for syntax, grammar in (("lark", ARITHMETIC_LARK), ("ebnf", ARITHMETIC_EBNF)):
        for sampling in SAMPLING:
            outcome = run(runtime, {"mode": "grammar", "grammar": grammar, "syntax": syntax}, max_tokens=60, **sampling)
            if outcome["event"]["guidance"]["complete"]:
                parser.parse(outcome["text"])
            else:  # a long expression ran into max_tokens: still a prefix the grammar allows
                assert outcome["event"]["finish_reason"] == "length"
                assert re.fullmatch(r"[0-9+\-*()]+", outcome["text"]), outcome["text"]
    complete = run(runtime, {"mode": "grammar", "grammar": ARITHMETIC_LARK}, temperature=0, max_tokens=200)
    assert complete["event"]["guidance"]["complete"]
    parser.parse(complete["text"])


PET_XSD = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="pet">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="name" type="nameType"/>
        <xs:element name="age" type="xs:nonNegativeInteger"/>
        <xs:element name="toy" type="nameType" minOccurs="0" maxOccurs="3"/>
        <xs:choice>
          <xs:element name="barks" type="xs:boolean"/>
          <xs:element name="meows" type="xs:boolean"/>
        </xs:choice>
      </xs:sequence>
      <xs:attribute name="kind" use="required">
        <xs:simpleType>
          <xs:restriction base="xs:string">
            <xs:enumeration value="dog"/>
            <xs:enumeration value="cat"/>
          </xs:restriction>
        </xs:simpleType>
      </xs:attribute>
      <xs:attribute name="id" type="xs:positiveInteger"/>
    </xs:complexType>
  </xs:element>
  <xs:simpleType name="nameType">
    <xs:restriction base="xs:string"><xs:pattern value="[A-Za-z ]{1,12}"/></xs:restriction>
  </xs:simpleType>
</xs:schema>"""
PET_DESCRIPTION = {
    "element": "pet",
    "attributes": {"kind": {"enum": ["dog", "cat"]}, "id": {"type": "positiveInteger", "required": False}},
    "children": [
        {"element": "name", "text": {"pattern": "[A-Za-z ]{1,12}"}},
        {"element": "age", "text": "nonNegativeInteger"},
        {"element": "toy", "text": {"pattern": "[A-Za-z ]{1,12}"}, "min_occurs": 0, "max_occurs": 3},
        {"choice": [{"element": "barks", "text": "boolean"}, {"element": "meows", "text": "boolean"}]},
    ],
}


def assert_pet_shape(text: str) -> None:
    pet = ET.fromstring(text)
    assert pet.tag == "pet" and pet.get("kind") in ("dog", "cat")
    assert pet.get("id") is None or pet.get("id", "").isdigit()
    tags = [child.tag for child in pet]
    assert tags[:2] == ["name", "age"] and tags[-1] in ("barks", "meows")
    assert all(tag == "toy" for tag in tags[2:-1]) and len(tags) - 3 <= 3
    assert re.fullmatch(r"[A-Za-z ]{1,12}", pet.findtext("name") or "") and (pet.findtext("age") or "").isdigit()
    assert pet.findtext(tags[-1]) in ("true", "false")


@pytest.mark.parametrize("shape", [PET_XSD, PET_DESCRIPTION], ids=["xsd", "element-description"])
def test_xml_outputs_parse_and_have_the_asked_shape(runtime: RuntimeClient, shape: Any) -> None:
    for sampling in SAMPLING:
        outcome = run(runtime, {"mode": "xml", "schema": shape}, **sampling)
        assert outcome["event"]["guidance"] == {"mode": "xml", "complete": True}, outcome
        assert_pet_shape(outcome["text"])


def test_response_format_is_an_alias_of_guidance(runtime: RuntimeClient) -> None:
    schema = SCHEMAS["enum"]
    outcome = run(
        runtime, response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema, "strict": True}}
    )
    assert_whole_json(outcome, schema)
    any_object = run(runtime, response_format={"type": "json_object"}, temperature=0, max_tokens=400)
    if any_object["event"]["guidance"]["complete"]:
        assert isinstance(json.loads(any_object["text"]), dict)
        assert any_object["event"]["parsed"] == json.loads(any_object["text"])
    else:
        assert any_object["text"].startswith("{") and "parsed" not in any_object["event"]
    plain = run(runtime, response_format={"type": "text"}, max_tokens=8)
    assert "guidance" not in plain["event"]


def test_a_truncated_output_says_it_is_incomplete(runtime: RuntimeClient) -> None:
    outcome = run(runtime, {"mode": "json_schema", "schema": SCHEMAS["array of objects"]}, temperature=0, max_tokens=4)
    event = outcome["event"]
    assert event["finish_reason"] == "length" and event["guidance"]["complete"] is False and "parsed" not in event
    assert len(outcome["tokens"]) == 4 and outcome["text"].startswith("[")


def test_a_stop_sequence_inside_the_output_ends_it_incomplete(runtime: RuntimeClient) -> None:
    outcome = run(
        runtime,
        {"mode": "json_schema", "schema": SCHEMAS["integer with bounds"]},
        temperature=0,
        stop_sequences=['"age"'],
    )
    assert outcome["text"] == "{" or outcome["text"].startswith("{")
    assert '"age"' not in outcome["text"]
    assert outcome["event"]["finish_reason"] == "stop" and outcome["event"]["guidance"]["complete"] is False


def test_logprobs_of_a_constrained_stream_list_only_allowed_tokens(runtime: RuntimeClient) -> None:
    outcome = run(
        runtime, {"mode": "choice", "choices": ["red", "green"]}, temperature=0, logprobs=True, top_logprobs=5
    )
    for index, token in enumerate(outcome["tokens"]):
        written = "".join(t["token"] for t in outcome["tokens"][:index])
        for entry in token["top_logprobs"]:  # only tokens that can continue "red" or "green"
            assert any(word.startswith(written + entry["token"]) for word in ("red", "green")), entry


def test_a_second_request_with_the_same_schema_uses_the_compiled_guide(runtime: RuntimeClient) -> None:
    schema = {
        "type": "object",
        "properties": {"unique_key_for_cache_test": {"type": "boolean"}},
        "required": ["unique_key_for_cache_test"],
    }

    def guides() -> dict[str, int]:
        return next(m for m in runtime.request("runtime/state")["loaded_models"] if m["model_id"] == MODEL)["guides"]

    before = guides()
    run(runtime, {"mode": "json_schema", "schema": schema}, temperature=0)
    after_first = guides()
    run(runtime, {"mode": "json_schema", "schema": json.dumps(schema)}, temperature=0.5, seed=1)
    after_second = guides()
    assert after_first["misses"] == before["misses"] + 1, (before, after_first, after_second)
    assert after_second["misses"] == after_first["misses"] and after_second["hits"] > after_first["hits"]


INVALID = [
    ({"mode": "json_schema", "schema": {"type": "array", "contains": {"type": "integer"}}}, "contains"),
    (
        {"mode": "json_schema", "schema": {"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}},
        "if",
    ),
    ({"mode": "json_schema", "schema": {"type": "objekt"}}, "/type"),
    ({"mode": "json_schema", "schema": {"type": "integer", "minimum": "zero"}}, "/minimum"),
    ({"mode": "json_schema", "schema": {"$ref": "#/$defs/missing"}}, "missing"),
    ({"mode": "json_schema", "schema": "{not json"}, "not JSON"),
    ({"mode": "json_schema", "schema": {"type": "string", "format": "no-such-format"}}, "no-such-format"),
    ({"mode": "regex", "pattern": "[a-"}, "regex"),
    ({"mode": "grammar", "grammar": "start: undefined_rule"}, "undefined_rule"),
    ({"mode": "grammar", "grammar": 'root ::= "a" (', "syntax": "ebnf"}, "EBNF"),
    ({"mode": "xml", "schema": "<notxsd/>"}, "xs:schema"),
    (
        {
            "mode": "xml",
            "schema": (
                '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="a">'
                "<xs:complexType><xs:all/></xs:complexType></xs:element></xs:schema>"
            ),
        },
        "xs:all",
    ),
    ({"mode": "xml", "schema": {"element": "a", "text": "float128"}}, "float128"),
]


@pytest.mark.parametrize(("guidance", "named"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_an_invalid_schema_or_grammar_fails_before_any_token(
    runtime: RuntimeClient, guidance: dict[str, Any], named: str
) -> None:
    stream_id = f"invalid-{named}"
    with pytest.raises(RpcFailure) as failure:
        start(runtime, guidance, stream_id=stream_id)
    error = {"code": failure.value.code, "message": failure.value.message, "data": failure.value.data}
    assert error["code"] == -32004 and named in error["message"] + json.dumps(error.get("data")), error
    assert error["data"]["model_id"] == MODEL and error["data"]["mode"] == guidance["mode"] and error["data"]["reason"]
    assert not [
        m for m in runtime.messages if isinstance(m, dict) and m.get("params", {}).get("stream_id") == stream_id
    ]
    assert not runtime.request("runtime/state")["streams"]


def test_unsupported_json_schema_keywords_are_listed_by_name(runtime: RuntimeClient) -> None:
    schema = {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}, "unevaluatedProperties": False}
    with pytest.raises(RpcFailure) as failure:
        start(runtime, {"mode": "json_schema", "schema": schema})
    assert sorted(failure.value.data["unsupported_keywords"]) == ["dependentSchemas", "unevaluatedProperties"]


def test_an_oversized_schema_is_refused_with_its_size(runtime: RuntimeClient) -> None:
    schema = {
        "type": "object",
        "properties": {f"field_{i}": {"type": "string", "description": "x" * 100} for i in range(1000)},
    }
    with pytest.raises(RpcFailure) as failure:
        start(runtime, {"mode": "json_schema", "schema": schema})
    data = failure.value.data
    assert failure.value.code == -32004 and data["size_bytes"] > data["limit_bytes"] == 65536


def test_malformed_guidance_params_get_field_level_errors(runtime: RuntimeClient) -> None:
    cases = [
        ({"mode": "telepathy"}, "/guidance/mode"),
        ({"mode": "regex"}, "/guidance/pattern"),
        ({"mode": "choice", "choices": []}, "/guidance/choices"),
        ({"mode": "json_schema", "schema": {}, "extra": 1}, "/guidance"),
    ]
    for guidance, path in cases:
        with pytest.raises(RpcFailure) as failure:
            start(runtime, guidance)
        assert failure.value.code == -32602
        assert any(e["path"].startswith(path) for e in failure.value.data["errors"]), failure.value
    with pytest.raises(RpcFailure) as failure:
        start(runtime, {"mode": "json_object"}, response_format={"type": "json_object"})
    assert failure.value.data["errors"][0]["path"] == "/response_format"


def test_properties_are_written_in_the_order_the_schema_declares(runtime: RuntimeClient) -> None:
    flag = {"type": "boolean"}
    schema = {
        "type": "object",
        "properties": {"zebra": flag, "apple": flag, "mango": flag},
        "required": ["zebra", "apple", "mango"],
        "additionalProperties": False,
    }
    outcome = run(runtime, {"mode": "json_schema", "schema": schema}, temperature=0.7, seed=2)
    assert list(json.loads(outcome["text"])) == ["zebra", "apple", "mango"]


def test_fit_max_tokens_always_ends_complete_and_valid_on_random_weights(
    runtime: RuntimeClient, tmp_path: Path
) -> None:
    """Open schemas, small budgets, a model with random weights sampled hot: every output is whole
    JSON that validates, within max_tokens; a budget too small is refused with the one it needs."""
    build_random_model(tmp_path / "random", arch="llama", seed=11)
    runtime.request("load_model", {"model_id": "random-fit", "local_path": str(tmp_path / "random")})
    try:
        entries = [
            {
                "model_id": "random-fit",
                "prompt": PROMPT,
                "max_tokens": budget,
                "temperature": temperature,
                "seed": seed,
                "guidance": {"mode": "json_schema", "schema": schema, "fit_max_tokens": True},
            }
            for schema in OPEN_SCHEMAS
            for budget in (24, 64, 256)
            for seed, temperature in ((1, 1.0), (2, 1.5))
        ]
        served, refused, refusals = 0, 0, []
        for start_at in range(0, len(entries), 32):
            batch = entries[start_at : start_at + 32]
            results = runtime.request("batch_generate", {"requests": batch})["results"]
            for entry, result in zip(batch, results, strict=True):
                if not result["success"]:
                    assert result["code"] == -32004, result
                    assert result["data"]["needed_max_tokens"] > entry["max_tokens"]
                    refused += 1
                    refusals.append((entry["max_tokens"], result["data"]["needed_max_tokens"]))
                    continue
                outcome = runtime.collect(result["result"]["stream_id"])
                assert outcome["stats"]["tokens_generated"] <= entry["max_tokens"]
                assert_whole_json(outcome, entry["guidance"]["schema"])
                served += 1
        assert served == 2 * len(OPEN_SCHEMAS) * 3 - refused and not any(r[0] == 256 for r in refusals)
    finally:
        runtime.request("unload_model", {"model_id": "random-fit"})


def test_strict_closes_objects_and_response_format_strict_turns_it_on(runtime: RuntimeClient) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}}, "required": ["name"]}
    strict = {"type": "json_schema", "json_schema": {"name": "pet", "schema": schema, "strict": True}}
    outcomes = [
        run(runtime, {"mode": "json_schema", "schema": schema, "strict": True}, temperature=1.2, seed=seed)
        for seed in range(3)
    ] + [
        runtime.collect(
            runtime.request(
                "generate", {"model_id": MODEL, "prompt": PROMPT, "response_format": strict, "max_tokens": 300}
            )["stream_id"]
        )
    ]
    for outcome in outcomes:
        assert set(json.loads(outcome["text"])) == {"name"}


def test_the_outlines_engine_refuses_what_it_cannot_enforce_or_compile_in_time(runtime: RuntimeClient) -> None:
    cases = [
        ({"type": "integer", "minimum": 3}, "unsupported_keywords", ["minimum"]),
        ({"type": "array", "items": {"type": "string"}, "minItems": 100000}, "largest_count", 100000),
    ]
    for schema, field, value in cases:
        with pytest.raises(RpcFailure) as caught:
            start(runtime, {"mode": "json_schema", "schema": schema, "engine": "outlines"})
        assert caught.value.code == -32004 and caught.value.data[field] == value
    with pytest.raises(RpcFailure) as caught:
        start(runtime, {"mode": "grammar", "grammar": 'start: "a"', "engine": "outlines"})
    assert caught.value.code == -32004
    with pytest.raises(RpcFailure) as caught:
        start(runtime, {"mode": "json_object", "engine": "outlines"}, fit_max_tokens=True)
    assert caught.value.code == -32004
