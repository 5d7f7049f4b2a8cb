"""The SLA report of a period: rows per policy and component, customer credits, latency (pure).

A report period may be longer than a policy's period (a year of a monthly policy): uptime is
then measured over the whole report period, and credits are those of each policy period inside
it (a row's `credit_percent` is their mean, a customer's `credit_amount` their sum). For a
report period shorter than the policy's (a month of a quarterly policy) credits are not known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from uptally import histogram
from uptally.clock import Millis
from uptally.config.schema import Component, Config, SlaCustomer, SlaPolicy
from uptally.maintenance.recurrence import local_ms
from uptally.maintenance.windows import WindowView
from uptally.sla.budget import Budget, error_budget, target_fraction
from uptally.sla.intervals import Interval
from uptally.sla.latency import Latency, judge, summarize, uncertain
from uptally.sla.ledger import (
    Availability,
    Exclusion,
    StoredLike,
    availability,
    credit_percent,
    monitor_groups,
    rules_of,
)
from uptally.sla.periods import Period, PeriodKind, period_at, split

_ORDER: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a report is computed from (loaded by uptally.store.sla)."""

    outages: Sequence[StoredLike]
    windows: Sequence[WindowView]
    exclusions: Sequence[Exclusion] = ()
    histograms: Mapping[str, Mapping[int, int]] = field(default_factory=dict)  # monitor -> merged
    # monitor -> when its measured time began (ledger.monitors_measured_from); None: every
    # component is measured over whole periods
    measured: Mapping[str, Millis] | None = None
    gaps: Sequence[Interval] = ()  # when uptally was not running: not monitored
    pauses: Mapping[str, Sequence[Interval]] = field(default_factory=dict)  # monitor -> paused


@dataclass(frozen=True, slots=True)
class Part:
    """One policy period inside a longer report period."""

    period: Period
    availability: Availability
    credit_percent: float
    met: bool


@dataclass(frozen=True, slots=True)
class Row:
    policy: SlaPolicy
    component: str
    availability: Availability
    met: bool
    credit_percent: float | None
    parts: list[Part]

    @property
    def uptime(self) -> Fraction:
        return self.availability.uptime


@dataclass(frozen=True, slots=True)
class CustomerRow:
    customer: SlaCustomer
    plan: str
    policy: str | None
    components: list[str]
    uptime: Fraction | None  # the lowest of its components
    met: bool | None
    credit_percent: float | None
    fee: Decimal | None
    credit_amount: Decimal | None
    currency: str | None


@dataclass(frozen=True, slots=True)
class LatencyRow:
    scope: str  # monitor | component
    id: str
    latency: Latency
    targets: dict[str, int]
    met: bool | None
    uncertain: bool


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    now: Millis
    rows: list[Row]
    customers: list[CustomerRow]
    latency: list[LatencyRow]

    @property
    def final(self) -> bool:
        return self.now >= self.period.end


class Index:
    """Outages grouped by monitor and component, so each component looks at its own only."""

    def __init__(self, config: Config, inputs: Inputs) -> None:
        self.by_monitor: dict[str, list[StoredLike]] = {}
        self.by_component: dict[str, list[StoredLike]] = {}
        for stored in inputs.outages:
            if stored.outage.monitor:
                self.by_monitor.setdefault(stored.outage.monitor, []).append(stored)
            elif stored.component:
                self.by_component.setdefault(stored.component, []).append(stored)
        self.windows = [w for w in inputs.windows if w.status != "cancelled"]
        self.exclusions = inputs.exclusions
        self.groups = monitor_groups(config.components)
        self.measured = inputs.measured
        self.gaps = inputs.gaps
        self.pauses = inputs.pauses

    def availability(
        self,
        component: Component,
        policy: SlaPolicy | None,
        start: Millis,
        end: Millis,
        now: Millis,
    ) -> Availability:
        outages = [o for m in component.monitors for o in self.by_monitor.get(m, ())]
        outages.extend(self.by_component.get(component.id, ()))
        return availability(
            component,
            outages,
            self.windows,
            start,
            end,
            now=now,
            rules=rules_of(policy),
            exclusions=self.exclusions,
            monitor_components=self.groups,
            measured=self.measured,
            gaps=self.gaps,
            pauses=self.pauses,
        )


def policy_components(config: Config, policy: SlaPolicy) -> list[Component]:
    wanted = set(policy.components)
    return [c for c in config.components if not wanted or c.id in wanted]


def build_report(
    config: Config,
    period: Period,
    inputs: Inputs,
    now: Millis,
    policies: Collection[str] | None = None,
) -> Report:
    index = Index(config, inputs)
    rows: list[Row] = []
    for policy in config.sla.policies:
        if policies is not None and policy.id not in policies:
            continue
        target = target_fraction(policy.target)
        for component in policy_components(config, policy):
            whole = index.availability(component, policy, period.start, period.end, now)
            parts = [
                Part(
                    part,
                    found := index.availability(component, policy, part.start, part.end, now),
                    credit_percent(found.uptime, policy.credits),
                    found.uptime >= target,
                )
                for part in _parts(period, policy.period, now)
            ]
            rows.append(
                Row(
                    policy,
                    component.id,
                    whole,
                    whole.uptime >= target,
                    _credit(period, policy.period, whole.uptime, parts, policy),
                    parts,
                )
            )
    customers = customer_rows(config, period, rows)
    return Report(period, now, rows, customers, latency_rows(config, inputs.histograms))


