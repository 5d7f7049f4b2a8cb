"""The status page's view of incidents and maintenance windows (read models kept elsewhere)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis, to_datetime
from uptally.config.schema import Config
from uptally.incidents.views import IncidentView
from uptally.maintenance.windows import WindowView
from uptally.status import ComponentStatus, Indicator
from uptally.statuspage.days import DayCell
from uptally.store.incidents import get_incident, list_incidents
from uptally.store.maintenance import list_windows

HISTORY_MS = 90 * 86_400_000
UPCOMING_MS = 60 * 86_400_000
_IMPACT_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}
_INDICATOR_TEXT = {
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


async def incidents(conn: AsyncConnection, now: Millis) -> list[IncidentView]:
    """Public incidents of the last 90 days and every unresolved one, newest first."""
    recent = await list_incidents(conn, since=now - HISTORY_MS, limit=500)
    open_ = await list_incidents(conn, unresolved_only=True, limit=500)
    seen = {i.id for i in recent}
    merged = recent + [i for i in open_ if i.id not in seen]
    return sorted(merged, key=lambda i: i.created_at, reverse=True)


async def maintenance(conn: AsyncConnection, now: Millis) -> list[WindowView]:
    """Windows active now, upcoming in the next 60 days, and of the last 90 days."""
    windows = await list_windows(conn, since=now - HISTORY_MS, until=now + UPCOMING_MS, limit=500)
    return sorted(windows, key=lambda w: w.scheduled_for)


def under_maintenance(windows: Sequence[WindowView], config: Config, now: Millis) -> set[str]:
    """Ids of monitors and components covered by a window in progress now."""
    covered: set[str] = set()
    for window in windows:
        if window.status != "in_progress":
            continue
        covered.update(window.monitors)
        covered.update(window.components)
        for component in config.components:
            if component.id in window.components:
                covered.update(component.monitors)
    return covered


def annotate_days(
    cells: list[DayCell],
    component: str,
    incidents: Sequence[Any],
    windows: Sequence[Any],
    zone: ZoneInfo,
) -> None:
    """Add the titles of incidents and maintenance touching each day (for the bar's tooltips)."""
    for incident in incidents:
        if component not in {c.component_id for c in incident.components}:
            continue
        start = incident.started_at or incident.created_at
        end = incident.resolved_at or 2**62
        for index, cell in enumerate(cells):
            if start < cell.day.end and end > cell.day.start:
                cells[index] = replace(cell, notes=(*cell.notes, f"incident: {incident.title}"))
    for window in windows:
        if component not in window.components or window.status == "cancelled":
            continue
        for index, cell in enumerate(cells):
            if window.scheduled_for < cell.day.end and window.scheduled_until > cell.day.start:
                cells[index] = replace(cell, notes=(*cell.notes, f"maintenance: {window.title}"))
    del zone  # days are already in the site timezone


def annotate_reconfigured(cells: list[DayCell], times: Iterable[Millis], zone: ZoneInfo) -> None:
    """Mark the days a monitor of the component was reconfigured, with the local time only."""
    for at in sorted(set(times)):
        for index, cell in enumerate(cells):
            if cell.day.start <= at < cell.day.end:
                when = to_datetime(at, zone)
                local = when.strftime("%H:%M ") + (when.tzname() or "")
                cells[index] = replace(cell, reconfigured=(*cell.reconfigured, local))
                break


@dataclass(slots=True)
class Declared:
    """What unresolved incidents say about one component: its statuses, and when they last
    said so."""

    statuses: list[ComponentStatus]
    updated_at: Millis


def declared(incidents: Sequence[IncidentView]) -> dict[str, Declared]:
    """Per component, the status each unresolved incident gives it (as of its newest update)."""
    found: dict[str, Declared] = {}
    for incident in incidents:
        if incident.status in ("resolved", "postmortem"):
            continue
        for affected in incident.components:
            status = ComponentStatus(affected.current)
            entry = found.setdefault(affected.component_id, Declared([], incident.updated_at))
            entry.statuses.append(status)
            entry.updated_at = max(entry.updated_at, incident.updated_at)
    return found


def incident_indicator(indicator: Indicator, incidents: Sequence[IncidentView]) -> Indicator:
    """An unresolved incident's impact raises the page's indicator (as on hosted pages)."""
    best = indicator
    for incident in incidents:
        if incident.status in ("resolved", "postmortem"):
            continue
        rank = _IMPACT_RANK.get(incident.impact, 0)
        if rank > _IMPACT_RANK.get(best.indicator, 0):
            best = Indicator(incident.impact, _INDICATOR_TEXT[incident.impact])
    return best


async def history(
    conn: AsyncConnection, since: Millis, until: Millis
) -> tuple[list[Any], list[Any]]:
    """Public incidents and maintenance windows that began in [since, until)."""
    found_incidents: list[Any] = []
    found_windows: list[Any] = []
    try:
        from uptally.store.incidents import list_incidents
    except ImportError:  # pragma: no cover
        pass
    else:
        found_incidents = [
            i
            for i in await list_incidents(conn, since=since, until=until, limit=1000)
            if since <= (i.started_at or i.created_at) < until
        ]
    try:
        from uptally.store.maintenance import list_windows
    except ImportError:  # pragma: no cover
        pass
    else:
        found_windows = [
            w
            for w in await list_windows(conn, since=since, until=until, limit=1000)
            if since <= w.scheduled_for < until and w.status != "cancelled"
        ]
    return found_incidents, found_windows


async def incident(conn: AsyncConnection, incident_id: str) -> IncidentView | None:
    return await get_incident(conn, incident_id)
