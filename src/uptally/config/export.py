"""A config as normalised YAML again (`uptally config export`): `${env:…}` references kept where
the schema takes them as written, deterministic output."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from uptally.config.loader import (
    ConfigError,
    line_of,
    parse_config,
    read_yaml,
    schema_problems,
    show_path,
)
from uptally.config.pointers import PathKey
from uptally.config.schema import Config, monitor_document

_MAX_ROUNDS = 50


def declared(text: str, file: str, environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """What the config file declares as config data, and a note (FILE:LINE: …) for each value
    that is written expanded because its field takes no `${env:…}` text (a port, a duration).
    Raises ConfigError if the file is invalid."""
    expanded = parse_config(text, file, environ)  # the file must be valid as it is
    kept, lines = read_yaml(text, file, environ, keep_env=True)
    real, _ = read_yaml(text, file, environ)
    notes: list[str] = []
    if not isinstance(kept, dict):
        return document(expanded), notes
    for _ in range(_MAX_ROUNDS):
        problems = schema_problems(kept)
        if not problems:
            break
        changed = False
        for path, _message in problems:
            where = _expand_at(kept, real, path)
            if where is not None:
                changed = True
                notes.append(
                    f"{file}:{line_of(lines, where)}: {show_path(where)}: written expanded "
                    "(this field takes no ${env:…} reference)"
                )
        if not changed:
            return document(expanded), ["the ${env:…} references are written expanded"]
    try:
        config = Config.model_validate(kept)
    except ValueError:
        return document(expanded), ["the ${env:…} references are written expanded"]
    return document(config), sorted(set(notes))


def document(config: Config) -> dict[str, Any]:
    """Every section the config sets (defaults left out), monitors as `monitor_document`."""
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for section in ("monitors", "components"):
        if getattr(config, section):
            data[section] = objects(getattr(config, section))
    return data


def objects(items: list[BaseModel]) -> list[dict[str, Any]]:
    """Each object as its document, `id` and `kind` first (read as a YAML file reads)."""
    found: list[dict[str, Any]] = []
    for item in items:
        document = monitor_document(item)
        first: dict[str, Any] = {key: document[key] for key in ("id", "kind") if key in document}
        found.append({**first, **document})
    return found


def render(data: Mapping[str, Any], header: str = "") -> str:
    """YAML text: keys in the schema's order, the same bytes for the same data."""
    body = yaml.safe_dump(
        dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000
    )
    if body.strip() == "{}":
        body = "{}\n"
    return (f"# {header}\n" if header else "") + body


def _expand_at(kept: Any, real: Any, path: PathKey) -> PathKey | None:
    """Replace the deepest value on `path` that differs from the expanded data by the expanded
    value; the path replaced, or None if nothing on it differs."""
    for end in range(len(path), 0, -1):
        where = path[:end]
        old, new = _at(kept, where), _at(real, where)
        if old is not _MISSING and new is not _MISSING and old != new:
            parent = _at(kept, where[:-1])
            parent[where[-1]] = copy.deepcopy(new)
            return where
    return None


_MISSING = object()


def _at(data: Any, path: PathKey) -> Any:
    for part in path:
        in_dict = isinstance(data, dict) and isinstance(part, str) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if in_dict or in_list:
            data = data[part]
        else:
            return _MISSING
    return data


__all__ = ["ConfigError", "declared", "document", "objects", "render"]
