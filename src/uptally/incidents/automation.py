"""Incidents from verified outages (pure): open on monitor.down, report recovery on monitor.up.

Per component policy: `off`, `open` (open an incident; on recovery post "recovered, we are
monitoring") or `open_and_resolve` (also resolve it). Automatic updates stop once a person has
posted an update: the person has taken over. An outage of a component that already has an open
incident joins that incident instead of opening a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from uptally.clock import Millis
from uptally.config.schema import Component, Config
from uptally.incidents.model import Affected, Impact, Incident, Status, worse
from uptally.incidents.texts import format_duration, format_time, join_names
from uptally.incidents.transitions import Change, declare, post_update
from uptally.status import ComponentStatus

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Signal:
    """A verified outage opening (down) or closing (up), read from a monitor event."""

    down: bool
    monitor: str
    outage: str
    at: Millis
    start: Millis
    locations: tuple[str, ...]
    reason: str
    suppressed: bool = False
    retracted: bool = False
    # The down was held back by this maintenance window, and is announced now that it ended.
    after_maintenance: str | None = None


def signal_of(kind: str, data: Mapping[str, Any], at: Millis) -> Signal | None:
    if kind not in ("monitor.down", "monitor.up"):
        return None
    monitor = data.get("monitor")
    if not isinstance(monitor, str):
        return None
    return Signal(
        down=kind == "monitor.down",
        monitor=monitor,
        outage=str(data.get("outage") or ""),
        at=at,
        start=int(data.get("start") or at),
        locations=tuple(str(name) for name in data.get("locations") or ()),
        reason=str(data.get("reason") or ""),
        suppressed=bool(data.get("suppressed")),
        retracted=bool(data.get("retracted")),
        after_maintenance=str(data.get("after_maintenance") or "") or None,
    )


@dataclass(frozen=True, slots=True)
class Planned:
    change: Change
    new: bool = False  # a declaration (else a change of an existing incident)
    posted: bool = False  # it carries a public update


Ids = Callable[[], str]


def plan(
    signal: Signal, open_incidents: Sequence[Incident], config: Config, now: Millis, new_id: Ids
) -> list[Planned]:
    if signal.down:
        return [] if signal.suppressed else _on_down(signal, open_incidents, config, now, new_id)
    return _on_up(signal, open_incidents, config, now, new_id)


def _on_down(
    signal: Signal, incidents: Sequence[Incident], config: Config, now: Millis, new_id: Ids
) -> list[Planned]:
    automation = config.incidents.automation
    components = [
        c
        for c in config.components
        if signal.monitor in c.monitors and automation.policy(c.id) != "off"
    ]
    planned: list[Planned] = []
    uncovered: list[Component] = []
    updated: dict[str, Incident] = {}  # incident id → changed
    for component in components:
        holder = next(
            (updated.get(i.id, i) for i in incidents if component.id in i.components), None
        )
        if holder is None:
            uncovered.append(component)
            continue
        changed = replace(holder, outages={**holder.outages, signal.monitor: signal.outage})
        if changed.automated:
            changed = replace(changed, components=_statuses(changed, config))
        updated[holder.id] = changed
    for incident in updated.values():
        if incident.automated and incident.status is Status.MONITORING:
            message = (
                f"The problem is back: {_monitor_name(signal.monitor, config)} fails again since "
                f"{format_time(signal.start, config.site.timezone)}"
                f"{_seen_from(signal)}. We are investigating."
            )
            change = post_update(
                incident,
                status=Status.INVESTIGATING,
                message=message,
                components=None,
                actor=SYSTEM,
                now=now,
                update_id=new_id(),
                automatic=True,
            )
            planned.append(Planned(change, posted=True))
        else:
            planned.append(Planned(Change(incident)))
    if uncovered:
        planned.append(_declare(signal, uncovered, config, now, new_id))
    return planned


@dataclass(frozen=True, slots=True)
class Draft:
    """An incident as the template words it for a verified outage (automation and the console
    declare the same text)."""

    title: str
    message: str
    impact: Impact
    components: dict[str, ComponentStatus | None]
    started_at: Millis
    runbook: str | None


def draft(signal: Signal, components: Sequence[Component], config: Config) -> Draft:
    names = join_names([c.title for c in components])
    verb = "is" if len(components) == 1 else "are"
    monitor = _monitor_name(signal.monitor, config)
    # Down since before the end of planned maintenance: the incident (and the downtime it
    # reports) begins when the window ended, not inside the window.
    started = signal.at if signal.after_maintenance else signal.start
    since = format_time(started, config.site.timezone)
    if signal.after_maintenance:
        message = (
            f"We are investigating an outage of {names}: {monitor} is still down after the "
            f"planned maintenance ended at {since}{_seen_from(signal)}."
        )
    else:
        message = (
            f"We are investigating an outage of {names or monitor} since {since}: "
            f"{monitor} is down{_seen_from(signal)}."
        )
    automation = config.incidents.automation
    down = {signal.monitor: signal.outage}
    return Draft(
        title=f"{names} {verb} down" if names else f"{monitor} is down",
        message=message,
        impact=Impact(automation.impact),
        components={c.id: _status(c, down) for c in components},
        started_at=started,
        runbook=automation.runbook,
    )


def _declare(
    signal: Signal, components: list[Component], config: Config, now: Millis, new_id: Ids
) -> Planned:
    worded = draft(signal, components, config)
    change = declare(
        new_id(),
        title=worded.title,
        status=Status.INVESTIGATING,
        impact=worded.impact,
        components=worded.components,
        message=worded.message,
        actor=SYSTEM,
        now=now,
        update_id=new_id(),
        started_at=worded.started_at,
        automatic=True,
        outages={signal.monitor: signal.outage},
        runbook=worded.runbook,
    )
    return Planned(change, new=True, posted=True)


def _on_up(
    signal: Signal, incidents: Sequence[Incident], config: Config, now: Millis, new_id: Ids
) -> list[Planned]:
    planned: list[Planned] = []
    automation = config.incidents.automation
    for incident in incidents:
        if signal.monitor not in incident.outages:
            continue
        outages = {m: o for m, o in incident.outages.items() if m != signal.monitor}
        changed = replace(incident, outages=outages)
        if outages or not changed.automated:
            if changed.automated:
                changed = replace(changed, components=_statuses(changed, config))
            planned.append(Planned(Change(changed)))
            continue
        names = join_names([_component_name(name, config) for name in sorted(changed.components)])
        resolve = all(automation.policy(name) == "open_and_resolve" for name in changed.components)
        when = format_time(signal.at, config.site.timezone)
        lasted = format_duration(signal.at - changed.started_at)
        if signal.retracted:
            message = f"The outage was not confirmed by enough locations: {names} is operational."
        else:
            message = f"Recovered at {when}: {names} operational again after {lasted}."
        if not resolve:
            message += " We are monitoring."
        change = post_update(
            changed,
            status=Status.RESOLVED if resolve else Status.MONITORING,
            message=message,
            components=dict.fromkeys(changed.components, ComponentStatus.OPERATIONAL),
            actor=SYSTEM,
            now=now,
            update_id=new_id(),
            automatic=True,
        )
        planned.append(Planned(change, posted=True))
    return planned


def _statuses(incident: Incident, config: Config) -> dict[str, Affected]:
    """Component statuses from the outages the incident follows (all monitors down: major)."""
    by_id = {c.id: c for c in config.components}
    updated = dict(incident.components)
    for name, affected in incident.components.items():
        component = by_id.get(name)
        if component is None:
            continue
        status = _status(component, incident.outages)
        if status is not affected.status:
            updated[name] = Affected(status, worse(affected.worst, status))
    return updated


def _status(component: Component, outages: Mapping[str, str]) -> ComponentStatus:
    down = sum(1 for m in component.monitors if m in outages)
    if down == 0:
        return ComponentStatus.OPERATIONAL
    if down >= len(component.monitors):
        return ComponentStatus.MAJOR_OUTAGE
    return ComponentStatus.PARTIAL_OUTAGE


def _seen_from(signal: Signal) -> str:
    if not signal.locations:
        return ""
    return f" (seen from {join_names(list(signal.locations))})"


def _monitor_name(monitor: str, config: Config) -> str:
    found = config.monitor(monitor)
    return found.title if found is not None else monitor


def _component_name(component: str, config: Config) -> str:
    found = next((c for c in config.components if c.id == component), None)
    return found.title if found is not None else component
