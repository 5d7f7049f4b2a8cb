"""Maintenance windows as values: states, what a window covers and when it is active (pure).

`WindowView` is the read model the status page, the Statuspage v2 JSON, feeds and the SLA ledger
use; occurrences of recurring windows are windows of their own (id `<series>@<UTC start>`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from uptally.clock import Millis


class WindowStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset({WindowStatus.SCHEDULED, WindowStatus.IN_PROGRESS})


class WindowUpdate(NamedTuple):
    """A note on a window's timeline (posted, or written when it started or completed)."""

    id: str
    status: str
    body: str
    created_at: Millis


@dataclass(frozen=True, slots=True)
class WindowView:
    id: str
    title: str
    status: str  # scheduled | in_progress | completed | cancelled
    impact: str  # always "maintenance"
    scheduled_for: Millis
    scheduled_until: Millis
    started_at: Millis | None
    completed_at: Millis | None
    created_at: Millis
    updated_at: Millis
    components: list[str]
    monitors: list[str]
    message_markdown: str
    short_notice: bool
    updates: list[WindowUpdate] = field(default_factory=list)  # newest first
    series: str | None = None  # the recurring window this is an occurrence of
    source: str = "api"  # api | config

    @classmethod
    def scheduled(
        cls,
        id: str,
        title: str,
        start: Millis,
        end: Millis,
        *,
        components: list[str],
        monitors: list[str],
        message: str,
        short_notice: bool,
        now: Millis,
        source: str,
        series: str | None = None,
    ) -> WindowView:
        """A new window, planned for [start, end), not yet started."""
        return cls(
            id=id,
            title=title,
            status=WindowStatus.SCHEDULED.value,
            impact="maintenance",
            scheduled_for=start,
            scheduled_until=end,
            started_at=None,
            completed_at=None,
            created_at=now,
            updated_at=now,
            components=components,
            monitors=monitors,
            message_markdown=message,
            short_notice=short_notice,
            series=series,
            source=source,
        )

    def span(self) -> tuple[Millis, Millis] | None:
        """When it is (or was, or is planned to be) in effect; None once cancelled.

        A completed window ends when it was completed (possibly early); one in progress at its
        (possibly extended) scheduled end.
        """
        if self.status == WindowStatus.CANCELLED:
            return None
        start = self.started_at if self.started_at is not None else self.scheduled_for
        if self.status == WindowStatus.COMPLETED and self.completed_at is not None:
            return (start, max(start, self.completed_at))
        return (start, self.scheduled_until)

    def active_at(self, at: Millis) -> bool:
        span = self.span()
        return span is not None and span[0] <= at < span[1]

    def covers(self, monitor_id: str, component_ids: Iterable[str] = ()) -> bool:
        """Whether it covers the monitor directly or through one of the monitor's components."""
        return monitor_id in self.monitors or any(c in self.components for c in component_ids)


def active_windows(windows: Iterable[WindowView], at: Millis) -> list[WindowView]:
    """The windows in effect at `at` (by time and state: not cancelled, not completed before)."""
    return [w for w in windows if w.active_at(at)]


def covering(
    windows: Iterable[WindowView], monitor_id: str, component_ids: Iterable[str], at: Millis
) -> list[WindowView]:
    """The windows in effect at `at` that cover the monitor (directly or via its components)."""
    components = tuple(component_ids)
    return [w for w in windows if w.active_at(at) and w.covers(monitor_id, components)]


def covered_monitors(
    window: WindowView, component_monitors: Mapping[str, Collection[str]]
) -> set[str]:
    """Every monitor a window covers: its own and those of its components."""
    found = set(window.monitors)
    for component in window.components:
        found.update(component_monitors.get(component, ()))
    return found


def is_short_notice(announced_at: Millis, starts_at: Millis, notice_ms: int) -> bool:
    """Announced less than the notice period before it starts."""
    return starts_at - announced_at < notice_ms
