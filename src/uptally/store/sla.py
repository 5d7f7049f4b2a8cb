"""The SLA ledger's storage: exclusions, alert states, closed periods, and loading report inputs.

`uptime_by_component` is the status page's entry point: uptime % per component over a period,
from outages and maintenance windows (never raw results), the way `sla.public_policy` counts.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import histogram
from uptally.clock import Millis
from uptally.config.schema import Config, MonitorBase
from uptally.sla.ledger import (
    Exclusion,
    component_uptime,
    monitor_groups,
    monitors_measured_from,
)
from uptally.sla.periods import Period
from uptally.sla.report import Inputs, Report, build_report, config_exclusions
from uptally.store import maintenance as maintenance_store
from uptally.store import meta
from uptally.store import monitor_pauses as pause_store
from uptally.store import monitoring_gaps as gap_store
from uptally.store import outages as outage_store
from uptally.store import rollups as rollup_store
from uptally.store.database import Database, insert_ignore, upsert
from uptally.store.rollups import HOUR_MS
from uptally.store.tables import rollups
from uptally.store.tables_maintenance import (
    latency_days,
    sla_alerts,
    sla_exclusions,
    sla_periods,
)

_MAX_OUTAGES = 10_000_000
DAY_MS = 86_400_000
# Hourly rollups this old no longer change: agents replay their queues (kept 7 days by
# default) and the evaluator takes results back to 24 h before a location's newest one.
SETTLE_MS = 8 * DAY_MS
COMPACTED = "sla.latency_days_until"  # meta: days before this are in latency_days


# -- inputs of reports -------------------------------------------------------------------------


async def load_inputs(
    conn: AsyncConnection,
    config: Config,
    start: Millis,
    end: Millis,
    *,
    latency: bool = False,
) -> Inputs:
    """Outages, maintenance, exclusions and times not monitored (gaps, pauses) touching
    [start, end), when each monitor's measured time began (and latency histograms)."""
    outages = await outage_store.list_outages(conn, since=start, until=end, limit=_MAX_OUTAGES)
    windows = await maintenance_store.in_effect(conn, start, end)
    # Exclusions written in the config are in the table too (synced and audit-logged).
    exclusions = [x.exclusion for x in await list_exclusions(conn, since=start, until=end)]
    measured = await measured_since(conn, config.monitors, config.site.timezone)
    histograms: dict[str, dict[int, int]] = {}
    if latency:
        monitors = {m.id for m in config.monitors if m.slo is not None}
        for component in config.components:
            if component.slo is not None:
                monitors.update(component.monitors)
        histograms = await latency_histograms(conn, monitors, start, end)
    gaps = [gap.span for gap in await gap_store.list_gaps(conn, since=start, until=end)]
    pauses = pause_store.spans_by_monitor(
        await pause_store.list_pauses(conn, since=start, until=end), end
    )
    return Inputs(outages, windows, exclusions, histograms, measured, gaps, pauses)


async def measured_since(
    conn: AsyncConnection, monitors: Iterable[MonitorBase], timezone: str
) -> dict[str, Millis]:
    """When each monitor's measured time began (`monitors_measured_from`: its
    `monitoring_started`, else its first result); monitors not measured yet are absent."""
    monitors = list(monitors)
    first = await rollup_store.first_results(conn, [m.id for m in monitors])
    return monitors_measured_from(monitors, first, timezone)


