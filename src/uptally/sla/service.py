"""The SLA ledger as the API, the console and the CLI read it: reports, budgets, burn rates and
the monthly history, each loaded from the store in one read transaction."""

from __future__ import annotations

from collections.abc import Collection

from uptally.clock import Millis
from uptally.config.schema import Config
from uptally.sla.burn import BurnRow, burn_rates, window_lengths
from uptally.sla.periods import Period, period_at, preceding
from uptally.sla.report import BudgetRow, Report, budgets, build_report
from uptally.store import sla as sla_store
from uptally.store.database import Database


async def report(
    db: Database,
    config: Config,
    period: Period,
    now: Millis,
    policies: Collection[str] | None = None,
) -> Report:
    """The report of a period (rows per policy and component, customers, latency)."""
    async with db.connect() as conn:
        return await sla_store.report(conn, config, period, now, policies)


async def current_budgets(db: Database, config: Config, now: Millis) -> list[BudgetRow]:
    """The error budget of every policy and component in its current period."""
    zone = config.site.timezone
    starts = [period_at(p.period, now, zone).start for p in config.sla.policies]
    async with db.connect() as conn:
        inputs = await sla_store.load_inputs(conn, config, min(starts, default=now), now)
    return budgets(config, inputs, now)


async def current_burn_rates(db: Database, config: Config, now: Millis) -> list[BurnRow]:
    """Burn rates over the alert windows (sla.burn_alerts) ending now."""
    lengths = window_lengths(config)
    async with db.connect() as conn:
        inputs = await sla_store.load_inputs(conn, config, now - max(lengths, default=0), now)
    return burn_rates(config, inputs, now, lengths)


async def monthly(
    db: Database, config: Config, last: Period, count: int, now: Millis
) -> list[Report]:
    """The reports of `count` months up to and including `last` (a month), oldest first: the
    same rows as `report` gives for each month, from one load of their inputs."""
    months = [last]
    while len(months) < count:
        months.append(preceding(months[-1]))
    months.reverse()
    async with db.connect() as conn:
        inputs = await sla_store.load_inputs(conn, config, months[0].start, months[-1].end)
    return [build_report(config, month, inputs, now) for month in months if month.start < now]
