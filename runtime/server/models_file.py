"""Read the models file (--models / RUNTIME_MODELS) at start: a file that does not validate stops
the start with the path and the reason, rather than serve a registry the runtime had to guess at."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.catalog import EMBEDDED, Catalog, CatalogError, escape, from_document
from runtime.config import Limits
from runtime.engine.resolve import embedded_models
from runtime.protocol import schemas


class ModelsFileError(ValueError):
    pass


def read_models_file(limits: Limits) -> Catalog:
    """The registry of `limits.models` (an empty one when no file is given)."""
    if not limits.models:
        return Catalog()
    path = Path(limits.models).expanduser()
    try:
        data = json.loads(path.read_text(), parse_constant=_no_constant)
    except (OSError, ValueError) as exc:
        raise ModelsFileError(f"models file {path}: {exc}") from None
    problems = schemas.check(schemas.document("models-file.json"), "file", data)
    if problems:
        listed = "; ".join(f"{p['path'] or '/'}: {p['message']}" for p in problems)
        raise ModelsFileError(f"models file {path} does not validate: {listed}")
    try:
        catalog = from_document(data, str(path.resolve()), limits.model_dirs)
    except CatalogError as exc:
        raise ModelsFileError(f"models file {path}: {exc}") from None
    _check_embedded_names(catalog, path)
    return catalog


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_embedded_names(catalog: Catalog, path: Path) -> None:
    known = embedded_models()
    for entry in catalog.entries.values():
        if entry.kind == EMBEDDED and entry.name not in known:
            raise ModelsFileError(
                f"models file {path}: /models/{escape(entry.model_id)}/source/embedded: no embedded model "
                f"{entry.name!r} (there are: {', '.join(known)})"
            )
