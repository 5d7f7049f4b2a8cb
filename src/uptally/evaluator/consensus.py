"""Combine locations' down intervals into outages under a consensus policy (pure interval math)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.evaluator.states import Span
from uptally.evaluator.timeline import Down

FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class Episode:
    start: Millis
    end: Millis | None
    verified: bool
    locations: dict[str, Span]
    reason: str


def episodes(downs: Mapping[str, list[Down]], required: int) -> list[Episode]:
    """Outage episodes from each location's down intervals.

    Where at least `required` locations are down at once the downtime is verified: each such
    stretch is one verified episode. A stretch where some location was down but the policy never
    held is one unverified episode (reported, not counted).
    """
    points: list[tuple[Millis, int]] = []
    for intervals in downs.values():
        for down in intervals:
            points.append((down.start, 1))
            points.append((FOREVER if down.end is None else down.end, -1))
    if not points:
        return []
    points.sort(key=lambda p: (p[0], p[1]))  # recoveries before new failures at the same instant
    required = max(required, 1)
    result: list[Episode] = []
    count = 0
    any_start: Millis | None = None
    verified_in_stretch = False
    verified_start: Millis | None = None
    for at, delta in points:
        before = count
        count += delta
        if before == 0 and count > 0:
            any_start, verified_in_stretch = at, False
        if before < required <= count:
            verified_start = at
        if before >= required > count and verified_start is not None:
            result.append(_episode(downs, verified_start, at, True))
            verified_in_stretch, verified_start = True, None
        if before > 0 and count == 0 and any_start is not None:
            if not verified_in_stretch:
                result.append(_episode(downs, any_start, at, False))
            any_start = None
    return result


def _episode(
    downs: Mapping[str, list[Down]], start: Millis, end: Millis, verified: bool
) -> Episode:
    spans: dict[str, Span] = {}
    first: Down | None = None
    for location, intervals in downs.items():
        for down in intervals:
            down_end = FOREVER if down.end is None else down.end
            if down.start < end and down_end > start:
                spans[location] = Span(down.start, down.end)
                if first is None or down.start < first.start:
                    first = down
                break
    reason = first.reason if first else ""
    return Episode(start, None if end >= FOREVER else end, verified, spans, reason)
