"""Which channels and subscribers an event goes to (pure): by event pattern and scope."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from uptally.config.schema import Config


@dataclass(frozen=True, slots=True)
class Scope:
    """What an event is about: components and monitors (both empty: the whole site)."""

    components: frozenset[str]
    monitors: frozenset[str]

    @property
    def site_wide(self) -> bool:
        return not self.components and not self.monitors


@dataclass(frozen=True, slots=True)
class Route:
    target: str  # channel:<id> | subscriber:<id>
    events: tuple[str, ...]  # fnmatch patterns of event kinds
    components: frozenset[str] = frozenset()
    monitors: frozenset[str] = frozenset()
    site_wide_too: bool = False  # with filters: still gets events about the whole site

    def matches(self, kind: str, scope: Scope) -> bool:
        """The one routing rule, for every kind (`monitor.degraded` too, none bypasses it): some
        pattern of `events` matches the whole kind (fnmatch, case-sensitive), then the scope."""
        if not any(fnmatchcase(kind, pattern) for pattern in self.events):
            return False
        if not self.components and not self.monitors:
            return True
        if scope.site_wide:
            return self.site_wide_too
        return bool(self.components & scope.components or self.monitors & scope.monitors)


def scope_of(data: Mapping[str, Any], config: Config) -> Scope:
    """Components and monitors named by an event, each completed by the other through the
    config (a monitor's components; a component's monitors)."""
    components = set(_names(data.get("components"))) | set(_names(data.get("component")))
    monitors = set(_names(data.get("monitors"))) | set(_names(data.get("monitor")))
    for component in config.components:
        if component.id in components:
            monitors.update(component.monitors)
        elif monitors.intersection(component.monitors):
            components.add(component.id)
    return Scope(frozenset(components), frozenset(monitors))


def targets_for(kind: str, scope: Scope, routes: Iterable[Route]) -> list[str]:
    return [route.target for route in routes if route.matches(kind, scope)]


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict | list | tuple):
        return [str(item) for item in value]
    return []
