"""Read model of current status: components from their monitors, and the page's overall status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from uptally.evaluator import MonitorState


class ComponentStatus(StrEnum):
    """The Statuspage v2 component statuses, best first."""

    OPERATIONAL = "operational"
    DEGRADED_PERFORMANCE = "degraded_performance"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"
    UNDER_MAINTENANCE = "under_maintenance"


SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


@dataclass(frozen=True, slots=True)
class Indicator:
    indicator: str  # none | minor | major | critical (| maintenance, if the site allows it)
    description: str


def component_status(
    states: Iterable[MonitorState], declared: Iterable[ComponentStatus] = ()
) -> ComponentStatus:
    """The worse of what the component's monitors show and what open incidents declare for it.

    Monitors: all down is a major outage, some down a partial one; a paused monitor is left
    out (neither up nor down), so a component whose monitors are all paused is operational.
    `declared` holds the status each unresolved incident gives the component (a resolved one
    declares nothing any more).
    """
    return worst([_monitored(states), *declared])


def _monitored(states: Iterable[MonitorState]) -> ComponentStatus:
    states = list(states)
    known = [s for s in states if s not in (MonitorState.UNKNOWN, MonitorState.PAUSED)]
    if not known:
        return ComponentStatus.OPERATIONAL
    down = sum(1 for s in known if s is MonitorState.DOWN)
    if down and down == len(known):
        return ComponentStatus.MAJOR_OUTAGE
    if down:
        return ComponentStatus.PARTIAL_OUTAGE
    if any(s is MonitorState.DEGRADED for s in known):
        return ComponentStatus.DEGRADED_PERFORMANCE
    if all(s is MonitorState.MAINTENANCE for s in known):
        return ComponentStatus.UNDER_MAINTENANCE
    return ComponentStatus.OPERATIONAL


def worst(statuses: Iterable[ComponentStatus]) -> ComponentStatus:
    return max(statuses, key=SEVERITY.__getitem__, default=ComponentStatus.OPERATIONAL)


def page_indicator(
    statuses: Mapping[str, ComponentStatus], maintenance_indicator: bool = False
) -> Indicator:
    """The page's blended status, as hosted status pages word it.

    Every component in a major outage is critical; some components down (partially or fully)
    is a partial system outage; degraded performance is minor.
    """
    values = list(statuses.values())
    overall = worst(values)
    if values and all(v is ComponentStatus.MAJOR_OUTAGE for v in values):
        return Indicator("critical", "Major System Outage")
    if overall in (ComponentStatus.MAJOR_OUTAGE, ComponentStatus.PARTIAL_OUTAGE):
        return Indicator("major", "Partial System Outage")
    if overall is ComponentStatus.DEGRADED_PERFORMANCE:
        return Indicator("minor", "Degraded System Performance")
    if overall is ComponentStatus.UNDER_MAINTENANCE:
        return Indicator(
            "maintenance" if maintenance_indicator else "minor", "Service Under Maintenance"
        )
    return Indicator("none", "All Systems Operational")
