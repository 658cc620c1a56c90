"""Generate what derives from schemas/: docs/protocol.md, the error table in docs/errors.md, the
TypeScript types of bindings/node (src/protocol.ts) and the Python binding's constants.

    python scripts/gen_docs.py          # rewrite
    python scripts/gen_docs.py --check  # exit 1 if anything is out of date (CI runs this)
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
HEADER = "GENERATED from schemas/ by scripts/gen_docs.py: do not edit"
BEGIN, END = "<!-- GENERATED from schemas/errors.json: do not edit -->", "<!-- END GENERATED -->"


def load(folder: str, key: str) -> dict[str, dict[str, Any]]:
    docs = [json.loads(p.read_text()) for p in sorted((SCHEMAS / folder).glob("*.json"))]
    return {d[key]: d for d in docs}


COMMON = json.loads((SCHEMAS / "common.json").read_text())
METHODS = load("methods", "x-method")
NOTIFICATIONS = load("notifications", "x-notification")
CODES = {c["code"]: c for c in json.loads((SCHEMAS / "errors.json").read_text())["x-codes"]}


def pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[/._$\s-]+", name) if part)


def ts_type(schema: dict[str, Any], indent: str = "") -> str:
    """A TypeScript type for a schema (the subset schemas/ uses)."""
    if "$ref" in schema:
        return pascal(schema["$ref"].rsplit("/", 1)[-1])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "oneOf" in schema and "type" not in schema and "properties" not in schema:
        return " | ".join(ts_type(option, indent) for option in schema["oneOf"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, indent) for k in kind)
    if kind == "array":
        inner = ts_type(schema.get("items", {}), indent)
        return f"({inner})[]" if "|" in inner else f"{inner}[]"
    if kind == "object" or "properties" in schema:
        return ts_object(schema, indent)
    return {"string": "string", "integer": "number", "number": "number", "boolean": "boolean", "null": "null"}.get(
        kind, "unknown"
    )


def ts_object(schema: dict[str, Any], indent: str) -> str:
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    extra = schema.get("additionalProperties", True)
    if not props:
        value = ts_type(extra, indent) if isinstance(extra, dict) else "unknown"
        return f"{{ [key: string]: {value} }}" if extra is not False else "Record<string, never>"
    inner = indent + "  "
    lines = []
    for name, prop in props.items():
        if "description" in prop:
            lines.append(f"{inner}/** {prop['description']} */")
        lines.append(f"{inner}{name}{'' if name in required else '?'}: {ts_type(prop, inner)};")
    if extra is not False:
        lines.append(f"{inner}[key: string]: unknown;")
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def typescript() -> str:
    out = [f"// {HEADER}.", "/* eslint-disable */", ""]
    for name, schema in COMMON["$defs"].items():
        out.append(f"export type {pascal(name)} = {ts_type(schema)};\n")
    for name, doc in METHODS.items():
        out.append(f"/** {doc['description']} */")
        out.append(f"export type {pascal(name)}Params = {ts_type(doc['$defs']['params'])};")
        out.append(f"export type {pascal(name)}Result = {ts_type(doc['$defs']['result'])};\n")
    for name, doc in NOTIFICATIONS.items():
        out.append(f"/** {doc['description']} */")
        out.append(f"export type {pascal(name)}Params = {ts_type(doc['$defs']['params'])};\n")
    out.append("export interface Methods {")
    out += [f"  {json.dumps(n)}: {{ params: {pascal(n)}Params; result: {pascal(n)}Result }};" for n in METHODS]
    out.append("}\n\nexport interface Notifications {")
    out += [f"  {json.dumps(n)}: {pascal(n)}Params;" for n in NOTIFICATIONS]
    out.append("}\n")
    out.append(f"/** {COMMON['x-env-allow-list-description']} */")
    out.append(f"export const HOST_ENV_ALLOW_LIST: readonly string[] = {json.dumps(COMMON['x-env-allow-list'])};\n")
    out.append("export const ERROR_CODES = {")
    out += [f"  {c['name']}: {code}," for code, c in CODES.items()]
    out.append("} as const;\n")
    return "\n".join(out)


def python_constants() -> str:
    doc = textwrap.fill(COMMON["x-env-allow-list-description"], 100)
    names = [f"    {json.dumps(n)}," for n in COMMON["x-env-allow-list"]]
    return "\n".join([f"# {HEADER}.", f'"""{doc}"""', "", "HOST_ENV_ALLOW_LIST = (", *names, ")", ""])


def flat(schema: dict[str, Any]) -> str:
    return " ".join(ts_type(schema).split()).replace("|", "\\|")


def notes(prop: dict[str, Any]) -> str:
    bits = [prop.get("description", "").rstrip(".")]
    for key, word in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
        ("default", "default"),
    ):
        if key in prop:
            bits.append(f"{word} {json.dumps(prop[key])}")
    return "; ".join(b for b in bits if b)


def table(schema: dict[str, Any]) -> list[str]:
    schema = resolve(schema)
    props = schema.get("properties")
    if not props:
        return [f"`{flat(schema)}`", ""]
    required = set(schema.get("required", []))
    rows = ["| field | type | required | notes |", "|---|---|---|---|"]
    rows += [
        f"| `{n}` | `{flat(p)}` | {'yes' if n in required else ''} | {notes(resolve(p))} |" for n, p in props.items()
    ]
    return rows + [""]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("https://") and "common.json" in ref:
        return {**COMMON["$defs"][ref.rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def line(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def protocol_md() -> str:
    out = [
        f"<!-- {HEADER} -->",
        "# Protocol reference",
        "",
        "Line-delimited JSON-RPC 2.0 over the runtime's stdin/stdout: one UTF-8 JSON object per line in each",
        "direction. Requests carry an `id` and get exactly one response; notifications carry none and get none.",
        "Batch arrays are answered with one array. Errors: `docs/errors.md`. Every type below is in",
        "`schemas/` (JSON Schema 2020-12), which the runtime validates against on input.",
        "",
        "A stream: `generate` answers `{stream_id, started_at}` at once; then come `stream.chunk` notifications,",
        "one `stream.stats` and exactly one final `stream.event` (`completed` with a `finish_reason`, or `error`).",
        "",
        "## Methods",
        "",
    ]
    for name, doc in METHODS.items():
        example = doc["x-example"]
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": name}
        if example["params"] is not None:
            request["params"] = example["params"]
        out += [f"### `{name}`", "", doc["description"], "", "**Params**", ""] + table(doc["$defs"]["params"])
        if name.startswith("$/"):
            del request["id"]
            out += ["A notification: no response.", "", "```", "→ " + line(request), "```", ""]
            continue
        out += ["**Result**", ""] + table(doc["$defs"]["result"])
        if doc["x-errors"]:
            out += ["**Errors**: " + ", ".join(f"`{c}` {CODES[c]['name']}" for c in doc["x-errors"]), ""]
        response = {"jsonrpc": "2.0", "id": 1, "result": example["result"]}
        out += ["```", "→ " + line(request), "← " + line(response), "```", ""]
    out += ["## Notifications (runtime → host)", ""]
    for name, doc in NOTIFICATIONS.items():
        message = {"jsonrpc": "2.0", "method": name, "params": doc["x-example"]}
        out += [f"### `{name}`", "", doc["description"], ""] + table(doc["$defs"]["params"])
        out += ["```", "← " + line(message), "```", ""]
    return "\n".join(out)


def error_table() -> str:
    rows = [f"| {code} | {c['name']} | {c['meaning']} |" for code, c in CODES.items()]
    return "\n".join([BEGIN, "| code | name | meaning |", "|---|---|---|", *rows, END])


def errors_md(current: str) -> str:
    start, end = current.index(BEGIN), current.index(END) + len(END)
    return current[:start] + error_table() + current[end:]


def outputs() -> dict[Path, str]:
    errors_path = ROOT / "docs" / "errors.md"
    return {
        ROOT / "docs" / "protocol.md": protocol_md(),
        errors_path: errors_md(errors_path.read_text()),
        ROOT / "bindings" / "node" / "src" / "protocol.ts": typescript(),
        ROOT / "bindings" / "python" / "mlx_rpc_client" / "_generated.py": python_constants(),
    }


def main() -> int:
    stale = [p for p, text in outputs().items() if not p.exists() or p.read_text() != text]
    if "--check" in sys.argv:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python scripts/gen_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
