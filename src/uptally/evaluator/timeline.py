"""One location's history of one monitor as runs of equal outcomes: its down and live intervals.

A run is a maximal sequence of consecutive results with the same outcome: a success, a failure,
or no information (a failure seen while the probe's own network was broken: its canaries
failed). A location is down from the first failure of a run of at least `confirm` failures
until the next run begins, so downtime starts at the first failing check, not the confirming
one. A location is live while it reports: a run covers time until the next run begins, or until
`stale` after its last result; a longer silence starts a new run. Silence is counted only while
uptally itself was running: the times it was not (`Pauses`, its recorded monitoring gaps) stop
the clock, since no location could have reported to it then. Only runs are kept, not every
result, which keeps an idle monitor small; results that arrive out of order are handled by
`rebuild`, which replays the location's stored history from a known good point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.results import Result

Outcome = bool | None  # True: up, False: down, None: no information (the probe was degraded)

QUIET, STRUCTURAL, CHANGED = 0, 1, 2  # what an appended result did (see Timeline.append)


@dataclass(slots=True)
class Run:
    ok: Outcome
    first_at: Millis
    last_at: Millis
    count: int
    error: str | None  # of the run's first result (failures only)
    message: str

    def as_tuple(self) -> tuple[Outcome, Millis, Millis, int, str | None, str]:
        return (self.ok, self.first_at, self.last_at, self.count, self.error, self.message)


@dataclass(frozen=True, slots=True)
class Down:
    start: Millis
    end: Millis | None
    reason: str


def outcome(result: Result) -> Outcome:
    if result.ok:
        return True
    return None if result.degraded else False


def order(at: Millis, value: Outcome) -> tuple[Millis, int]:
    # Results at the same millisecond sort by outcome, so order never depends on arrival.
    return (at, 0 if value is True else 1 if value is False else 2)


class Pauses:
    """When uptally itself was not running (sorted, disjoint [start, end) spans, and possibly
    one still open: from the last sign of life until a start-up is done), shared by every
    timeline of an evaluator: a location's silence then does not count against it.

    A paused monitor's timelines have their own `Pauses` on top of the shared one (`base`):
    its own spans are when it was paused (one open while it is), and both count."""

    __slots__ = ("base", "open_from", "spans")

    def __init__(self, base: Pauses | None = None) -> None:
        self.spans: list[tuple[Millis, Millis]] = []
        self.open_from: Millis | None = None
        self.base = base

    def add(self, start: Millis, end: Millis) -> None:
        if end <= start:
            return
        self.spans = _merged([*self.spans, (start, end)])

    def covers(self, at: Millis) -> bool:
        """Whether `at` falls in one of this object's own spans (not its base's)."""
        if self.open_from is not None and at >= self.open_from:
            return True
        return any(start <= at < end for start, end in self.spans)

    def after(self, at: Millis, span: int) -> Millis:
        """The moment `span` ms of running time have passed since `at`."""
        spans, open_from = self.spans, self.open_from
        if self.base is not None:
            spans = _merged([*self.base.spans, *spans])
            if self.base.open_from is not None:
                open_from = min(self.base.open_from, open_from or self.base.open_from)
        end = at + span
        for start, stop in spans:
            if stop <= at:
                continue
            if start >= end:
                break
            end += stop - max(start, at)
        if open_from is not None and end > open_from:
            return NEVER  # not running again yet: the silence has not begun to count
        return end


def _merged(spans: list[tuple[Millis, Millis]]) -> list[tuple[Millis, Millis]]:
    merged: list[tuple[Millis, Millis]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


NEVER = 2**62
NO_PAUSES = Pauses()


class Timeline:
    __slots__ = ("confirm", "floor", "last", "pauses", "runs", "stale")

    def __init__(self, confirm: int, stale: int | None = None, pauses: Pauses = NO_PAUSES) -> None:
        self.confirm = confirm
        self.stale = stale  # ms of silence after which the location no longer counts
        self.pauses = pauses  # when uptally was not running: that silence is nobody's
        self.runs: list[Run] = []
        self.last: Result | None = None  # the newest result by time
        self.floor: Millis | None = None  # history before this was forgotten

    @property
    def newest_at(self) -> Millis | None:
        return self.runs[-1].last_at if self.runs else None

    def is_late(self, result: Result) -> bool:
        """True when the result belongs before the newest one already seen."""
        if not self.runs:
            return False
        last = self.runs[-1]
        return order(result.at, outcome(result)) < order(last.last_at, last.ok)

    def append(self, result: Result, now: Millis | None = None) -> int:
        """Add a result that is not late; says whether anything that matters changed.

        QUIET: a live run of successes got longer (persist lazily); STRUCTURAL: the runs changed
        but no interval did; CHANGED: down or live intervals may have changed.
        """
        runs = self.runs
        value = outcome(result)
        self.last = result
        if runs:
            run = runs[-1]
            stale_at = None if self.stale is None else self.pauses.after(run.last_at, self.stale)
            gap = stale_at is not None and result.at > stale_at
            if run.ok is value and not gap:
                was_open = stale_at is None or now is None or stale_at > now
                run.count += 1
                run.last_at = result.at
                if not was_open:
                    return CHANGED  # a run that had gone stale reaches further now
                if value is False:
                    return CHANGED if run.count == self.confirm else STRUCTURAL
                return QUIET if value is True else STRUCTURAL
        message = "" if value is not False else _reason(result)
        runs.append(Run(value, result.at, result.at, 1, result.error, message))
        return CHANGED

    def rebuild(self, reset_at: Millis | None, history: Iterable[Result]) -> None:
        """Forget everything from `reset_at` on and replay `history` (all results since then).

        `reset_at` is the time of a success (or None: the whole history is given), so the state
        just before it is known from the runs kept.
        """
        if reset_at is None:
            self.runs = []
        else:
            kept: list[Run] = []
            for run in self.runs:
                if order(run.first_at, run.ok) >= order(reset_at, True):
                    break
                kept.append(run)
            if kept and kept[-1].last_at >= reset_at:
                # Only a run of successes can contain the reset point (itself a success); it
                # ran without a gap up to there, and its count does not matter.
                last = kept[-1]
                kept[-1] = Run(last.ok, last.first_at, reset_at, 1, last.error, last.message)
            self.runs = kept
        self.last = None
        for result in sorted(history, key=lambda r: order(r.at, outcome(r))):
            if self.runs and self.is_late(result):
                continue  # duplicates of what is kept
            self.append(result)

    def _end(self, index: int, now: Millis) -> Millis | None:
        """Where run `index` stops counting: the next run, going stale, or still open (None)."""
        run = self.runs[index]
        stale_end = None if self.stale is None else self.pauses.after(run.last_at, self.stale)
        if index + 1 < len(self.runs):
            following = self.runs[index + 1].first_at
            return following if stale_end is None else min(following, stale_end)
        if stale_end is not None and stale_end <= now:
            return stale_end
        return None

    def down_intervals(self, now: Millis) -> list[Down]:
        return [
            Down(run.first_at, self._end(index, now), run.message)
            for index, run in enumerate(self.runs)
            if run.ok is False and run.count >= self.confirm
        ]

    def live_intervals(self, now: Millis) -> list[tuple[Millis, Millis | None]]:
        """When this location counted: it reported (success or failure) and was not stale."""
        spans: list[tuple[Millis, Millis | None]] = []
        for index, run in enumerate(self.runs):
            if run.ok is None:
                continue
            end = self._end(index, now)
            if spans and spans[-1][1] == run.first_at:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((run.first_at, end))
        return spans

    def stale_at(self) -> Millis | None:
        """When the newest run stops counting unless more results come."""
        if not self.runs or self.stale is None:
            return None
        return self.pauses.after(self.runs[-1].last_at, self.stale)

    def is_live(self, now: Millis) -> bool:
        if not self.runs or self.runs[-1].ok is None:
            return False
        stale_at = self.stale_at()
        return stale_at is None or stale_at > now

    def is_down(self, now: Millis | None = None) -> bool:
        if not self.runs:
            return False
        run = self.runs[-1]
        if run.ok is not False or run.count < self.confirm:
            return False
        return now is None or self.is_live(now)

    @property
    def has_success(self) -> bool:
        return any(run.ok is True for run in self.runs)

    @property
    def consecutive_failures(self) -> int:
        if self.runs and self.runs[-1].ok is False:
            return self.runs[-1].count
        return 0

    def since(self) -> Millis | None:
        """When the current location state began."""
        if not self.runs:
            return None
        if self.is_down():
            return self.runs[-1].first_at
        for index in range(len(self.runs) - 1, 0, -1):
            previous = self.runs[index - 1]
            if previous.ok is not True and self.runs[index].ok is True:
                return self.runs[index].first_at
        first_ok = next((run.first_at for run in self.runs if run.ok), self.runs[0].first_at)
        return first_ok if self.floor is None else self.floor

    def prune(self, before: Millis) -> None:
        """Forget runs that ended before `before`, keeping at least the newest run."""
        runs = self.runs
        drop = 0
        while (
            drop < len(runs) - 1
            and runs[drop].last_at < before
            and runs[drop + 1].first_at < before
        ):
            drop += 1
        if drop:
            self.floor = runs[drop].first_at
            del runs[:drop]


def _reason(result: Result) -> str:
    if result.error and result.message:
        return f"{result.error}: {result.message}"
    return result.message or result.error or "failed"
