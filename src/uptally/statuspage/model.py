"""What a status page shows: computed once, rendered as HTML, Statuspage v2 JSON, feeds, badges."""

from __future__ import annotations

from dataclasses import dataclass, field

from uptally.clock import Millis
from uptally.config.schema import Site
from uptally.incidents.views import IncidentView
from uptally.maintenance.windows import WindowView
from uptally.status import ComponentStatus, Indicator
from uptally.statuspage.days import DayCell

UPTIME_PERIODS = {
    "24h": 86_400_000,
    "7d": 7 * 86_400_000,
    "30d": 30 * 86_400_000,
    "90d": 90 * 86_400_000,
}


@dataclass(slots=True)
class MonitorView:
    id: str
    name: str
    state: str  # up | down | degraded | unknown | maintenance
    since: Millis | None
    # Hourly averages over the last 24 h, oldest first, labelled by `hours` (one tuple of labels
    # for every monitor): one object per monitor rather than 24 pairs, which the garbage
    # collector would walk while it holds the event loop (10,000 monitors: 240,000 pairs).
    latency_values: tuple[float | None, ...]
    latency_ms: float | None  # the last hour's average
    uptime: dict[str, float | None] = field(default_factory=dict)  # by UPTIME_PERIODS key
    kind: str = ""  # the monitor's kind (http, heartbeat, …); "" if no longer configured
    hours: tuple[str, ...] = ()  # "14:00", the labels of latency_values

    @property
    def latency(self) -> list[tuple[str, float | None]]:
        """(hour, average) pairs over the last 24 h; empty without measurements."""
        return list(zip(self.hours, self.latency_values, strict=False))


@dataclass(slots=True)
class ComponentView:
    id: str
    name: str
    description: str | None
    group_id: str | None
    position: int
    status: ComponentStatus
    updated_at: Millis | None
    monitors: list[MonitorView]
    cells: list[DayCell]
    uptime: dict[str, float | None]  # by UPTIME_PERIODS key
    created_at: Millis | None = None  # when monitoring began (first rollup)

    @property
    def uptime_90d(self) -> float | None:
        return self.uptime.get("90d")


@dataclass(slots=True)
class GroupView:
    id: str
    name: str
    position: int
    status: ComponentStatus
    updated_at: Millis | None
    components: list[ComponentView]


@dataclass(slots=True)
class PageModel:
    site: Site
    page_id: str
    url: str
    generated_at: Millis
    indicator: Indicator
    groups: list[GroupView]  # components without a group sit in a group with id None
    ungrouped: list[ComponentView]
    incidents: list[IncidentView]  # newest first: unresolved ones and those of the last 90 days
    maintenance: list[WindowView]  # in progress, upcoming and of the last 90 days
    subscribe: bool = False  # visitors can subscribe to updates (at /subscribe)
    # When uptally itself was not running over the last 90 days: nothing was monitored then.
    not_monitored: list[tuple[Millis, Millis]] = field(default_factory=list)

    @property
    def status_title(self) -> str:
        """The page's name as a status page: "Acme status", but "Demo status" stays as it is."""
        title = self.site.title.strip()
        if title.lower().endswith(("status", "status page", "statuspage")):
            return title
        return f"{title} status"

    @property
    def components(self) -> list[ComponentView]:
        every = [c for g in self.groups for c in g.components] + self.ungrouped
        return sorted(every, key=lambda c: c.position)

    def component(self, key: str) -> ComponentView | None:
        return next((c for c in self.components if c.id == key), None)

    def monitor(self, key: str) -> MonitorView | None:
        return next((m for c in self.components for m in c.monitors if m.id == key), None)

    @property
    def active_incidents(self) -> list[IncidentView]:
        return [i for i in self.incidents if i.status not in ("resolved", "postmortem")]

    @property
    def active_maintenance(self) -> list[WindowView]:
        return [w for w in self.maintenance if w.status == "in_progress"]

    @property
    def upcoming_maintenance(self) -> list[WindowView]:
        return [w for w in self.maintenance if w.status == "scheduled"]
