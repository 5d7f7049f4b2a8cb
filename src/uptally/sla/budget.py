"""Error budgets and multi-window burn rates (pure).

The budget of a period is the downtime the target allows: (1 - target) * (period - excluded
time so far). The burn rate over a window is the share of the window that was down divided by
the share the target allows: 1 spends the budget exactly by the period's end, 14.4 spends a
30-day budget in about two days. An alert fires when both its long and its short window burn
at least `factor` (the short one makes it stop soon after the burning does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from uptally.config.schema import BurnAlert
from uptally.sla.ledger import Availability


@dataclass(frozen=True, slots=True)
class Budget:
    allowed_ms: Fraction
    consumed_ms: Fraction

    @property
    def remaining_ms(self) -> Fraction:
        return self.allowed_ms - self.consumed_ms

    @property
    def remaining(self) -> Fraction:
        """The share of the budget left (negative once overspent)."""
        if self.allowed_ms <= 0:
            return Fraction(0) if self.consumed_ms > 0 else Fraction(1)
        return self.remaining_ms / self.allowed_ms

    @property
    def exhausted(self) -> bool:
        """Overspent: the period ends below target whatever happens next."""
        return self.consumed_ms > self.allowed_ms


def target_fraction(target: float) -> Fraction:
    return Fraction(str(target)) / 100


def error_budget(so_far: Availability, period_ms: int, target: Fraction) -> Budget:
    """The period's budget given what happened up to now (`so_far` covers the elapsed part)."""
    allowed = (1 - target) * max(0, period_ms - so_far.excluded_ms - so_far.not_monitored_ms)
    return Budget(allowed, so_far.downtime_ms)


def burn_rate(window: Availability, target: Fraction) -> Fraction:
    """How many times faster than allowed the budget burned over the window."""
    if window.counting_ms <= 0 or window.downtime_ms == 0:
        return Fraction(0)
    if target >= 1:
        return Fraction(10**9)  # a 100 % target has no budget to burn
    return (window.downtime_ms / window.counting_ms) / (1 - target)


def firing(rates: Mapping[int, Fraction], alert: BurnAlert) -> bool:
    """Both of the alert's windows (keyed by length in ms) burn at least its factor."""
    factor = Fraction(str(alert.factor))
    return (
        rates.get(alert.long, Fraction(0)) >= factor
        and rates.get(alert.short, Fraction(0)) >= factor
    )
