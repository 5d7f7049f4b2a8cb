"""Availability of a component over a period, from outages, maintenance and exclusions (pure).

Exact interval arithmetic, never sampling. For a component over [start, end):

- a monitor's maintenance is the union of the windows covering it (directly or through one of
  its components); its outages do not count there;
- the component's excluded time is the union of windows on the component itself, the time when
  *every* one of its monitors is under maintenance, and manual exclusions;
- downtime is the union over its monitors of their verified outages outside their maintenance,
  plus outages recorded by hand on the component, minus the excluded time; unverified
  (degraded) downtime counts at the policy's weight where no verified downtime is;
- time when uptally itself was not running (its recorded monitoring gaps) is *not monitored*:
  neither uptime nor downtime, even inside an outage that was open across it;
- a paused monitor is not monitored while paused, like a gap but for that monitor alone: its
  outages do not count there, and the component is not monitored when *every* one of its
  monitors is paused (or uptally was not running);
- uptime = 1 - downtime / (period - excluded time - not monitored time); 100 % when nothing
  of the period counts.

With `count_maintenance` maintenance neither excludes time nor hides downtime.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from typing import Protocol

from uptally.clock import Millis
from uptally.config.schema import Component, CreditTier, MonitorBase, SlaPolicy
from uptally.evaluator import Outage
from uptally.maintenance.recurrence import local_ms
from uptally.maintenance.windows import WindowView
from uptally.sla import intervals as iv
from uptally.sla.intervals import Interval, Spans

MINUTE_MS = 60_000


class StoredLike(Protocol):
    """A stored outage (uptally.store.outages.StoredOutage has this shape)."""

    @property
    def outage(self) -> Outage: ...
    @property
    def component(self) -> str | None: ...
    @property
    def source(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Time that does not count (audit-logged when made through the API)."""

    id: str
    start: Millis
    end: Millis
    reason: str
    component: str | None = None  # None: every component
    policy: str | None = None  # None: every policy
    source: str = "api"  # api | config

    def applies(self, component: str, policy: str | None) -> bool:
        return (self.component is None or self.component == component) and (
            self.policy is None or self.policy == policy
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """What counts, per policy."""

    count_maintenance: bool = False
    degraded_weight: Fraction = Fraction(0)
    policy: str | None = None  # which exclusions apply


@dataclass(frozen=True, slots=True)
class Counted:
    """An outage that counted, and how much of it did."""

    id: str
    monitor: str | None
    component: str | None
    start: Millis
    end: Millis | None
    verified: bool
    source: str
    counted_ms: int  # its own time that counted (outages may overlap: the total is a union)
    weight: Fraction


@dataclass(frozen=True, slots=True)
class Availability:
    span_ms: int  # the part of the period measured (up to now)
    excluded_ms: int
    full_ms: int  # verified downtime
    partial_ms: int  # unverified downtime where no verified downtime is
    weight: Fraction
    counted: list[Counted] = field(default_factory=list)
    downtime: Spans = field(default_factory=list)  # the verified downtime intervals
    measured_from: Millis | None = None  # where the measured span begins (None: it is empty)
    not_monitored_ms: int = 0  # uptally was not running (outside excluded time)

    @property
    def downtime_ms(self) -> Fraction:
        return self.full_ms + self.weight * self.partial_ms

    @property
    def counting_ms(self) -> int:
        """The time that counts: measured minus excluded and not monitored."""
        return self.span_ms - self.excluded_ms - self.not_monitored_ms

    @property
    def uptime(self) -> Fraction:
        """Between 0 and 1, exactly."""
        if self.counting_ms <= 0:
            return Fraction(1)
        return max(Fraction(0), 1 - self.downtime_ms / self.counting_ms)


def percent(value: Fraction, places: int = 4) -> float:
    """A fraction as a percentage rounded down (never shown as meeting a target it misses)."""
    scaled = Decimal(value.numerator * 100) / Decimal(value.denominator)
    return float(scaled.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR))


def minutes(ms: Fraction | int) -> float:
    return round(float(Fraction(ms) / MINUTE_MS), 3)


