"""Values the evaluator produces: states, outages, snapshots to persist and the evaluation diff."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from uptally.clock import Millis
from uptally.events import Event
from uptally.results import Result


class LocationState(StrEnum):
    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


class MonitorState(StrEnum):
    UP = "up"
    DOWN = "down"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"
    PAUSED = "paused"  # shown for a paused monitor; the evaluator never decides it


@dataclass(frozen=True, slots=True)
class Span:
    """A location's down interval inside an outage."""

    start: Millis
    end: Millis | None


@dataclass(frozen=True, slots=True)
class Outage:
    id: str
    monitor: str
    start: Millis
    end: Millis | None  # None while open
    verified: bool  # the consensus policy held (False: seen by too few locations)
    locations: Mapping[str, Span]
    reason: str

    @property
    def open(self) -> bool:
        return self.end is None

    def same_as(self, other: Outage) -> bool:
        return (
            self.start == other.start
            and self.end == other.end
            and self.verified == other.verified
            and dict(self.locations) == dict(other.locations)
            and self.reason == other.reason
        )


@dataclass(frozen=True, slots=True)
class LocationSnapshot:
    """One location's view of one monitor, as persisted and shown."""

    monitor: str
    location: str
    state: LocationState
    since: Millis | None
    consecutive_failures: int
    last: Result | None
    runs: tuple[tuple[bool | None, Millis, Millis, int, str | None, str], ...]


@dataclass(frozen=True, slots=True)
class MonitorStatus:
    monitor: str
    state: MonitorState
    since: Millis | None


@dataclass(slots=True)
class Evaluation:
    """Everything one batch changed; written in one transaction by the caller."""

    accepted: list[Result] = field(default_factory=list)
    rejected: list[tuple[Result, str]] = field(default_factory=list)
    locations: dict[tuple[str, str], LocationSnapshot] = field(default_factory=dict)  # to write now
    touched: set[tuple[str, str]] = field(default_factory=set)  # changed trivially: write lazily
    statuses: dict[str, MonitorStatus] = field(default_factory=dict)
    outages: dict[str, Outage] = field(default_factory=dict)  # upserts by id
    removed_outages: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)

    def merge(self, other: Evaluation) -> None:
        """Add what another evaluation (e.g. a tick in the same transaction) changed."""
        self.accepted.extend(other.accepted)
        self.rejected.extend(other.rejected)
        self.locations.update(other.locations)
        self.touched |= other.touched
        self.statuses.update(other.statuses)
        for outage_id in other.removed_outages:
            self.outages.pop(outage_id, None)
        self.removed_outages |= other.removed_outages
        self.outages.update(other.outages)
        self.events.extend(other.events)
