"""One location's history of one monitor as runs of equal outcomes, and its down intervals.

A run is a maximal sequence of consecutive results with the same outcome. A location is down
from the first failure of a run of at least `confirm` failures until the first success after it,
so the start of downtime is the first failing check, not the confirming one. Only runs are kept,
not every result, which keeps an idle monitor small; results that arrive out of order are
handled by `rebuild`, which replays the location's stored history from a known good point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.results import Result


@dataclass(slots=True)
class Run:
    ok: bool
    first_at: Millis
    last_at: Millis
    count: int
    error: str | None  # of the run's first result (failures only)
    message: str

    def as_tuple(self) -> tuple[bool, Millis, Millis, int, str | None, str]:
        return (self.ok, self.first_at, self.last_at, self.count, self.error, self.message)


@dataclass(frozen=True, slots=True)
class Down:
    start: Millis
    end: Millis | None
    reason: str


def _order(at: Millis, ok: bool) -> tuple[Millis, int]:
    # Results at the same millisecond: successes sort first, so that order never depends on arrival.
    return (at, 0 if ok else 1)


class Timeline:
    __slots__ = ("confirm", "floor", "last", "runs")

    def __init__(self, confirm: int) -> None:
        self.confirm = confirm
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
        return _order(result.at, result.ok) < _order(last.last_at, last.ok)

    def append(self, result: Result) -> bool:
        """Add a result that is not late (see is_late); True if the down intervals changed."""
        runs = self.runs
        self.last = result
        if runs and runs[-1].ok == result.ok:
            run = runs[-1]
            run.count += 1
            run.last_at = result.at
            return not run.ok and run.count == self.confirm
        message = "" if result.ok else _reason(result)
        ended_down = bool(runs) and not runs[-1].ok and runs[-1].count >= self.confirm
        runs.append(Run(result.ok, result.at, result.at, 1, result.error, message))
        return ended_down or (not result.ok and self.confirm == 1) or len(runs) == 1

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
                if _order(run.first_at, run.ok) >= _order(reset_at, True):
                    break
                kept.append(run)
            if kept and kept[-1].last_at >= reset_at:
                last = kept[-1]
                # Only successes can contain the reset point; their count does not matter.
                kept[-1] = Run(last.ok, last.first_at, last.first_at, 1, last.error, last.message)
            self.runs = kept
        self.last = None
        for result in sorted(history, key=lambda r: _order(r.at, r.ok)):
            if self.runs and self.is_late(result):
                continue  # duplicates of what is kept
            self.append(result)

    def down_intervals(self) -> list[Down]:
        intervals: list[Down] = []
        runs = self.runs
        for index, run in enumerate(runs):
            if not run.ok and run.count >= self.confirm:
                end = runs[index + 1].first_at if index + 1 < len(runs) else None
                intervals.append(Down(run.first_at, end, run.message))
        return intervals

    @property
    def is_down(self) -> bool:
        return bool(self.runs) and not self.runs[-1].ok and self.runs[-1].count >= self.confirm

    @property
    def has_success(self) -> bool:
        return any(run.ok for run in self.runs)

    @property
    def consecutive_failures(self) -> int:
        if self.runs and not self.runs[-1].ok:
            return self.runs[-1].count
        return 0

    def since(self) -> Millis | None:
        """When the current location state began."""
        if not self.runs:
            return None
        if self.is_down:
            return self.runs[-1].first_at
        for index in range(len(self.runs) - 1, 0, -1):
            previous = self.runs[index - 1]
            if not previous.ok and previous.count >= self.confirm:
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