def availability(
    component: Component,
    outages: Iterable[StoredLike],
    windows: Iterable[WindowView],
    start: Millis,
    end: Millis,
    *,
    now: Millis | None = None,
    rules: Rules = Rules(),
    exclusions: Iterable[Exclusion] = (),
    monitor_components: Mapping[str, Collection[str]] | None = None,
    measured: Mapping[str, Millis] | None = None,
    gaps: Iterable[Interval] = (),
    pauses: Mapping[str, Iterable[Interval]] | None = None,
) -> Availability:
    """The component's availability over [start, min(end, now)); open outages end at now.

    `outages` may hold others' outages (they are skipped); `monitor_components` maps each
    monitor to all components that hold it, so that a window on another component that shares
    a monitor covers that monitor too (default: only this component). `measured` maps monitors
    to when their measured time began (`monitors_measured_from`): time before it does not
    count (see `counted_from`); without it the whole period is measured. `gaps` are the times
    uptally was not running: neither uptime nor downtime; `pauses` (monitor -> its paused
    spans) the same for one monitor.
    """
    if now is not None:
        end = min(end, now)
    horizon = end if now is None else now
    monitors = list(dict.fromkeys(component.monitors))
    own = set(monitors)
    outages = [
        o
        for o in outages
        if (o.outage.monitor in own) or (not o.outage.monitor and o.component == component.id)
    ]
    if measured is not None:
        begun = component_measured_from(component, measured)
        start = counted_from(start, end, begun, recorded_spans(outages, horizon))
    if end <= start:
        return Availability(0, 0, 0, 0, rules.degraded_weight)
    windows = [w for w in windows if w.status != "cancelled"]

    covered: dict[str, Spans] = {}
    direct: Spans = []
    if not rules.count_maintenance:
        for monitor in monitors:
            groups = (monitor_components or {}).get(monitor, (component.id,))
            covered[monitor] = iv.clip(
                iv.merge(s for w in windows if w.covers(monitor, groups) and (s := w.span())),
                start,
                end,
            )
        direct = iv.clip(
            iv.merge(s for w in windows if component.id in w.components and (s := w.span())),
            start,
            end,
        )
    every = iv.intersect_all([covered.get(m, []) for m in monitors]) if monitors else []
    excluded = iv.clip(
        iv.merge(
            [
                *direct,
                *every,
                *((x.start, x.end) for x in exclusions if x.applies(component.id, rules.policy)),
            ]
        ),
        start,
        end,
    )
    paused = {m: iv.clip(iv.merge((pauses or {}).get(m, ())), start, end) for m in monitors}
    not_monitored = iv.subtract(iv.clip(unmonitored(monitors, gaps, paused), start, end), excluded)

    full_parts: list[Spans] = []
    partial_parts: list[Spans] = []
    candidates: list[tuple[StoredLike, Spans]] = []
    for stored in outages:
        outage = stored.outage
        if outage.monitor and outage.monitor in own:
            hidden = iv.merge([*covered.get(outage.monitor, []), *paused[outage.monitor]])
        elif not outage.monitor and stored.component == component.id:
            hidden = []
        else:
            continue
        stop = outage.end if outage.end is not None else horizon
        mine = iv.subtract(iv.clip([(outage.start, stop)], start, end), hidden)
        mine = iv.subtract(iv.subtract(mine, excluded), not_monitored)
        if not mine:
            continue
        candidates.append((stored, mine))
        (full_parts if outage.verified else partial_parts).append(mine)
    full = iv.merge(s for part in full_parts for s in part)
    partial: Spans = []
    if rules.degraded_weight > 0:
        partial = iv.subtract(iv.merge(s for part in partial_parts for s in part), full)
    counted = [
        Counted(
            stored.outage.id,
            stored.outage.monitor or None,
            stored.component,
            stored.outage.start,
            stored.outage.end,
            stored.outage.verified,
            stored.source,
            iv.length(mine if stored.outage.verified else iv.subtract(mine, full)),
            Fraction(1) if stored.outage.verified else rules.degraded_weight,
        )
        for stored, mine in candidates
        if stored.outage.verified or rules.degraded_weight > 0
    ]
    counted = [c for c in counted if c.counted_ms > 0]
    counted.sort(key=lambda c: (c.start, c.id))
    return Availability(
        end - start,
        iv.length(excluded),
        iv.length(full),
        iv.length(partial),
        rules.degraded_weight,
        counted,
        full,
        start,
        iv.length(not_monitored),
    )


