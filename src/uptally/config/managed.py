"""Objects managed at runtime: one API body validated by the YAML schema, and the effective
config (what the file provisions plus what the database manages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from uptally.config.loader import schema_problems
from uptally.config.pointers import PathKey, json_pointer
from uptally.config.schema import Config, HeartbeatMonitor
from uptally.config.sharing import compact_monitors


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of managed object: its name in the API and audit log, and its config section."""

    name: str  # monitor, component
    section: str  # monitors, components
    key: str = "id"

    def key_of(self, obj: BaseModel) -> str:
        return str(getattr(obj, self.key))


MONITOR = Kind("monitor", "monitors")
COMPONENT = Kind("component", "components")
STATUS_PAGE = Kind("status_page", "status_pages")
LOCATION = Kind("location", "locations", key="name")
KINDS = {kind.name: kind for kind in (MONITOR, COMPONENT, STATUS_PAGE, LOCATION)}


@dataclass(frozen=True, slots=True)
class Problem:
    pointer: str  # JSON pointer into the body, e.g. /expect/1
    message: str


class DocumentInvalid(Exception):
    """A body the schema refuses; `problems` names each with its JSON pointer."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.pointer or '/'}: {p.message}" for p in self.problems))


def validate(
    kind: Kind, documents: Sequence[Any], config: Config, prefix: PathKey = ()
) -> list[BaseModel]:
    """Validate bodies of one kind against the schema and against what `config` holds (the
    locations a monitor names, the monitors a component lists). Raise DocumentInvalid naming
    every problem; paths start with `prefix` + the body's index when there are several."""
    problems: list[Problem] = []
    # One document alone has no problem that it has among the others (they only add duplicates
    # and clashes), so a batch valid as a whole needs no look at each (a schema pass apiece).
    whole = len(documents) > 1 and all(isinstance(d, dict) for d in documents)
    checked = () if whole and not _problems(kind, list(documents), config) else documents
    for index, document in enumerate(checked):
        base: PathKey = (*prefix, index) if len(documents) > 1 or prefix else ()
        if not isinstance(document, dict):
            problems.append(Problem(json_pointer(base), "expected a JSON object"))
            continue
        for path, message in _problems(kind, [document], config):
            problems.append(Problem(json_pointer((*base, *path[2:])), message))
    if kind is STATUS_PAGE:  # paths must differ from every other page's, also in this batch
        for index, document in enumerate(documents):
            if isinstance(document, dict):
                clash = _path_clash(document, config, list(documents[:index]))
                if clash:
                    base = (*prefix, index) if len(documents) > 1 or prefix else ()
                    problems.append(Problem(json_pointer((*base, "path")), clash))
    if problems:
        raise DocumentInvalid(problems)
    section = Config.model_validate({kind.section: list(documents)})
    objects: list[BaseModel] = list(getattr(section, kind.section))
    if kind is MONITOR:
        compact_monitors(objects)
    return objects


def _problems(
    kind: Kind, documents: list[dict[str, Any]], config: Config
) -> list[tuple[PathKey, str]]:
    data: dict[str, Any] = {kind.section: documents}
    if kind is MONITOR:
        # The locations it may name (stubs: only their names are looked at, their own
        # problems are not this body's).
        data["locations"] = [{"name": name} for name in config.location_names if name != "local"]
    found = [
        p for p in schema_problems(data) if (len(p[0]) > 1 and p[0][0] == kind.section) or not p[0]
    ]
    if kind is COMPONENT:  # its monitors are looked up in `config`, not in this body
        found = [p for p in found if not p[1].startswith("unknown monitor")]
        known = {m.id for m in config.monitors}
        for index, document in enumerate(documents):
            for j, ref in enumerate(document.get("monitors") or []):
                if isinstance(ref, str) and ref not in known:
                    found.append((("components", index, "monitors", j), f"unknown monitor {ref!r}"))
    if kind is STATUS_PAGE:  # its components are looked up in `config`
        found = [p for p in found if not p[1].startswith("unknown component")]
        known = {c.id for c in config.components}
        for index, document in enumerate(documents):
            for j, ref in enumerate(document.get("components") or []):
                if isinstance(ref, str) and ref not in known:
                    path = ("status_pages", index, "components", j)
                    found.append((path, f"unknown component {ref!r}"))
    return found


def _path_clash(document: dict[str, Any], config: Config, earlier: Sequence[Any]) -> str | None:
    """Another page (not this id) already served at the path this page names."""
    path, page_id = document.get("path"), document.get("id")
    if not isinstance(path, str):
        return None
    for page in config.status_pages:
        if page.path == path and page.id != page_id:
            return f"path {path!r} is already the path of status page {page.id!r}"
    for other in earlier:
        if isinstance(other, dict) and other.get("path") == path:
            return f"path {path!r} is already the path of status page {other.get('id')!r}"
    return None


def merge(file: Config, managed: Mapping[str, Sequence[BaseModel]]) -> Config:
    """The effective config: the file's objects, then the managed ones of each section."""
    update: dict[str, Any] = {}
    for name, objects in managed.items():
        section = KINDS[name].section
        if objects:
            update[section] = [*getattr(file, section), *objects]
    return file.model_copy(update=update) if update else file


def token_problems(
    taken_by: Iterable[BaseModel], monitors: Sequence[BaseModel], many: bool
) -> list[Problem]:
    """A heartbeat's own ping addresses (token, uuid, slug) must be no other heartbeat's:
    neither one of `taken_by` nor an earlier one of `monitors` (`many`: paths name the index,
    /monitors/3/token)."""
    fields = ("token", "uuid", "slug")
    taken: dict[str, dict[object, str]] = {field: {} for field in fields}
    for m in taken_by:
        if isinstance(m, HeartbeatMonitor):
            for field in fields:
                if getattr(m, field) is not None:
                    taken[field][getattr(m, field)] = m.id
    problems = []
    for index, monitor in enumerate(monitors):
        if not isinstance(monitor, HeartbeatMonitor):
            continue
        for field in fields:
            value = getattr(monitor, field)
            if value is None:
                continue
            other = taken[field].get(value)
            if other is not None and other != monitor.id:
                at = json_pointer(("monitors", index, field) if many else (field,))
                problems.append(Problem(at, f"{field} already used by monitor {other!r}"))
            taken[field][value] = monitor.id
    return problems
