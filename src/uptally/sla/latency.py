"""Latency objectives from mergeable hourly histograms: p50/p95/p99 with a stated error (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from uptally import histogram

ERROR_BOUND = histogram.RELATIVE_ERROR  # each quantile is within ±4.4 % of the true value
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None

    def quantile(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


def summarize(counts: Mapping[int, int]) -> Latency:
    """The percentiles of one merged histogram (milliseconds; None when empty)."""
    values = {name: histogram.quantile(counts, q) for name, q in QUANTILES.items()}
    return Latency(sum(counts.values()), values["p50"], values["p95"], values["p99"])


def judge(latency: Latency, targets: Mapping[str, int]) -> bool | None:
    """Whether every objective (e.g. {"p99": 200}) holds; None without measurements.

    The estimate decides; when it lies within the error bound of a target the verdict could go
    either way, which `uncertain` tells.
    """
    if latency.count == 0 or not targets:
        return None
    return all((latency.quantile(name) or 0.0) <= target for name, target in targets.items())


def uncertain(latency: Latency, targets: Mapping[str, int]) -> bool:
    """An estimate within the error bound of its target: the true value may be on either side."""
    for name, target in targets.items():
        value = latency.quantile(name)
        if value is not None and abs(value - target) <= target * ERROR_BOUND:
            return True
    return False
