"""From the wire's `guidance` / `response_format` to a compiled guide of the model.

Every mode becomes one llguidance grammar string, which is also the key of the model's guide
cache. Everything that can be wrong with a schema or grammar is found here, before the stream is
registered: a bad one gets -32004 (GuidanceFailed) with the reason, and nothing is generated.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson

from runtime import faults
from runtime.engine import guidance
from runtime.engine.guidance import Guide
from runtime.engine.models import LoadedModel
from runtime.requests import fit, outlines, xmlshape

MODES = ("json_schema", "json_object", "regex", "choice", "grammar", "xml")
PAYLOAD = {"json_schema": "schema", "regex": "pattern", "choice": "choices", "grammar": "grammar"}
ANY_JSON_OBJECT: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class GuidanceSpec:
    mode: str
    grammar: str  # llguidance grammar (or, for outlines, the regex): what is compiled, and the cache key
    engine: str = "llguidance"

    @property
    def cache_key(self) -> tuple[str, str]:
        return (self.mode if self.engine == "llguidance" else f"{self.mode}@{self.engine}", self.grammar)


def spec_of(params: dict[str, Any], model_id: str, max_bytes: int, max_tokens: int) -> GuidanceSpec | None:
    """The request's constraint, or None; `response_format` is the OpenAI-style alias. With
    fit_max_tokens the grammar depends on the request's token budget, which joins its key."""
    guidance_params = _guidance_params(params, max_tokens)
    if guidance_params is None:
        return None
    mode = guidance_params["mode"]
    key = orjson.dumps(guidance_params)  # key order kept: it is the order properties are written in
    _check_size(len(key), mode, model_id, max_bytes)
    try:
        return _spec_for(key)
    except xmlshape.ShapeError as exc:
        raise faults.GuidanceFailed(
            f"invalid XML shape: {exc}", model_id=model_id, mode=mode, reason=str(exc)
        ) from None
    except (InvalidGuidance, outlines.Unenforceable) as exc:
        raise faults.GuidanceFailed(str(exc), model_id=model_id, mode=mode, reason=str(exc), **exc.details) from None
    except fit.TooSmall as exc:
        raise faults.GuidanceFailed(
            f"fit_max_tokens: {exc}", model_id=model_id, mode=mode, reason=str(exc), needed_max_tokens=exc.needed_tokens
        ) from None
    except fit.CannotBound as exc:
        raise faults.GuidanceFailed(f"fit_max_tokens: {exc}", model_id=model_id, mode=mode, reason=str(exc)) from None


def _guidance_params(params: dict[str, Any], max_tokens: int | None = None) -> dict[str, Any] | None:
    """The constraint as one dict: mode, payload, strict, and the budget when it must fit it."""
    guidance_params, response_format = params.get("guidance"), params.get("response_format")
    if guidance_params is not None and response_format is not None:
        raise faults.InvalidInput.at("/response_format", "give guidance or response_format, not both")
    if response_format is not None:
        guidance_params = _from_response_format(response_format)
    if guidance_params is None:
        return None
    if params.get("fit_max_tokens") or guidance_params.get("fit_max_tokens"):
        budget = params.get("max_tokens", max_tokens)
        guidance_params = {**guidance_params, "fit_max_tokens": True, "max_tokens": budget}
    return guidance_params


_SPECS: OrderedDict[bytes, GuidanceSpec] = OrderedDict()
_SPECS_LOCK = threading.Lock()
SPEC_CACHE_SIZE = 256


def _spec_for(key: bytes) -> GuidanceSpec:
    """Checking a schema costs milliseconds, so a repeated one (the same JSON) is not checked again."""
    with _SPECS_LOCK:
        if key in _SPECS:
            _SPECS.move_to_end(key)
            return _SPECS[key]
    guidance_params = orjson.loads(key)
    mode, engine = guidance_params["mode"], guidance_params.get("engine", "llguidance")
    if engine == "outlines":
        if mode in PAYLOAD:
            _payload(mode, guidance_params)  # present, or -32602 naming the field
        schema = checked_schema(guidance_params.get("schema")) if mode == "json_schema" else None
        spec = GuidanceSpec(mode, outlines.regex_for(mode, guidance_params, schema), "outlines")
    else:
        spec = GuidanceSpec(mode, _grammar(mode, guidance_params))
    with _SPECS_LOCK:
        _SPECS[key] = spec
        while len(_SPECS) > SPEC_CACHE_SIZE:
            _SPECS.popitem(last=False)
    return spec


def ready_without_work(params: dict[str, Any], loaded: LoadedModel) -> bool:
    """Whether the request's constraint is checked and compiled already (or there is none): only
    then may it start on the reader thread. Checking a schema can take long (a small XSD can expand
    a lot), so anything not seen before goes to the preparer thread."""
    guidance_params = _guidance_params(params)
    if guidance_params is None:
        return True
    if guidance_params.get("max_tokens", 0) is None:  # fit to the default budget: prepared off the reader
        return False
    with _SPECS_LOCK:
        spec = _SPECS.get(orjson.dumps(guidance_params))
    return spec is not None and spec.cache_key in loaded.guides