def _parts(period: Period, kind: PeriodKind, now: Millis) -> list[Period]:
    if _ORDER[period.kind] <= _ORDER[kind]:
        return []
    return [part for part in split(period, kind) if part.start < now]


def _credit(
    period: Period, kind: PeriodKind, uptime: Fraction, parts: list[Part], policy: SlaPolicy
) -> float | None:
    if period.kind == kind:
        return credit_percent(uptime, policy.credits)
    if _ORDER[period.kind] < _ORDER[kind]:
        return None  # a month of a quarterly policy: its credit depends on the whole quarter
    if not parts:
        return 0.0
    return round(sum(p.credit_percent for p in parts) / len(parts), 4)


def customer_rows(config: Config, period: Period, rows: list[Row]) -> list[CustomerRow]:
    by_key = {(row.policy.id, row.component): row for row in rows}
    out: list[CustomerRow] = []
    for customer in config.sla.customers:
        plan = config.sla.plan(customer.plan)
        policy = config.sla.policy(plan.policy) if plan and plan.policy else None
        fee = customer.fee if customer.fee is not None else (plan.fee if plan else None)
        currency = plan.currency if plan else None
        if policy is None:
            out.append(
                CustomerRow(customer, customer.plan, None, [], None, None, 0.0, fee, None, currency)
            )
            continue
        names = customer.components or [c.id for c in policy_components(config, policy)]
        mine = [row for name in names if (row := by_key.get((policy.id, name))) is not None]
        if not mine:
            continue  # this report leaves the policy out
        uptime = min(row.uptime for row in mine)
        target = target_fraction(policy.target)
        credits: list[float] = []
        if period.kind == policy.period:
            credits = [credit_percent(uptime, policy.credits)]
        elif _ORDER[period.kind] > _ORDER[policy.period]:
            for i in range(len(mine[0].parts)):
                worst = min(row.parts[i].availability.uptime for row in mine)
                credits.append(credit_percent(worst, policy.credits))
        credit: float | None
        amount: Decimal | None = None
        if _ORDER[period.kind] < _ORDER[policy.period]:
            credit = None
        else:
            credit = round(sum(credits) / len(credits), 4) if credits else 0.0
            if fee is not None:
                amount = sum((fee * Decimal(str(c)) / 100 for c in credits), Decimal(0)).quantize(
                    Decimal("0.01")
                )
        out.append(
            CustomerRow(
                customer,
                customer.plan,
                policy.id,
                [row.component for row in mine],
                uptime,
                uptime >= target,
                credit,
                fee,
                amount,
                currency,
            )
        )
    return out


def latency_rows(config: Config, histograms: Mapping[str, Mapping[int, int]]) -> list[LatencyRow]:
    rows: list[LatencyRow] = []
    for monitor in config.monitors:
        if monitor.slo is not None:
            latency = summarize(histograms.get(monitor.id, {}))
            targets = monitor.slo.targets()
            rows.append(
                LatencyRow(
                    "monitor",
                    monitor.id,
                    latency,
                    targets,
                    judge(latency, targets),
                    uncertain(latency, targets),
                )
            )
    for component in config.components:
        if component.slo is not None:
            latency = summarize(histogram.merge(histograms.get(m, {}) for m in component.monitors))
            targets = component.slo.targets()
            rows.append(
                LatencyRow(
                    "component",
                    component.id,
                    latency,
                    targets,
                    judge(latency, targets),
                    uncertain(latency, targets),
                )
            )
    return rows


def config_exclusions(config: Config) -> list[Exclusion]:
    """Exclusions written in the config (naive times are in the site timezone); each id is a
    digest of what it says, so an unchanged exclusion keeps its id across reloads."""
    zone = config.site.timezone
    found = []
    for x in config.sla.exclusions:
        start, end = _ms(x.start, zone), _ms(x.end, zone)
        key = f"{start}|{end}|{x.component}|{x.policy}|{x.reason}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        found.append(
            Exclusion(f"cfg-{digest}", start, end, x.reason, x.component, x.policy, "config")
        )
    return found


def _ms(moment: datetime, zone: str) -> Millis:
    return local_ms(moment, zone)


@dataclass(frozen=True, slots=True)
class BudgetRow:
    policy: SlaPolicy
    component: str
    period: Period
    so_far: Availability
    budget: Budget


def budgets(config: Config, inputs: Inputs, now: Millis) -> list[BudgetRow]:
    """The error budget of every policy and component for the current period."""
    index = Index(config, inputs)
    rows: list[BudgetRow] = []
    for policy in config.sla.policies:
        current = period_at(policy.period, now, config.site.timezone)
        target = target_fraction(policy.target)
        for component in policy_components(config, policy):
            so_far = index.availability(component, policy, current.start, current.end, now)
            rows.append(
                BudgetRow(
                    policy,
                    component.id,
                    current,
                    so_far,
                    error_budget(so_far, current.length, target),
                )
            )
    return rows
