"""schemas/ is the source of truth: the method table matches it one to one, and params errors are ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from runtime import faults
from runtime.methods import method_names
from runtime.protocol import schemas

ROOT = Path(__file__).resolve().parents[2]


def test_the_method_table_and_the_method_schemas_match_one_to_one() -> None:
    assert sorted(schemas.method_schemas()) == sorted(method_names())


def test_every_notification_the_code_sends_has_a_schema() -> None:
    sent = set()
    for path in (ROOT / "runtime").rglob("*.py"):
        text = path.read_text()
        for name in schemas.notification_schemas():
            if f'"{name}"' in text:
                sent.add(name)
    assert sent == set(schemas.notification_schemas())


def test_every_schema_file_is_a_valid_2020_12_schema_with_an_id() -> None:
    for path in (ROOT / "schemas").rglob("*.json"):
        document = json.loads(path.read_text())
        Draft202012Validator.check_schema(document)
        assert document["$schema"].endswith("2020-12/schema") and document["$id"], path


def test_params_errors_name_each_field_with_a_message_of_our_own() -> None:
    with pytest.raises(faults.InvalidInput) as caught:
        schemas.validate_params("generate", {"model_id": 5, "max_tokens": 0, "temperature": "hot", "extra": 1})
    assert caught.value.errors == [
        {"path": "/extra", "message": "is not a known field"},
        {"path": "/max_tokens", "message": "must be >= 1"},
        {"path": "/model_id", "message": "must be of type string"},
        {"path": "/temperature", "message": "must be of type number"},
    ]


def test_a_missing_required_field_is_reported_by_its_path() -> None:
    with pytest.raises(faults.InvalidInput) as caught:
        schemas.validate_params("load_model", {})
    assert caught.value.errors == [{"path": "/model_id", "message": "is required"}]


def test_nested_errors_carry_json_pointers() -> None:
    problems = schemas.check(
        schemas.method_schemas()["generate"],
        "params",
        {"model_id": "m", "messages": [{"role": "user"}], "logit_bias": {"x": 1}},
    )
    assert {"path": "/messages/0/content", "message": "is required"} in problems
    assert any(p["path"] == "/logit_bias" for p in problems)


def test_the_schemas_are_found_from_the_source_tree() -> None:
    assert (schemas.schema_dir() / "common.json").is_file()