def unmonitored(
    monitors: Collection[str],
    gaps: Iterable[Interval],
    pauses: Mapping[str, Iterable[Interval]],
) -> Spans:
    """When a component with `monitors` is not monitored: uptally was not running (`gaps`), or
    every one of its monitors was paused (`pauses`: monitor -> paused spans)."""
    spans = list(gaps)
    if monitors and all(pauses.get(m) for m in monitors):
        spans.extend(iv.intersect_all([iv.merge(pauses[m]) for m in monitors]))
    return iv.merge(spans)


def monitors_measured_from(
    monitors: Iterable[MonitorBase], first_results: Mapping[str, Millis], timezone: str
) -> dict[str, Millis]:
    """When each monitor's measured time began: its `monitoring_started` (naive: in `timezone`)
    if set, else its first result. Monitors with neither are absent: not measured yet."""
    found: dict[str, Millis] = {}
    for monitor in monitors:
        if monitor.monitoring_started is not None:
            found[monitor.id] = local_ms(monitor.monitoring_started, timezone)
        elif monitor.id in first_results:
            found[monitor.id] = first_results[monitor.id]
    return found


def component_measured_from(component: Component, measured: Mapping[str, Millis]) -> Millis | None:
    """A component is measured from the earliest of its monitors (None: not yet)."""
    return min((measured[m] for m in component.monitors if m in measured), default=None)


def counted_from(
    start: Millis, end: Millis, measured_from: Millis | None, recorded: Iterable[Interval]
) -> Millis:
    """Where [start, end) begins to count: not before measured time began, since uptime is
    unknown before there was data. An outage recorded in the period before then (by hand: a
    backfill of history) vouches for the whole period, which then counts as it always did.
    Returns `end` when nothing of the period counts."""
    if measured_from is not None and measured_from <= start:
        return start
    stop = end if measured_from is None else min(end, measured_from)
    if any(s < stop and e > start for s, e in recorded):
        return start
    return stop


def recorded_spans(outages: Iterable[StoredLike], now: Millis) -> Spans:
    """When `outages` were recorded as down (open ones until `now`)."""
    return iv.merge(
        (o.outage.start, o.outage.end if o.outage.end is not None else now) for o in outages
    )


def component_uptime(
    component: Component,
    outages: Iterable[StoredLike],
    windows: Iterable[WindowView],
    start: Millis,
    end: Millis,
    policy: SlaPolicy | None = None,
    *,
    now: Millis | None = None,
    exclusions: Iterable[Exclusion] = (),
    monitor_components: Mapping[str, Collection[str]] | None = None,
    measured: Mapping[str, Millis] | None = None,
    gaps: Iterable[Interval] = (),
    pauses: Mapping[str, Iterable[Interval]] | None = None,
) -> float | None:
    """Uptime % of a component over [start, end) (up to `now`), the way `policy` counts.

    For the status page: computed from outages and maintenance windows only. Without a policy
    verified downtime counts and maintenance is excluded. Rounded down to 4 decimals; None
    when nothing of the period was measured.
    """
    result = availability(
        component,
        outages,
        windows,
        start,
        end,
        now=now,
        rules=rules_of(policy),
        exclusions=exclusions,
        monitor_components=monitor_components,
        measured=measured,
        gaps=gaps,
        pauses=pauses,
    )
    if result.measured_from is None:
        return None
    return percent(result.uptime)


def rules_of(policy: SlaPolicy | None) -> Rules:
    """The counting rules of a policy (none: verified downtime, maintenance excluded)."""
    if policy is None:
        return Rules()
    return Rules(policy.count_maintenance, Fraction(str(policy.degraded_weight)), policy.id)


def monitor_groups(components: Iterable[Component]) -> dict[str, list[str]]:
    """monitor -> every component holding it."""
    groups: dict[str, list[str]] = {}
    for component in components:
        for monitor in component.monitors:
            groups.setdefault(monitor, []).append(component.id)
    return groups


def credit_percent(uptime: Fraction, tiers: Sequence[CreditTier]) -> float:
    """The credit of the smallest tier whose `below` the uptime (a fraction) falls under."""
    matching = [t for t in tiers if uptime * 100 < Fraction(str(t.below))]
    if not matching:
        return 0.0
    return min(matching, key=lambda t: t.below).credit
