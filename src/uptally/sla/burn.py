"""Burn rates of every policy and component over windows ending now (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from uptally.clock import Millis
from uptally.config.schema import Config, SlaPolicy
from uptally.sla.budget import burn_rate, target_fraction
from uptally.sla.report import Index, Inputs, policy_components


@dataclass(frozen=True, slots=True)
class BurnRow:
    policy: SlaPolicy
    component: str
    rates: dict[int, Fraction]  # window length (ms) -> burn rate over [now - length, now)


def window_lengths(config: Config) -> list[int]:
    """The windows the burn-rate alerts look at, shortest first."""
    return sorted({n for a in config.sla.burn_alerts for n in (a.long, a.short)})


def burn_rates(
    config: Config, inputs: Inputs, now: Millis, lengths: Iterable[int] | None = None
) -> list[BurnRow]:
    """Each policy's components' burn rates over the alert windows (or `lengths`)."""
    index = Index(config, inputs)
    wanted = sorted(set(lengths)) if lengths is not None else window_lengths(config)
    rows: list[BurnRow] = []
    for policy in config.sla.policies:
        target = target_fraction(policy.target)
        for component in policy_components(config, policy):
            rates = {
                length: burn_rate(
                    index.availability(component, policy, now - length, now, now), target
                )
                for length in wanted
            }
            rows.append(BurnRow(policy, component.id, rates))
    return rows
