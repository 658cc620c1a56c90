"""Error codes: the spec's codes are right, and code, schemas/ and docs agree on the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runtime import faults
from runtime.protocol import errors, schemas
from runtime.protocol.errors import to_wire_error

DOCS = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_the_json_rpc_spec_codes_are_the_specs() -> None:
    assert (
        errors.PARSE_ERROR,
        errors.INVALID_REQUEST,
        errors.METHOD_NOT_FOUND,
        errors.INVALID_PARAMS,
        errors.INTERNAL_ERROR,
    ) == (-32700, -32600, -32601, -32602, -32603)


def test_the_peer_application_codes_are_kept() -> None:
    assert (
        errors.MODEL_LOAD_FAILED,
        errors.GENERATION_FAILED,
        errors.TOKENIZER_ERROR,
        errors.GUIDANCE_ERROR,
        errors.MODEL_NOT_LOADED,
    ) == (-32001, -32002, -32003, -32004, -32005)


def test_every_code_the_runtime_can_send_is_documented_in_schemas() -> None:
    documented = {entry["code"] for entry in schemas.error_table()}
    used = set(errors.FAULT_CODES.values()) | {-32700, -32600, -32601, -32602, -32603}
    assert used == documented


def test_the_docs_error_table_is_generated_from_the_schema_and_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS.parents[1] / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for entry in schemas.error_table():
        assert f"| {entry['code']} |" in DOCS.read_text(), entry


def test_application_codes_stay_in_the_reserved_range() -> None:
    assert all(-32099 <= code <= -32000 for code in errors.FAULT_CODES.values() if code != errors.INVALID_PARAMS)


def test_each_fault_maps_to_its_code_with_its_details() -> None:
    wire = to_wire_error(faults.ModelNotLoaded("Model not loaded: m", model_id="m"))
    assert wire == {
        "code": -32005,
        "message": "Model not loaded: m",
        "data": {"type": "ModelNotLoaded", "model_id": "m"},
    }


def test_an_unexpected_exception_never_leaks_its_text() -> None:
    wire = to_wire_error(KeyError("secret path /home/x"))
    assert wire["code"] == -32603 and "secret" not in str(wire)
