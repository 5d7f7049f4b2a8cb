"""Assemble the page model from read models: current states, outages, rollups, incidents, windows.

Never from raw results: outages and hourly rollups are enough for every number shown, so a rush
of visitors costs a few indexed queries per rebuild, and rebuilds are cached (see cache.py).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from uptally import offloop
from uptally.clock import Millis, to_datetime
from uptally.config.schema import Component, Config, SlaPolicy
from uptally.evaluator import MonitorState, MonitorStatus
from uptally.managed import history
from uptally.runtime import Runtime
from uptally.sla import intervals as iv
from uptally.sla.intervals import Interval
from uptally.sla.ledger import (
    component_measured_from,
    component_uptime,
    monitor_groups,
    unmonitored,
)
from uptally.sla.report import Inputs
from uptally.status import ComponentStatus, component_status, page_indicator, worst
from uptally.statuspage import sources
from uptally.statuspage.days import (
    ComponentDowntime,
    DayCell,
    component_downtime,
    day_cells,
    last_days,
    shared,
    uptime_percent,
)
from uptally.statuspage.model import (
    UPTIME_PERIODS,
    ComponentView,
    GroupView,
    MonitorView,
    PageModel,
)
from uptally.statuspage.scope import PageScope, main_scope
from uptally.store import monitor_pauses as pause_store
from uptally.store import monitoring_gaps as gap_store
from uptally.store import outages as outage_store
from uptally.store import rollups as rollup_store
from uptally.store import sla as sla_store
from uptally.subscribers.service import ways

DAYS = 90
HOUR = 3_600_000


def page_id(title: str) -> str:
    return hashlib.sha256(title.encode()).hexdigest()[:12]


def group_id(name: str) -> str:
    return "group-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "group")


async def build_page(runtime: Runtime, url: str, scope: PageScope | None = None) -> PageModel:
    """The model of one page: the main one, or (with `scope`) a page of `status_pages`, which
    shows only its components, their monitors and the incidents and maintenance touching them."""
    config = runtime.config
    scope = scope or main_scope(config)
    now = runtime.clock.now_ms()
    monitors = {m.id: m for m in config.monitors}
    components = scope.pick(config.components)
    shown = [m for c in components for m in c.monitors]
    since = now - UPTIME_PERIODS["90d"] - 86_400_000
    async with runtime.db.connect() as conn:
        stored = await outage_store.list_outages(
            conn, since=since, verified_only=True, limit=1_000_000
        )
        measured = await sla_store.measured_since(
            conn, (monitors[m] for m in shown if m in monitors), config.site.timezone
        )
        gaps = [g.span for g in await gap_store.list_gaps(conn, since=since, until=now)]
        pauses = pause_store.spans_by_monitor(
            await pause_store.list_pauses(conn, since=since, until=now, monitors=shown), now
        )
        reconfigured = await history.reconfigured(conn, shown, since)
        hourly = await rollup_store.hourly_totals(conn, shown, now - 24 * HOUR - now % HOUR, now)
        incidents = scope.incidents(await sources.incidents(conn, now))
        maintenance = scope.windows(await sources.maintenance(conn, now))
        # With `sla.public_policy` the uptime % follow the SLA's counting (maintenance and
        # exclusions out, degraded at its weight); the day cells still show verified downtime.
        policy_inputs = (
            await sla_store.load_inputs(conn, config, since, now)
            if config.sla.public_policy
            else None
        )
    # The evaluator is read here, on the loop that changes it; the model is put together in the
    # render thread (at 10,000 monitors that takes seconds the probes must not wait for).
    monitor_statuses: dict[str, MonitorStatus | None] = {}
    pacer = offloop.Pacer()
    for monitor_id in shown:
        monitor_statuses[monitor_id] = runtime.evaluator.status(monitor_id)
        pause = runtime.pausing.paused.get(monitor_id)
        if pause is not None:  # neither up nor down: its component is judged without it
            paused = MonitorStatus(monitor_id, MonitorState.PAUSED, pause.start)
            monitor_statuses[monitor_id] = paused
        if monitor_id not in measured:  # not yet in the hourly rollups (written every minute)
            snapshots = runtime.evaluator.location_snapshots(monitor_id)
            starts = [s.runs[0][1] for s in snapshots if s.runs]
            if starts:
                measured[monitor_id] = min(starts)
        await pacer.tick()
    gathered = Gathered(
        now,
        stored,
        measured,
        hourly,
        incidents,
        maintenance,
        policy_inputs,
        gaps,
        pauses,
        reconfigured,
    )
    return await offloop.run(assemble_page, config, url, scope, gathered, monitor_statuses)


@dataclass(frozen=True, slots=True)
class Gathered:
    """What the page is made of, read from the database."""

    now: Millis
    stored: list[outage_store.StoredOutage]
    measured: dict[str, Millis]
    hourly: list[rollup_store.HourTotals]
    incidents: list[Any]
    maintenance: list[Any]
    policy_inputs: Inputs | None
    gaps: list[tuple[Millis, Millis]]  # when uptally was not running: not monitored
    # monitor -> when it was paused: not monitored for it (see sla.ledger.unmonitored)
    pauses: dict[str, list[Interval]] = field(default_factory=dict)
    # When shown monitors had their configuration changed (API or file): markers on the days.
    reconfigured: Mapping[str, list[Millis]] = field(default_factory=dict)


def assemble_page(
    config: Config,
    url: str,
    scope: PageScope,
    gathered: Gathered,
    monitor_statuses: Mapping[str, MonitorStatus | None],
) -> PageModel:
    """The model from what was gathered: pure computation, run off the event loop."""
    now, stored, measured, hourly = (
        gathered.now,
        gathered.stored,
        gathered.measured,
        gathered.hourly,
    )
    incidents, maintenance = gathered.incidents, gathered.maintenance
    policy_inputs, gaps, pauses = gathered.policy_inputs, gathered.gaps, gathered.pauses
    zone = ZoneInfo(config.site.timezone)
    monitors = {m.id: m for m in config.monitors}
    components = scope.pick(config.components)
    policy = config.sla.policy(config.sla.public_policy) if config.sla.public_policy else None
    holders = monitor_groups(config.components) if policy is not None else {}
    per_monitor: dict[str, list[Interval]] = defaultdict(list)
    per_component: dict[str, list[Interval]] = defaultdict(list)
    for item in stored:
        interval = (item.outage.start, item.outage.end if item.outage.end is not None else now)
        if item.component:
            per_component[item.component].append(interval)
        elif item.outage.monitor:
            per_monitor[item.outage.monitor].append(interval)
    for monitor_id, paused in pauses.items():  # a paused monitor's time is not its downtime
        if monitor_id in per_monitor:
            per_monitor[monitor_id] = iv.subtract(iv.merge(per_monitor[monitor_id]), paused)
    hours, latency = latency_by_monitor(hourly, now, zone)
    days = last_days(DAYS, now, zone)
    alike: dict[DayCell, DayCell] = {}
    under_maintenance = sources.under_maintenance(maintenance, config, now)
    declared = sources.declared(incidents)

    groups: dict[str | None, GroupView] = {}
    ungrouped: list[ComponentView] = []
    for position, component in enumerate(components, 1):
        views = []
        for monitor_id in component.monitors:
            monitor = monitors.get(monitor_id)
            status = monitor_statuses.get(monitor_id)
            state = status.state if status else MonitorState.UNKNOWN
            paused_now = state is MonitorState.PAUSED
            if not paused_now and (
                monitor_id in under_maintenance or component.id in under_maintenance
            ):
                state = MonitorState.MAINTENANCE
            own = component_downtime(
                {monitor_id: per_monitor.get(monitor_id, [])},
                [],
                unmonitored([monitor_id], gaps, pauses),
            )
            points, last_hour = latency.get(monitor_id, ((), None))
            views.append(
                MonitorView(
                    monitor_id,
                    monitor.title if monitor else monitor_id,
                    state.value,
                    status.since if status else None,
                    points,
                    last_hour,
                    _uptimes(own, now, measured.get(monitor_id)),
                    monitor.kind if monitor else "",
                    hours,
                )
            )
        downtime = component_downtime(
            {m: per_monitor.get(m, []) for m in component.monitors},
            per_component.get(component.id, []),
            unmonitored(component.monitors, gaps, pauses),
        )
        seen = component_measured_from(component, measured)
        cells = day_cells(downtime, days, seen)
        sources.annotate_days(cells, component.id, incidents, maintenance, zone)
        changed = (at for m in component.monitors for at in gathered.reconfigured.get(m, []))
        sources.annotate_reconfigured(cells, changed, zone)
        cells = shared(cells, alike)
        said = declared.get(component.id)
        overall = component_status(
            (MonitorState(v.state) for v in views), said.statuses if said else ()
        )
        updates = [v.since for v in views if v.since is not None]
        if said is not None:
            updates.append(said.updated_at)
        view = ComponentView(
            component.id,
            component.title,
            component.description,
            group_id(component.group) if component.group else None,
            position,
            overall,
            max(updates, default=None),
            views,
            cells,
            _uptimes(downtime, now, seen)
            if policy_inputs is None
            else _policy_uptimes(component, policy_inputs, policy, holders, now, measured),
            seen,
        )
        if component.group is None:
            ungrouped.append(view)
            continue
        group = groups.get(component.group)
        if group is None:
            group = groups[component.group] = GroupView(
                group_id(component.group),
                component.group,
                position,
                ComponentStatus.OPERATIONAL,
                None,
                [],
            )
        group.components.append(view)
        group.status = worst([group.status, overall])
        if view.updated_at is not None:
            group.updated_at = max(group.updated_at or 0, view.updated_at)

    statuses = {c.id: c.status for g in groups.values() for c in g.components}
    statuses.update({c.id: c.status for c in ungrouped})
    indicator = page_indicator(statuses, config.site.maintenance_indicator)
    indicator = sources.incident_indicator(indicator, incidents)
    return PageModel(
        scope.site,
        page_id(config.site.title if scope.page is None else f"page:{scope.page}"),
        url,
        now,
        indicator,
        [g for key, g in groups.items() if key is not None],
        ungrouped,
        incidents,
        maintenance,
        ways(config).any,
        gaps,
    )


def _uptimes(
    downtime: ComponentDowntime, now: Millis, measured_from: Millis | None
) -> dict[str, float | None]:
    return {
        key: uptime_percent(downtime, now - length, now, measured_from)
        for key, length in UPTIME_PERIODS.items()
    }


def _policy_uptimes(
    component: Component,
    inputs: Inputs,
    policy: SlaPolicy | None,
    holders: Mapping[str, Collection[str]],
    now: Millis,
    measured: Mapping[str, Millis],
) -> dict[str, float | None]:
    """Uptime % per period counted by the public SLA policy, over the time it was measured."""
    return {
        key: component_uptime(
            component,
            inputs.outages,
            inputs.windows,
            now - length,
            now,
            policy,
            now=now,
            exclusions=inputs.exclusions,
            monitor_components=holders,
            measured=measured,
            gaps=inputs.gaps,
            pauses=inputs.pauses,
        )
        for key, length in UPTIME_PERIODS.items()
    }


def latency_by_monitor(
    hourly: list[rollup_store.HourTotals], now: Millis, zone: ZoneInfo
) -> tuple[tuple[str, ...], dict[str, tuple[tuple[float | None, ...], float | None]]]:
    """The labels of the last 24 hours and, per monitor, its 24 hourly average latencies (all
    locations together) and the newest one."""
    first_hour = now - now % HOUR - 23 * HOUR
    sums: dict[str, list[list[float]]] = defaultdict(lambda: [[0.0, 0.0] for _ in range(24)])
    for rollup in hourly:
        index = (rollup.hour - first_hour) // HOUR
        if 0 <= index < 24 and rollup.checks:
            slot = sums[rollup.monitor][index]
            slot[0] += rollup.latency_sum
            slot[1] += rollup.checks
    labels = tuple(to_datetime(first_hour + i * HOUR, zone).strftime("%H:00") for i in range(24))
    result = {}
    for monitor, slots in sums.items():
        values = tuple((s / n) if n else None for s, n in slots)
        newest = next((v for v in reversed(values) if v is not None), None)
        result[monitor] = (values, newest)
    return labels, result
