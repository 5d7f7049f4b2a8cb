"""Combine locations' live and down intervals into outages under a consensus policy (pure math).

At every instant only the locations that are live then take part: a probe that went silent or
could not reach its canaries neither confirms nor vetoes downtime. With `all` every live
location must be down, with `any` one is enough, with a quorum of N at least N (or every live
location when fewer are live).
"""

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


@dataclass(frozen=True, slots=True)
class LocationView:
    live: list[tuple[Millis, Millis | None]]
    down: list[Down]


def needed(consensus: str | int, live: int) -> int:
    """How many live locations must be down for downtime to be verified."""
    if consensus == "all":
        return live
    if consensus == "any":
        return 1
    assert isinstance(consensus, int)
    return min(consensus, live)


def episodes(views: Mapping[str, LocationView], consensus: str | int) -> list[Episode]:
    """Verified stretches of downtime, and stretches seen by too few locations (unverified)."""
    deltas: dict[Millis, list[int]] = {}  # time -> [live delta, down delta]
    for view in views.values():
        for start, end in view.live:
            _add(deltas, start, 0, 1)
            _add(deltas, FOREVER if end is None else end, 0, -1)
        for down in view.down:
            _add(deltas, down.start, 1, 1)
            _add(deltas, FOREVER if down.end is None else down.end, 1, -1)
    result: list[Episode] = []
    n_live = n_down = 0
    verified_start: Millis | None = None
    stretch_start: Millis | None = None
    verified_in_stretch = False
    for at in sorted(deltas):
        live_delta, down_delta = deltas[at]
        n_live += live_delta
        n_down += down_delta
        verified = n_live > 0 and n_down > 0 and n_down >= needed(consensus, n_live)
        if verified and verified_start is None:
            verified_start = at
        elif not verified and verified_start is not None:
            result.append(_episode(views, verified_start, at, True))
            verified_start, verified_in_stretch = None, True
        if n_down > 0 and stretch_start is None:
            stretch_start, verified_in_stretch = at, verified
        elif n_down == 0 and stretch_start is not None:
            if not verified_in_stretch:
                result.append(_episode(views, stretch_start, at, False))
            stretch_start = None
    return result


def _add(deltas: dict[Millis, list[int]], at: Millis, which: int, amount: int) -> None:
    entry = deltas.get(at)
    if entry is None:
        entry = deltas[at] = [0, 0]
    entry[which] += amount


def _episode(
    views: Mapping[str, LocationView], start: Millis, end: Millis, verified: bool
) -> Episode:
    spans: dict[str, Span] = {}
    first: Down | None = None
    for location, view in views.items():
        for down in view.down:
            down_end = FOREVER if down.end is None else down.end
            if down.start < end and down_end > start:
                spans[location] = Span(down.start, down.end)
                if first is None or down.start < first.start:
                    first = down
                break
    reason = first.reason if first else ""
    return Episode(start, None if end >= FOREVER else end, verified, spans, reason)