async def latency_histograms(
    conn: AsyncConnection, monitors: Collection[str], start: Millis, end: Millis
) -> dict[str, dict[int, int]]:
    """Each monitor's latency histogram over [start, end), merged over hours and locations.

    Whole days that are compacted come from `latency_days`, the rest from hourly rollups.
    Rollups are per UTC hour: a period that starts inside an hour (a zone offset of 30 or 45
    minutes) takes that whole hour.
    """
    first = start - start % HOUR_MS
    compacted = int(await meta.get(conn, COMPACTED) or 0)
    day_from = -(-first // DAY_MS) * DAY_MS
    day_to = min(end - end % DAY_MS, compacted)
    ranges = [(first, end)]
    texts: dict[str, list[str]] = {}
    wanted = sorted(monitors)
    if day_from < day_to:
        ranges = [(first, day_from), (day_to, end)]
        c = latency_days.c
        for i in range(0, len(wanted), 500):
            query = select(c.monitor, c.histogram).where(
                c.monitor.in_(wanted[i : i + 500]), c.day >= day_from, c.day < day_to
            )
            for monitor, text in await conn.execute(query):
                texts.setdefault(monitor, []).append(text)
    for low, high in ranges:
        if low >= high:
            continue
        for i in range(0, len(wanted), 500):
            query = select(rollups.c.monitor, rollups.c.histogram).where(
                rollups.c.monitor.in_(wanted[i : i + 500]),
                rollups.c.hour >= low,
                rollups.c.hour < high,
            )
            for monitor, text in await conn.execute(query):
                texts.setdefault(monitor, []).append(text)
    return {monitor: histogram.decode(_merged(items)) for monitor, items in texts.items()}


def _merged(texts: list[str]) -> dict[str, int]:
    # One parse of the joined documents is several times faster than one per row.
    parsed: list[dict[str, int]] = json.loads("[" + ",".join(texts) + "]")
    counts: dict[str, int] = {}
    get = counts.get
    for item in parsed:
        for key, count in item.items():
            counts[key] = get(key, 0) + count
    return counts


async def compact_latency(db: Database, now: Millis, max_days: int = 3) -> int:
    """Merge the hourly latency histograms of settled days into one row per monitor and day.

    A day is settled once its rollups can no longer change (SETTLE_MS: an agent's queue keeps
    results 7 days). Returns how many days were compacted.
    """
    settled = (now - SETTLE_MS) - (now - SETTLE_MS) % DAY_MS
    done = 0
    while done < max_days:
        async with db.begin() as conn:
            mark = await meta.get(conn, COMPACTED)
            if mark is None:
                oldest = (await conn.execute(select(func.min(rollups.c.hour)))).scalar()
                day = settled if oldest is None else oldest - oldest % DAY_MS
            else:
                day = int(mark)
            if day >= settled:
                if mark is None:
                    await meta.put(db, conn, COMPACTED, str(day))
                return done
            query = select(rollups.c.monitor, rollups.c.histogram, rollups.c.count).where(
                rollups.c.hour >= day, rollups.c.hour < day + DAY_MS
            )
            texts: dict[str, list[str]] = {}
            samples: dict[str, int] = {}
            for monitor, text, count in await conn.execute(query):
                texts.setdefault(monitor, []).append(text)
                samples[monitor] = samples.get(monitor, 0) + count
            rows = [
                {
                    "monitor": monitor,
                    "day": day,
                    "samples": samples[monitor],
                    "histogram": json.dumps(
                        histogram.encode(histogram.decode(_merged(items))), separators=(",", ":")
                    ),
                }
                for monitor, items in texts.items()
            ]
            if rows:
                statement = upsert(db, latency_days, ["monitor", "day"], ["samples", "histogram"])
                await conn.execute(statement, rows)
            await meta.put(db, conn, COMPACTED, str(day + DAY_MS))
        done += 1
    return done


async def report(
    conn: AsyncConnection,
    config: Config,
    period: Period,
    now: Millis,
    policies: Collection[str] | None = None,
) -> Report:
    inputs = await load_inputs(conn, config, period.start, period.end, latency=True)
    return build_report(config, period, inputs, now, policies)


async def uptime_by_component(
    conn: AsyncConnection,
    config: Config,
    start: Millis,
    end: Millis,
    now: Millis,
    components: Iterable[str] | None = None,
) -> dict[str, float | None]:
    """Uptime % of each component over [start, end) up to now, as `sla.public_policy` counts
    (without one: verified downtime, maintenance excluded); None where nothing was measured."""
    inputs = await load_inputs(conn, config, start, end)
    policy = config.sla.policy(config.sla.public_policy) if config.sla.public_policy else None
    groups = monitor_groups(config.components)
    wanted = set(components) if components is not None else None
    return {
        component.id: component_uptime(
            component,
            inputs.outages,
            inputs.windows,
            start,
            end,
            policy,
            now=now,
            exclusions=inputs.exclusions,
            monitor_components=groups,
            measured=inputs.measured,
            gaps=inputs.gaps,
            pauses=inputs.pauses,
        )
        for component in config.components
        if wanted is None or component.id in wanted
    }


# -- exclusions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredExclusion:
    exclusion: Exclusion
    created_at: Millis
    created_by: str
    removed_at: Millis | None
    removed_by: str | None


def _exclusion(row: Any) -> StoredExclusion:
    return StoredExclusion(
        Exclusion(row.id, row.start, row.end, row.reason, row.component, row.policy, row.source),
        row.created_at,
        row.created_by,
        row.removed_at,
        row.removed_by,
    )


async def add_exclusion(
    conn: AsyncConnection, exclusion: Exclusion, actor: str, now: Millis
) -> StoredExclusion:
    await conn.execute(
        sla_exclusions.insert().values(
            id=exclusion.id,
            policy=exclusion.policy,
            component=exclusion.component,
            start=exclusion.start,
            end=exclusion.end,
            reason=exclusion.reason,
            source=exclusion.source,
            created_at=now,
            created_by=actor,
        )
    )
    return StoredExclusion(exclusion, now, actor, None, None)


async def sync_exclusions(
    conn: AsyncConnection, config: Config, actor: str, now: Millis
) -> tuple[list[Exclusion], list[str]]:
    """Make the exclusions of the config file those in effect from the config; return what was
    added and the ids withdrawn (the caller audit-logs them)."""
    wanted = {x.id: x for x in config_exclusions(config)}
    current = {
        s.exclusion.id: s.exclusion
        for s in await list_exclusions(conn)
        if s.exclusion.source == "config"
    }
    added = [x for key, x in wanted.items() if key not in current]
    gone = [key for key in current if key not in wanted]
    for exclusion in added:
        if await get_exclusion(conn, exclusion.id) is not None:  # withdrawn before: again
            await conn.execute(
                update(sla_exclusions)
                .where(sla_exclusions.c.id == exclusion.id)
                .values(removed_at=None, removed_by=None, created_at=now, created_by=actor)
            )
        else:
            await add_exclusion(conn, exclusion, actor, now)
    for key in gone:
        await remove_exclusion(conn, key, actor, now)
    return added, gone


async def remove_exclusion(
    conn: AsyncConnection, exclusion_id: str, actor: str, now: Millis
) -> bool:
    """Withdraw an exclusion (kept on record, no longer counted)."""
    result = await conn.execute(
        update(sla_exclusions)
        .where(sla_exclusions.c.id == exclusion_id, sla_exclusions.c.removed_at.is_(None))
        .values(removed_at=now, removed_by=actor)
    )
    return bool(result.rowcount)


async def get_exclusion(conn: AsyncConnection, exclusion_id: str) -> StoredExclusion | None:
    query = select(sla_exclusions).where(sla_exclusions.c.id == exclusion_id)
    row = (await conn.execute(query)).first()
    return _exclusion(row) if row else None


async def list_exclusions(
    conn: AsyncConnection,
    *,
    since: Millis | None = None,
    until: Millis | None = None,
    include_removed: bool = False,
    limit: int = 100_000,
) -> list[StoredExclusion]:
    c = sla_exclusions.c
    query = select(sla_exclusions)
    if since is not None:
        query = query.where(c.end > since)
    if until is not None:
        query = query.where(c.start < until)
    if not include_removed:
        query = query.where(c.removed_at.is_(None))
    rows = await conn.execute(query.order_by(c.start.desc(), c.id).limit(limit))
    return [_exclusion(row) for row in rows]


# -- alert states and closed periods -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertState:
    period: str
    firing: bool
    since: Millis


async def alert_states(conn: AsyncConnection) -> dict[tuple[str, str, str], AlertState]:
    rows = await conn.execute(select(sla_alerts))
    return {
        (r.policy, r.component, r.kind): AlertState(r.period, bool(r.firing), r.since) for r in rows
    }


async def save_alert(
    db: Database,
    conn: AsyncConnection,
    key: tuple[str, str, str],
    state: AlertState,
    now: Millis,
) -> None:
    policy, component, kind = key
    row = {
        "policy": policy,
        "component": component,
        "kind": kind,
        "period": state.period,
        "firing": state.firing,
        "since": state.since,
        "updated_at": now,
    }
    columns = ["period", "firing", "since", "updated_at"]
    await conn.execute(upsert(db, sla_alerts, ["policy", "component", "kind"], columns), [row])


async def close_period(
    db: Database,
    conn: AsyncConnection,
    policy: str,
    period: Period,
    ledger: dict[str, Any],
    now: Millis,
) -> bool:
    """Record a closed period once; False if it was closed already (by another instance)."""
    row = {
        "policy": policy,
        "period": period.label,
        "start": period.start,
        "end": period.end,
        "closed_at": now,
        "ledger": json.dumps(ledger, separators=(",", ":"), sort_keys=True),
    }
    result = await conn.execute(insert_ignore(db, sla_periods, ["policy", "period"]).values(**row))
    return bool(result.rowcount)


async def closed_ledgers(conn: AsyncConnection, label: str) -> dict[str, dict[str, Any]]:
    """The ledgers recorded when the period `label` closed, by policy."""
    query = select(sla_periods.c.policy, sla_periods.c.ledger).where(sla_periods.c.period == label)
    return {policy: json.loads(text) for policy, text in await conn.execute(query)}
