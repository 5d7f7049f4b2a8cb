"""Validate what `config apply` asks for (a YAML of monitors and components) against the file's
provisioned objects and the managed ones it leaves in place: the same schema as the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from uptally.config.managed import (
    COMPONENT,
    MONITOR,
    DocumentInvalid,
    Kind,
    Problem,
    token_problems,
    validate,
)
from uptally.config.pointers import json_pointer
from uptally.config.schema import Config

APPLIED = (MONITOR, COMPONENT)  # the sections `config apply` takes, in the order they apply


@dataclass(frozen=True, slots=True)
class Desired:
    objects: dict[Kind, dict[str, BaseModel]]  # what the file asks for, by kind and id
    sections: tuple[Kind, ...]  # the kinds the file has a section for (only those are pruned)


def desired(
    provisioned: Config,
    managed: Mapping[Kind, Mapping[str, BaseModel]],
    data: Any,
    prune: bool,
) -> Desired:
    """The objects `data` ({"monitors": [...], "components": [...]}) declares, validated as one
    whole against `provisioned` (the file's objects) and the managed objects it keeps; raise
    DocumentInvalid naming every problem by JSON pointer (/monitors/3/interval)."""
    if not isinstance(data, dict):
        raise DocumentInvalid([Problem("", "expected a mapping with monitors and/or components")])
    problems = [
        Problem(
            json_pointer((key,)),
            f"unknown section {key!r}: config apply takes monitors and "
            "components (the rest is the config file's)",
        )
        for key in data
        if key not in {kind.section for kind in APPLIED}
    ]
    sections = tuple(kind for kind in APPLIED if kind.section in data)
    documents: dict[Kind, list[Any]] = {}
    for kind in sections:
        value = data[kind.section]
        if value is None:
            value = []
        if not isinstance(value, list):
            problems.append(Problem(json_pointer((kind.section,)), "expected a list"))
            value = []
        documents[kind] = value
        problems += _identity_problems(provisioned, kind, value)
    objects: dict[Kind, dict[str, BaseModel]] = {}
    monitors = _valid(MONITOR, documents.get(MONITOR, []), provisioned, problems)
    objects[MONITOR] = {MONITOR.key_of(m): m for m in monitors}
    kept = _kept(managed, MONITOR, objects[MONITOR], prune and MONITOR in sections)
    problems += token_problems([*provisioned.monitors, *kept], monitors, many=True)
    context = provisioned.model_copy(update={"monitors": [*provisioned.monitors, *kept, *monitors]})
    named = {d.get("id") for d in documents.get(MONITOR, []) if isinstance(d, dict)}
    components = _valid(COMPONENT, documents.get(COMPONENT, []), context, problems, named)
    objects[COMPONENT] = {COMPONENT.key_of(c): c for c in components}
    if problems:
        raise DocumentInvalid(problems)
    return Desired(objects, sections)


def _identity_problems(provisioned: Config, kind: Kind, documents: list[Any]) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, document in enumerate(documents):
        key = document.get(kind.key) if isinstance(document, dict) else None
        if not isinstance(key, str):
            continue
        at = json_pointer((kind.section, index, kind.key))
        origin = provisioned.origin(kind.section, key)
        if origin is not None:
            message = f"{kind.name} {key!r} is provisioned by {origin}: change it there"
            problems.append(Problem(at, message))
        elif key in seen:
            message = f"duplicate {kind.key} {key!r} (also {kind.section}[{seen[key]}])"
            problems.append(Problem(at, message))
        seen.setdefault(key, index)
    return problems


def _valid(
    kind: Kind,
    documents: list[Any],
    config: Config,
    problems: list[Problem],
    pending: set[Any] | None = None,
) -> list[BaseModel]:
    """The models of `documents`, or none with their problems added; a component naming a
    monitor of this file that is itself invalid (`pending`) is not blamed for it."""
    if not documents:
        return []
    try:
        return validate(kind, documents, config, (kind.section,))
    except DocumentInvalid as error:
        known = {monitor.id for monitor in config.monitors}
        for problem in error.problems:
            mentioned = problem.message.removeprefix("unknown monitor ").strip("'")
            if pending and mentioned in pending and mentioned not in known:
                continue
            problems.append(problem)
        return []


def _kept(
    managed: Mapping[Kind, Mapping[str, BaseModel]],
    kind: Kind,
    wanted: Mapping[str, BaseModel],
    pruned: bool,
) -> list[BaseModel]:
    """The managed objects of `kind` that stay as they are (none if the kind is pruned)."""
    if pruned:
        return []
    found = sorted(managed.get(kind, {}).items())
    return [obj for object_id, obj in found if object_id not in wanted]
