"""The model registry: what a models file says the runtime may serve, by id and alias.

A models file (`--models FILE` or `RUNTIME_MODELS`) is JSON validated by schemas/models-file.json
before this module sees it; here its entries become `ModelEntry`s, with the checks a schema cannot
make (an alias that shadows an id, a draft or default that names nothing, a keep-alive that does not
parse, a local path outside the allowed directories). Any of them refuses the start, with the path
of the offending field. No MLX and no protocol here: every layer may ask the catalog.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMBEDDED = "embedded"
LOCAL = "local"
HUB = "hub"
FOREVER = None  # a keep-alive of -1: never unloaded for being idle
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class CatalogError(ValueError):
    """A models file the runtime refuses to start with; `path` is the JSON pointer of the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '/'}: {message}")
        self.path, self.message = path, message


def parse_keep_alive(value: Any) -> float | None:
    """Ollama's keep-alive: seconds (a number or "300"), a duration ("5m", "1h30m", "90s", "500ms"),
    0 (unload when the last stream ends) or any negative value (never). Returns seconds, None = never."""
    if isinstance(value, bool):
        raise ValueError('keep_alive must be a duration such as "5m", a number of seconds, 0 or -1')
    if isinstance(value, int | float):
        if math.isnan(value):
            raise ValueError("keep_alive must be a number of seconds, not NaN")
        return None if value < 0 or math.isinf(value) else float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError('keep_alive must be a duration such as "5m", a number of seconds, 0 or -1')
    text = value.strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    try:
        seconds = float(body)
    except ValueError:
        seconds = _duration_seconds(body, value)
    return None if negative and seconds > 0 else seconds


def _duration_seconds(body: str, original: str) -> float:
    parts = _DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f'keep_alive {original!r} does not parse: use e.g. "5m", "1h30m", "90s", 300, 0 or -1')
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def describe_keep_alive(seconds: float | None) -> str:
    return "-1" if seconds is None else f"{seconds:g}s"


@dataclass(frozen=True)
class ModelEntry:
    model_id: str
    kind: str  # embedded, local or hub
    name: str  # the embedded model's name, the directory, or the hub repo
    revision: str | None = None
    aliases: tuple[str, ...] = ()
    draft_model_id: str | None = None
    num_draft_tokens: int | None = None
    load: dict[str, Any] = field(default_factory=dict)  # load_model options: context_length, cpu_weights
    keep_alive: float | None = FOREVER  # seconds idle before it is unloaded; None: never
    keep_alive_set: bool = False  # False: the file gives none (the runtime's default applies)
    pinned: bool = False

    def describe_source(self) -> dict[str, Any]:
        source: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.revision:
            source["revision"] = self.revision
        return source


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, ModelEntry] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> id
    default_model: str | None = None
    path: str | None = None  # the models file it came from

    def lookup(self, name: str) -> ModelEntry | None:
        """The entry `name` is the id or an alias of."""
        return self.entries.get(self.aliases.get(name, name))

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)


def from_document(data: dict[str, Any], path: str | None, allowed_dirs: tuple[str, ...] = ()) -> Catalog:
    """A catalog from a models file already validated by its schema."""
    entries = {model_id: _entry(model_id, spec, allowed_dirs) for model_id, spec in data.get("models", {}).items()}
    aliases = _aliases(entries)
    catalog = Catalog(entries, aliases, data.get("default_model"), path)
    _check_references(catalog)
    return catalog


def _entry(model_id: str, spec: dict[str, Any], allowed_dirs: tuple[str, ...]) -> ModelEntry:
    where = f"/models/{escape(model_id)}"
    source = spec["source"]
    kind = EMBEDDED if "embedded" in source else LOCAL if "path" in source else HUB
    name = source.get("embedded") or source.get("path") or source["hub"]
    if kind == LOCAL:
        name = str(Path(name).expanduser())
        problem = outside_allowed(name, allowed_dirs)
        if problem:
            raise CatalogError(f"{where}/source/path", problem)
    keep_alive: float | None = FOREVER
    if "keep_alive" in spec:
        try:
            keep_alive = parse_keep_alive(spec["keep_alive"])
        except ValueError as exc:
            raise CatalogError(f"{where}/keep_alive", str(exc)) from None
    return ModelEntry(
        model_id=model_id,
        kind=kind,
        name=name,
        revision=source.get("revision"),
        aliases=tuple(spec.get("aliases", ())),
        draft_model_id=spec.get("draft"),
        num_draft_tokens=spec.get("num_draft_tokens"),
        load=dict(spec.get("load", {})),
        keep_alive=keep_alive,
        keep_alive_set="keep_alive" in spec,
        pinned=bool(spec.get("pinned", False)),
    )


def _aliases(entries: dict[str, ModelEntry]) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for entry in entries.values():
        for index, alias in enumerate(entry.aliases):
            where = f"/models/{escape(entry.model_id)}/aliases/{index}"
            if alias in entries and alias != entry.model_id:
                raise CatalogError(where, f"alias {alias!r} is already the id of another model")
            if alias in aliases and aliases[alias] != entry.model_id:
                raise CatalogError(where, f"alias {alias!r} already names {aliases[alias]!r}")
            aliases[alias] = entry.model_id
    return aliases


def _check_references(catalog: Catalog) -> None:
    if catalog.default_model is not None and catalog.lookup(catalog.default_model) is None:
        raise CatalogError("/default_model", f"{catalog.default_model!r} is not a model id or alias in this file")
    for entry in catalog.entries.values():
        if entry.draft_model_id is None:
            continue
        where = f"/models/{escape(entry.model_id)}/draft"
        if catalog.lookup(entry.draft_model_id) is None:
            raise CatalogError(where, f"{entry.draft_model_id!r} is not a model id or alias in this file")
        if catalog.canonical(entry.draft_model_id) == entry.model_id:
            raise CatalogError(where, "a model cannot be its own draft")


def outside_allowed(path: str, allowed_dirs: tuple[str, ...]) -> str | None:
    """Why `path` may not be loaded under the local-path policy (None: it may; no policy: any path)."""
    if not allowed_dirs:
        return None
    resolved = Path(path).expanduser().resolve()
    for allowed in allowed_dirs:
        if resolved.is_relative_to(Path(allowed).expanduser().resolve()):
            return None
    return f"{path} is outside the allowed model directories ({', '.join(allowed_dirs)})"


def looks_like_path(name: str) -> bool:
    """A model id that names a directory rather than an embedded model or a hub repo."""
    return os.path.isabs(name) or name.startswith((".", "~")) or Path(name).is_dir()


def escape(key: str) -> str:
    """A key as one JSON-pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")
