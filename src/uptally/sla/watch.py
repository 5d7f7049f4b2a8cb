"""The SLA watch: error budgets, multi-window burn-rate alerts, breaches and closing periods.

Every `sla.check_every` it measures each policy's components over the current period and over
the burn-rate windows, and writes (in one transaction with the alert state that makes them
happen once) `sla.burn_rate` when an alert starts firing, `sla.breached` when a period's budget
is overspent, and `sla.period_closed` with the credit ledger once a period has ended and
`sla.close_after` has passed (late results and backfills may still move it until then).
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Clock, Millis, iso
from uptally.config.schema import BurnAlert, Config
from uptally.events import Event, EventKind
from uptally.metrics import Metrics
from uptally.sla.budget import firing
from uptally.sla.burn import burn_rates
from uptally.sla.export import (
    budget_document,
    ledger_document,
    period_document,
    row_document,
    window_label,
)
from uptally.sla.periods import Period, period_at, preceding
from uptally.sla.report import BudgetRow, Inputs, budgets
from uptally.store import maintenance as maintenance_store
from uptally.store import meta
from uptally.store import outbox as outbox_store
from uptally.store import sla as sla_store
from uptally.store.database import Database
from uptally.store.sla import AlertState
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

AlertKey = tuple[str, str, str]  # policy, component, kind
WATCH_SINCE = "sla.watch_since"  # periods that ended before uptally watched are not closed


def alert_kind(long_ms: int, short_ms: int) -> str:
    return f"burn:{_short(long_ms)}:{_short(short_ms)}"


_short = window_label


class SlaWatch:
    def __init__(self, db: Database, config: Config, clock: Clock, metrics: Metrics) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self._stopping = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while no step is running: stop() waits for it
        self._idle.set()

    async def configure(self, config: Config, actor: str) -> None:
        """Apply a (re)loaded config: its exclusions are recorded and audit-logged."""
        self.config = config
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            added, gone = await sla_store.sync_exclusions(conn, config, actor, now)
            for exclusion in added:
                details = {
                    "start": iso(exclusion.start),
                    "end": iso(exclusion.end),
                    "reason": exclusion.reason,
                    "component": exclusion.component,
                    "policy": exclusion.policy,
                    "source": "config",
                }
                target = f"sla-exclusion:{exclusion.id}"
                await audit.append(conn, actor, "sla.exclusion_added", target, details, at=now)
            for key in gone:
                target = f"sla-exclusion:{key}"
                await audit.append(conn, actor, "sla.exclusion_removed", target, {}, at=now)

    async def run(self) -> None:
        while not self._stopping:
            self._idle.clear()
            try:
                await self.step()
            except Exception:
                log.exception("SLA watch step failed")
            finally:
                self._idle.set()
            await wait_event(self._wake, self.config.sla.check_every / 1000)

    async def stop(self) -> None:
        """Let a step in progress finish (never cancel one inside its transaction)."""
        self._stopping = True
        self._wake.set()
        await wait_event(self._idle, 30)

    async def step(self) -> list[Event]:
        """Evaluate once; return the events written."""
        config = self.config
        now = self.clock.now_ms()
        if any(m.slo for m in config.monitors) or any(c.slo for c in config.components):
            await sla_store.compact_latency(self.db, now)
        if not config.sla.policies:
            return []
        zone = config.site.timezone
        longest = max((a.long for a in config.sla.burn_alerts), default=0)
        since = min(
            [now - longest, *(period_at(p.period, now, zone).start for p in config.sla.policies)]
        )
        async with self.db.connect() as conn:
            inputs = await sla_store.load_inputs(conn, config, since, now)
        events: list[Event] = []
        saves: list[tuple[AlertKey, AlertState]] = []
        async with self.db.begin() as conn:
            # Decide first (reads only), write at the end: SQLite's write lock is held briefly.
            if not await maintenance_store.try_lock(conn, maintenance_store.SLA_LOCK):
                return []  # another instance is at it
            states = await sla_store.alert_states(conn)
            watch_since = await meta.get(conn, WATCH_SINCE)
            for row in budgets(config, inputs, now):
                self._gauge(row)
                self._breach(row, states, now, saves, events)
            self._burn(inputs, states, now, saves, events)
            closing = await self._closing(conn, now, int(watch_since or now))
            if watch_since is None:
                await meta.put(self.db, conn, WATCH_SINCE, str(now))
            for key, state in saves:
                await sla_store.save_alert(self.db, conn, key, state, now)
            for policy, period, document in closing:
                if await sla_store.close_period(self.db, conn, policy, period, document, now):
                    events.append(Event(EventKind.SLA_PERIOD_CLOSED, now, policy, document))
            await outbox_store.append_events(conn, events, now)
        return events

    def _gauge(self, row: BudgetRow) -> None:
        self.metrics.sla_budget_remaining.labels(row.policy.id, row.component).set(
            float(row.budget.remaining)
        )

    def _breach(
        self,
        row: BudgetRow,
        states: dict[AlertKey, AlertState],
        now: Millis,
        saves: list[tuple[AlertKey, AlertState]],
        events: list[Event],
    ) -> None:
        if not row.policy.burn_alerts:
            return
        key = (row.policy.id, row.component, "breached")
        state = states.get(key)
        if not row.budget.exhausted or (
            state is not None and state.firing and state.period == row.period.label
        ):
            return
        saves.append((key, AlertState(row.period.label, True, now)))
        data = {**budget_document(row), "period": period_document(row.period)}
        events.append(Event(EventKind.SLA_BREACHED, now, row.component, data))

    def _burn(
        self,
        inputs: Inputs,
        states: dict[AlertKey, AlertState],
        now: Millis,
        saves: list[tuple[AlertKey, AlertState]],
        events: list[Event],
    ) -> None:
        config = self.config
        zone = config.site.timezone
        for row in burn_rates(config, inputs, now):
            if not row.policy.burn_alerts:
                continue
            rates = row.rates
            for length, rate in rates.items():
                self.metrics.sla_burn_rate.labels(row.policy.id, row.component, _short(length)).set(
                    float(rate)
                )
            current = period_at(row.policy.period, now, zone)
            for alert in config.sla.burn_alerts:
                key = (row.policy.id, row.component, alert_kind(alert.long, alert.short))
                state = states.get(key)
                on = firing(rates, alert)
                if (state is None and not on) or (state is not None and state.firing == on):
                    continue
                saves.append((key, AlertState(current.label, on, now)))
                if on:
                    data = _burn_data(row.policy.id, row.component, current, alert, rates)
                    events.append(Event(EventKind.SLA_BURN_RATE, now, row.component, data))

    async def _closing(
        self, conn: AsyncConnection, now: Millis, watch_since: Millis
    ) -> list[tuple[str, Period, dict[str, Any]]]:
        """The periods due to close, with the ledger each closes with."""
        config = self.config
        found: list[tuple[str, Period, dict[str, Any]]] = []
        for policy in config.sla.policies:
            previous = preceding(period_at(policy.period, now, config.site.timezone))
            if now < previous.end + config.sla.close_after or previous.end <= watch_since:
                continue
            if policy.id in await sla_store.closed_ledgers(conn, previous.label):
                continue
            report = await sla_store.report(conn, config, previous, now, {policy.id})
            document = {
                "policy": policy.id,
                "period": period_document(previous),
                "components": [
                    {k: v for k, v in row_document(row).items() if k != "periods"}
                    for row in report.rows
                ],
                "customers": [
                    c for c in ledger_document(report)["customers"] if c["policy"] == policy.id
                ],
            }
            found.append((policy.id, previous, document))
        return found


def _burn_data(
    policy: str, component: str, current: Period, alert: BurnAlert, rates: dict[int, Fraction]
) -> dict[str, Any]:
    return {
        "policy": policy,
        "component": component,
        "period": current.label,
        "factor": alert.factor,
        "long_window": _short(alert.long),
        "short_window": _short(alert.short),
        "burn_rate_long": round(float(rates[alert.long]), 3),
        "burn_rate_short": round(float(rates[alert.short]), 3),
        "severity": "fast" if alert.factor >= 10 else "slow",
    }
