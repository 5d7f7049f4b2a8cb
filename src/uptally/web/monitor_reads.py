"""Reads of one monitor's history for the admin API and the console: its results, its pings
(heartbeats), its outages and its latency percentiles per location and hour (from the hourly
rollups' histograms)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.sla.latency import Latency, summarize
from uptally.store import heartbeats as heartbeat_store
from uptally.store import outages as outage_store
from uptally.store import results as result_store
from uptally.store import rollups as rollup_store
from uptally.store.heartbeats import Ping
from uptally.store.outages import StoredOutage

HOUR_MS = rollup_store.HOUR_MS


async def results_of(
    runtime: Runtime,
    monitor_id: str,
    *,
    location: str | None = None,
    since: Millis | None = None,
    until: Millis | None = None,
    limit: int = 100,
) -> list[Result]:
    """The monitor's results, newest first."""
    async with runtime.db.connect() as conn:
        return await result_store.list_results(
            conn, monitor_id, location=location, since=since, until=until, limit=limit
        )


async def pings_of(runtime: Runtime, monitor_id: str, limit: int = 100) -> list[Ping]:
    """A heartbeat monitor's pings, newest first."""
    async with runtime.db.connect() as conn:
        return await heartbeat_store.list_pings(conn, monitor_id, limit)


async def outages_of(
    runtime: Runtime,
    *,
    monitors: Iterable[str] | None = None,
    component: str | None = None,
    since: Millis | None = None,
    until: Millis | None = None,
    verified_only: bool = False,
    limit: int = 500,
) -> list[StoredOutage]:
    """Outages of these monitors or of the component (either matches), newest first."""
    async with runtime.db.connect() as conn:
        return await outage_store.list_outages(
            conn,
            monitors=monitors,
            component=component,
            since=since,
            until=until,
            verified_only=verified_only,
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class HourLatency:
    hour: Millis  # the hour's start
    latency: Latency  # p50/p95/p99 of the hour's checks (±4.4 %)


async def latency_by_location(
    runtime: Runtime, monitor_id: str, since: Millis, until: Millis
) -> dict[str, list[HourLatency]]:
    """{location: the hours from `since` to `until` that have checks, oldest first}."""
    async with runtime.db.connect() as conn:
        stored = await rollup_store.list_rollups(conn, [monitor_id], since, until)
    # The current hour is flushed once a minute: what is in memory is newer.
    keyed = {(r.location, r.hour): r for r in stored}
    for row in runtime.ingest.rollups.unwritten(monitor_id):
        if since <= row.hour < until:
            keyed[(row.location, row.hour)] = row
    rows = sorted(keyed.values(), key=lambda r: r.hour)
    found: dict[str, list[HourLatency]] = {}
    for row in rows:
        if row.histogram:
            found.setdefault(row.location, []).append(
                HourLatency(row.hour, summarize(row.histogram))
            )
    return found
