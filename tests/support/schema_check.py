"""Check every message a runtime wrote against schemas/: results, errors and notifications."""

from __future__ import annotations

from typing import Any

from runtime.protocol import schemas


def problems_in(messages: list[Any], sent_methods: dict[Any, str]) -> list[str]:
    found: list[str] = []
    for message in messages:
        for item in message if isinstance(message, list) else [message]:
            found.extend(f"{_describe(item)}: {p['path']} {p['message']}" for p in _check(item, sent_methods))
    return found


def _check(item: dict[str, Any], sent_methods: dict[Any, str]) -> list[dict[str, str]]:
    if item.get("jsonrpc") != "2.0":
        return [{"path": "/jsonrpc", "message": "missing"}]
    if "method" in item:
        document = schemas.notification_schemas().get(item["method"])
        if document is None:
            return [{"path": "/method", "message": f"undocumented notification {item['method']}"}]
        return schemas.check(document, "params", item["params"])
    if "error" in item:
        return schemas.check(schemas._documents()["errors.json"], "error", item["error"])
    method = sent_methods.get(item.get("id"))
    if method is None:
        return [{"path": "/id", "message": f"response to an unknown request id {item.get('id')!r}"}]
    return schemas.check(schemas.method_schemas()[method], "result", item["result"])


def _describe(item: dict[str, Any]) -> str:
    return item.get("method") or f"response id={item.get('id')!r}"
