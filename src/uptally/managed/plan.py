"""What `config apply` would do: the ordered creates, updates and deletes that make the managed
objects match the desired documents (pure: documents in, steps out)."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from uptally.config.managed import COMPONENT, MONITOR, Kind
from uptally.config.pointers import json_pointer

# Monitors before the components that name them; components go before the monitors they named.
_WRITE_ORDER = (MONITOR, COMPONENT)
_DELETE_ORDER = (COMPONENT, MONITOR)


class Action(enum.Enum):
    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"


@dataclass(frozen=True, slots=True)
class Stored:
    """A managed object as it is now: its document and the version the change must find."""

    document: dict[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class FieldChange:
    pointer: str  # "/interval"
    before: Any  # None: absent
    after: Any


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    kind: Kind
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None  # None: deleted
    version: int  # the version it was planned against (0: created)

    def fields(self) -> list[FieldChange]:
        """Each value that differs, by JSON pointer (for an update)."""
        found: list[FieldChange] = []
        _compare(self.before or {}, self.after or {}, (), found)
        return found


def plan(
    current: Mapping[Kind, Mapping[str, Stored]],
    desired: Mapping[Kind, Mapping[str, dict[str, Any]]],
    prune: Collection[Kind] = (),
) -> list[Step]:
    """The steps from `current` to `desired`: creates and updates of monitors, then of
    components, then deletes of components, then of monitors; by id within each. Objects of a
    kind in `prune` that `desired` lacks are deleted; the others are left alone."""
    steps: list[Step] = []
    for kind in _WRITE_ORDER:
        now, wanted = current.get(kind, {}), desired.get(kind, {})
        for object_id in sorted(wanted):
            document, stored = wanted[object_id], now.get(object_id)
            if stored is None:
                steps.append(Step(Action.CREATE, kind, object_id, None, document, 0))
            elif stored.document != document:
                steps.append(
                    Step(Action.UPDATE, kind, object_id, stored.document, document, stored.version)
                )
    for kind in _DELETE_ORDER:
        if kind not in prune:
            continue
        now, wanted = current.get(kind, {}), desired.get(kind, {})
        for object_id in sorted(set(now) - set(wanted)):
            stored = now[object_id]
            steps.append(
                Step(Action.DELETE, kind, object_id, stored.document, None, stored.version)
            )
    return steps


def _compare(old: Any, new: Any, path: tuple[str | int, ...], out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _compare(old.get(key), new.get(key), (*path, key), out)
    elif old != new:
        out.append(FieldChange(json_pointer(path) or "/", old, new))
