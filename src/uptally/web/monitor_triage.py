"""The monitors in the order an operator reads them: open outages first, then the worst state,
then by name; and a page of them with their uptime (24 h, 30 d) and latency of the last 24 h.

The order is one pass over the name order kept per config (monitor_list.MonitorIndex),
bucketing each monitor that passes the filters: no sort per request. Uptime and latency come
from the read models of the status page (verified outages, hourly rollups), for the monitors of
one page only, never from raw results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from uptally import offloop
from uptally.clock import Millis
from uptally.config.schema import MonitorBase
from uptally.runtime import Runtime
from uptally.sla.ledger import unmonitored
from uptally.statuspage.build import latency_by_monitor
from uptally.statuspage.days import component_downtime, uptime_percent
from uptally.store import monitor_pauses as pause_store
from uptally.store import monitoring_gaps as gap_store
from uptally.store import outages as outage_store
from uptally.store import rollups as rollup_store
from uptally.store import sla as sla_store
from uptally.web.monitor_list import Filters, MonitorIndex, States, passes

# Worst first: what needs a look comes first.
TRIAGE = ("down", "degraded", "unknown", "maintenance", "paused", "up")
_RANK = {state: rank for rank, state in enumerate(TRIAGE)}
DAY = 86_400_000
HOUR = 3_600_000
PERIODS = {"24h": DAY, "30d": 30 * DAY}


_orders: dict[tuple[Filters, int], list[int]] = {}
_orders_of: tuple[MonitorIndex | None, Runtime | None] = (None, None)


async def triaged(runtime: Runtime, index: MonitorIndex, filters: Filters) -> list[int]:
    """Positions (in `index.monitors`) of the monitors that match `filters`, in triage order;
    shared by the requests that come while no state changes (runtime.live.version)."""
    global _orders_of
    if _orders_of != (index, runtime):
        _orders.clear()
        _orders_of = (index, runtime)
    key = (filters, runtime.live.version)
    found = _orders.get(key)
    if found is None:
        found = await _triaged(runtime, index, filters)
        if len(_orders) >= 32 or any(v != key[1] for _, v in _orders):
            _orders.clear()  # states moved on: the orders made before are stale
        _orders[key] = found
    return found


async def _triaged(runtime: Runtime, index: MonitorIndex, filters: Filters) -> list[int]:
    states = States(runtime)
    evaluator = runtime.evaluator
    pacer = offloop.Pacer()
    buckets: list[list[int]] = [[] for _ in range(2 * len(TRIAGE))]
    plain = filters == Filters()
    for position in index.orders["name"].positions:
        await pacer.tick()
        if not plain and not passes(index, filters, position):
            continue
        monitor_id = index.ids[position]
        state = states.of(monitor_id)
        if filters.states is not None and state not in filters.states:
            continue
        calm = 0 if evaluator.open_outage(monitor_id) is not None else len(TRIAGE)
        buckets[calm + _RANK.get(state, 2)].append(position)
    return [position for bucket in buckets for position in bucket]


@dataclass(frozen=True, slots=True)
class History:
    """One monitor's recent past, as the overview shows it."""

    uptime: dict[str, float | None]  # by PERIODS key; None: not measured in that period
    latency: list[float | None]  # 24 hourly averages in ms, oldest first
    last_latency: float | None


class HistoryCache:
    """Histories shared by every console for `ttl_ms`, or until the monitor's state changes
    (uptime moves with outages; the hourly rollups are written once a minute anyway)."""

    def __init__(self, ttl_ms: int = 60_000) -> None:
        self.ttl_ms = ttl_ms
        self._entries: dict[str, tuple[Millis, str | None, History]] = {}
        self._runtime: Runtime | None = None

    async def get(self, runtime: Runtime, monitors: Sequence[MonitorBase]) -> dict[str, History]:
        if runtime is not self._runtime:  # another runtime in this process (tests): start over
            self._runtime, self._entries = runtime, {}
        now = runtime.clock.now_ms()
        found: dict[str, History] = {}
        missing = []
        for monitor in monitors:
            entry = self._entries.get(monitor.id)
            state = runtime.live.state(monitor.id)
            if entry is not None and now - entry[0] < self.ttl_ms and entry[1] == state:
                found[monitor.id] = entry[2]
            else:
                missing.append(monitor)
        if missing:
            fresh = await histories(runtime, missing)
            if len(self._entries) > 50_000:  # monitors come and go: forget the old ones
                self._entries = {k: v for k, v in self._entries.items() if now - v[0] < self.ttl_ms}
            for monitor_id, history in fresh.items():
                self._entries[monitor_id] = (now, runtime.live.state(monitor_id), history)
            found.update(fresh)
        return found


async def histories(runtime: Runtime, monitors: Sequence[MonitorBase]) -> dict[str, History]:
    """Uptime and hourly latency of these monitors (a page of them) from the read models."""
    ids = [m.id for m in monitors]
    now = runtime.clock.now_ms()
    since = now - PERIODS["30d"]
    async with runtime.db.connect() as conn:
        stored = await outage_store.list_outages(
            conn, monitors=ids, since=since, verified_only=True, limit=100_000
        )
        measured = await sla_store.measured_since(conn, monitors, runtime.config.site.timezone)
        gaps = [g.span for g in await gap_store.list_gaps(conn, since=since, until=now)]
        pauses = pause_store.spans_by_monitor(
            await pause_store.list_pauses(conn, since=since, until=now, monitors=ids), now
        )
        hourly = await rollup_store.hourly_totals(conn, ids, now - 24 * HOUR - now % HOUR, now)
    zone = ZoneInfo(runtime.config.site.timezone)
    return await offloop.run(_histories, ids, now, stored, measured, gaps, pauses, hourly, zone)


def _histories(
    ids: list[str],
    now: Millis,
    stored: list[outage_store.StoredOutage],
    measured: dict[str, Millis],
    gaps: list[tuple[Millis, Millis]],
    pauses: dict[str, list[tuple[Millis, Millis]]],
    hourly: list[rollup_store.HourTotals],
    zone: ZoneInfo,
) -> dict[str, History]:
    down: dict[str, list[tuple[Millis, Millis]]] = defaultdict(list)
    for item in stored:
        outage = item.outage
        if outage.monitor and not item.component:
            down[outage.monitor].append((outage.start, outage.end or now))
    _, latency = latency_by_monitor(hourly, now, zone)
    found = {}
    for monitor_id in ids:
        # As the status page counts a monitor's own uptime (statuspage/build.py).
        own = component_downtime(
            {monitor_id: down.get(monitor_id, [])}, [], unmonitored([monitor_id], gaps, pauses)
        )
        uptime = {
            key: uptime_percent(own, now - length, now, measured.get(monitor_id))
            for key, length in PERIODS.items()
        }
        points, last = latency.get(monitor_id, ((), None))
        values = list(points) or [None] * 24
        found[monitor_id] = History(uptime, values, last)
    return found