def guide_for(loaded: LoadedModel, spec: GuidanceSpec) -> Guide:
    """The compiled guide, cached per (mode, grammar): two modes can yield one grammar."""
    try:
        return loaded.guides.get(spec.mode, spec.grammar, loaded.model_id, spec.engine)
    except faults.GuidanceFailed as exc:
        exc.details["mode"] = spec.mode
        raise


class InvalidGuidance(ValueError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


def _from_response_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        return {"mode": "json_object"}
    json_schema = response_format.get("json_schema")
    if not isinstance(json_schema, dict) or "schema" not in json_schema:
        raise faults.InvalidInput.at("/response_format/json_schema/schema", "is required for type json_schema")
    # OpenAI's strict structured outputs: on when the host says strict: true.
    return {"mode": "json_schema", "schema": json_schema["schema"], "strict": json_schema.get("strict") is True}


def _check_size(size: int, mode: str, model_id: str, max_bytes: int) -> None:
    if size > max_bytes:
        message = f"guidance of {size} bytes exceeds the {max_bytes}-byte limit"
        raise faults.GuidanceFailed(
            message,
            model_id=model_id,
            mode=mode,
            reason=message,
            size_bytes=size,
            limit_bytes=max_bytes,
        )


def _payload(mode: str, guidance_params: dict[str, Any]) -> Any:
    field = PAYLOAD[mode]
    if guidance_params.get(field) is None:
        raise faults.InvalidInput.at(f"/guidance/{field}", f"is required for mode {mode}")
    return guidance_params[field]


FITTING_MODES = ("json_schema", "json_object", "choice")


def _grammar(mode: str, guidance_params: dict[str, Any]) -> str:
    budget = guidance_params.get("max_tokens") if guidance_params.get("fit_max_tokens") else None
    if budget is not None and mode not in FITTING_MODES:
        raise faults.InvalidInput.at("/fit_max_tokens", f"applies to {', '.join(FITTING_MODES)}, not {mode}")
    if mode == "json_object":
        return guidance.json_schema_grammar(_shaped(ANY_JSON_OBJECT, False, budget))
    if mode == "xml":
        return guidance.lark_grammar(_xml_lark(guidance_params))
    payload = _payload(mode, guidance_params)
    if mode == "json_schema":
        schema = _shaped(checked_schema(payload), guidance_params.get("strict", False), budget)
        return guidance.json_schema_grammar(schema)
    if mode == "regex":
        return guidance.regex_grammar(payload)
    if mode == "choice":
        longest = max(len(choice.encode()) for choice in payload)
        if budget is not None and longest > budget - 1:
            raise fit.TooSmall(longest + 1)  # a token writes one byte at least: the longest choice must fit
        return guidance.lark_grammar("start: " + " | ".join(json.dumps(choice) for choice in payload))
    return guidance.lark_grammar(_lark(payload, guidance_params.get("syntax", "lark")))


def _shaped(schema: dict[str, Any] | bool, strict: bool, budget: int | None) -> dict[str, Any] | bool:
    """strict: objects closed; fit_max_tokens: tightened so that every output fits the budget."""
    if strict:
        schema = close_objects(schema)
    if budget is not None:
        schema, _ = fit.fit(schema, budget)
    return schema


def close_objects(node: Any, in_all_of: bool = False) -> Any:
    """OpenAI's strict mode: every object schema that does not say additionalProperties (or
    unevaluatedProperties) is closed to keys it does not declare. The direct members of an allOf
    are left open: closed, each would refuse the keys the others declare."""
    if not isinstance(node, dict):
        return node
    out = fit.map_subschemas(node, lambda value, key: close_objects(value, key == "allOf"))
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            out[key] = {name: close_objects(value) for name, value in node[key].items()}
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds) or "properties" in node
    if is_object and not in_all_of and "additionalProperties" not in node and "unevaluatedProperties" not in node:
        out["additionalProperties"] = False
    return out


def checked_schema(schema: Any) -> dict[str, Any] | bool:
    """A JSON Schema (object, or the same as a JSON string) checked against the 2020-12 meta-schema."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise InvalidGuidance(f"schema is a string but not JSON: {exc}") from None
    if not isinstance(schema, dict | bool):
        raise InvalidGuidance("schema must be a JSON Schema object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/" + "/".join(str(p) for p in exc.path)
        raise InvalidGuidance(f"invalid JSON Schema at {path}: {exc.message}", path=path) from None
    return schema


def _lark(grammar: str, syntax: str) -> str:
    if syntax == "lark":
        return grammar
    from llguidance.gbnf_to_lark import gbnf_to_lark

    try:
        return gbnf_to_lark(grammar)
    except Exception as exc:  # the converter raises plain exceptions for syntax errors
        raise InvalidGuidance(f"the EBNF grammar does not parse: {exc}") from None


def _xml_lark(guidance_params: dict[str, Any]) -> str:
    if guidance_params.get("grammar") is not None:
        return _lark(guidance_params["grammar"], guidance_params.get("syntax", "lark"))
    shape = guidance_params.get("schema")
    if isinstance(shape, str):
        return xmlshape.to_lark(xmlshape.from_xsd(shape))
    if isinstance(shape, dict):
        return xmlshape.to_lark(xmlshape.from_description(shape))
    raise faults.InvalidInput.at("/guidance/schema", "mode xml needs a schema (XSD or element object) or grammar")
