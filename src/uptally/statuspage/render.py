"""Render the page model: HTML pages (Jinja2), Statuspage v2 JSON, feeds and badges.

The same functions serve live requests and the static export; only links differ (absolute paths
live, relative file names in an export that any static host or CDN can serve).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from uptally.clock import Millis, to_datetime
from uptally.markdown import lead_in
from uptally.markdown import render as render_markdown
from uptally.status import ComponentStatus
from uptally.statuspage import feeds, svg
from uptally.statuspage.model import ComponentView, MonitorView, PageModel
from uptally.statuspage.v2 import V2

STATIC = Path(__file__).parent / "templates"
LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}
MONITOR_LABELS = {
    "up": "Up",
    "down": "Down",
    "degraded": "Degraded",
    "maintenance": "Under maintenance",
    "paused": "Paused (not monitored)",
}
_ENV = Environment(
    loader=FileSystemLoader(STATIC),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class Links:
    """Where a page's links point: site paths live (below `prefix`, the path of a page of
    `status_pages`), relative file names in a static export."""

    def __init__(self, export_depth: int | None = None, prefix: str = "") -> None:
        self.export_depth = export_depth
        self.prefix = prefix

    def __call__(self, path: str) -> str:
        if self.export_depth is None:
            # The page's script is one file at the top for every page (it is the same file).
            return path if path.startswith("/static/") else self.prefix + path
        return "../" * self.export_depth + export_path(path)


def export_path(path: str) -> str:
    """The file a site path is written to in a static export."""
    if path in ("/", ""):
        return "index.html"
    if path.startswith("/history"):
        page = path.split("page=", 1)[1] if "page=" in path else "1"
        return "history.html" if page == "1" else f"history-{page}.html"
    if path.startswith(("/incidents/", "/maintenance/")):
        return path.lstrip("/") + ".html"
    return path.lstrip("/")


class Page:
    """Helpers the templates use, bound to one model and one kind of links."""

    def __init__(self, model: PageModel, links: Links) -> None:
        self.model = model
        self.links = links
        self.zone = ZoneInfo(model.site.timezone)

    def context(self, **extra: Any) -> dict[str, Any]:
        m = self.model
        return {
            "site": m.site,
            "model": m,
            "generated_at": m.generated_at,
            "labels": LABELS,
            "link": self.links,
            "iso": _iso,
            "local": self.local,
            "percent": _percent,
            "bar": self.bar,
            "chart": self.chart,
            "cell_title": svg.cell_title,
            "component_names": self.component_names,
            "names": self.names,
            "markdown": render_markdown,
            "lead_in": lead_in,
            "monitor_state": monitor_state,
            "component_state": component_state,
            "charted": charted,
            "subscribe_url": self.subscribe_url(),
            "duration": _duration,
            "refresh": True,
            **extra,
        }

    def local(self, ms: Millis | None) -> str:
        if ms is None:
            return ""
        when = to_datetime(ms, self.zone)
        return when.strftime("%b %-d, %Y %H:%M ") + (when.tzname() or "")

    def bar(self, component: ComponentView) -> str:
        label = f"{component.name}: {_percent(component.uptime_90d)} uptime over the last 90 days"
        bad = sum(1 for c in component.cells if c.state in ("partial", "major"))
        label += f", {bad} day{'s' if bad != 1 else ''} with downtime"
        return svg.uptime_bar(component.cells, label)

    def chart(self, monitor: MonitorView) -> str:
        if not _timed(monitor):
            return ""
        return svg.latency_chart(monitor.latency, f"{monitor.name} response time, last 24 hours")

    def subscribe_url(self) -> str | None:
        """Where visitors subscribe (a form the server answers, at the top of the site): none
        when subscriptions are off, nor in a static export that does not know the site's URL."""
        if not self.model.subscribe:
            return None
        if self.links.export_depth is None:
            return "/subscribe"
        return f"{self.model.site.url.rstrip('/')}/subscribe" if self.model.site.url else None

    def names(self, ids: Sequence[str]) -> str:
        found = {c.id: c.name for c in self.model.components}
        return ", ".join(found.get(i, i) for i in ids)

    def component_names(self, incident: Any) -> str:
        return self.names([c.component_id for c in incident.components])


def monitor_state(monitor: MonitorView) -> str:
    """A monitor's state in words; one that never reported is waiting, not up."""
    if monitor.state == "unknown":
        if monitor.kind == "external":
            return "No alert received yet"
        return "Waiting for first ping" if monitor.kind == "heartbeat" else "No data yet"
    return MONITOR_LABELS.get(monitor.state, monitor.state)


def component_state(component: ComponentView) -> tuple[str, str]:
    """(CSS class, words) of a component's status. Operational by its monitors only because none
    has reported yet (a new heartbeat before its first ping) is shown as waiting, not green."""
    waiting = bool(component.monitors) and all(m.state == "unknown" for m in component.monitors)
    if component.status is ComponentStatus.OPERATIONAL and waiting:
        words = {monitor_state(m) for m in component.monitors}
        return "waiting", words.pop() if len(words) == 1 else "No data yet"
    return component.status.value, LABELS[component.status.value]


def charted(component: ComponentView) -> bool:
    """Whether any of its monitors has a response-time chart."""
    return any(_timed(m) for m in component.monitors)


def _timed(monitor: MonitorView) -> bool:
    return monitor.kind not in ("heartbeat", "external")  # a ping or an alert has no latency


# -- HTML --------------------------------------------------------------------------------------


def index_html(model: PageModel, links: Links) -> bytes:
    sections: list[Any] = [
        _Section(group.id, group.name, group.status, True, group.components)
        for group in model.groups
    ]
    if model.ungrouped:
        sections.append(_Section("components", "Services", None, False, model.ungrouped))
    page = Page(model, links)
    return (
        _ENV.get_template("index.html")
        .render(page.context(section="home", sections=sections))
        .encode()
    )


def history_html(
    model: PageModel,
    links: Links,
    items: list[dict[str, Any]],
    page: int,
    has_older: bool,
    span: tuple[Millis, Millis] | None = None,
) -> bytes:
    """The history page: `items` by month, newest first. Every month of `span` ([start, end) in
    ms: the months of this page) is listed, also one with nothing in it."""
    zone = ZoneInfo(model.site.timezone)
    months: dict[str, dict[str, Any]] = {}
    for key, label in _months(span, zone) if span else ():
        months[key] = {"key": key, "label": label, "entries": []}
    for item in sorted(items, key=lambda i: i["at"], reverse=True):
        when = to_datetime(item["at"], zone)
        key = when.strftime("%Y-%m")
        month = months.setdefault(key, {"key": key, "label": when.strftime("%B %Y"), "entries": []})
        month["entries"].append(item)
    view = Page(model, links)
    return (
        _ENV.get_template("history.html")
        .render(
            view.context(
                section="history",
                months=[months[key] for key in sorted(months, reverse=True)],
                page=page,
                has_older=has_older,
                refresh=False,
            )
        )
        .encode()
    )


def _months(span: tuple[Millis, Millis], zone: ZoneInfo) -> list[tuple[str, str]]:
    """(YYYY-MM, "Month YYYY") of each month from the one `span` starts in to before its end."""
    start = to_datetime(span[0], zone)
    year, month = start.year, start.month
    found = []
    while (first := datetime(year, month, 1, tzinfo=zone)).timestamp() * 1000 < span[1]:
        found.append((first.strftime("%Y-%m"), first.strftime("%B %Y")))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def incident_html(model: PageModel, links: Links, incident: Any) -> bytes:
    page = Page(model, links)
    return (
        _ENV.get_template("incident.html")
        .render(page.context(section="history", incident=incident, refresh=False))
        .encode()
    )


def maintenance_html(model: PageModel, links: Links, window: Any) -> bytes:
    page = Page(model, links)
    return (
        _ENV.get_template("maintenance.html")
        .render(page.context(section="history", window=window, refresh=False))
        .encode()
    )


def history_items(
    incidents: Sequence[Any],
    windows: Sequence[Any],
    not_monitored: Sequence[tuple[Millis, Millis]] = (),
) -> list[dict[str, Any]]:
    """The history's entries: incidents, maintenance, and the times nothing was monitored
    (uptally itself was not running), which are stated, not linked."""
    items = [
        {
            "title": i.title,
            "path": f"/incidents/{i.id}",
            "kind": "incident",
            "status": i.status,
            "at": i.started_at or i.created_at,
            "duration": _duration(i) if i.resolved_at else None,
        }
        for i in incidents
    ]
    items += [
        {
            "title": w.title,
            "path": f"/maintenance/{w.id}",
            "kind": "maintenance",
            "status": w.status.replace("_", " "),
            "at": w.scheduled_for,
            "duration": None,
        }
        for w in windows
    ]
    items += [
        {
            "title": "Not monitored: the monitoring service was not running",
            "path": None,
            "kind": "not monitored",
            "status": "neither up nor down",
            "at": start,
            "duration": _span(end - start),
        }
        for start, end in not_monitored
    ]
    return items


# -- JSON, feeds, badges -----------------------------------------------------------------------

V2_DOCUMENTS: dict[str, Callable[[V2], dict[str, Any]]] = {
    "summary.json": V2.summary,
    "status.json": V2.status,
    "components.json": V2.components,
    "incidents.json": lambda v: v.incidents(),
    "incidents/unresolved.json": lambda v: v.incidents(unresolved=True),
    "scheduled-maintenances.json": lambda v: v.scheduled_maintenances(),
    "scheduled-maintenances/upcoming.json": lambda v: v.scheduled_maintenances("upcoming"),
    "scheduled-maintenances/active.json": lambda v: v.scheduled_maintenances("active"),
}


def v2_json(model: PageModel, name: str) -> bytes:
    document = V2_DOCUMENTS[name](V2(model))
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def atom(model: PageModel) -> bytes:
    return feeds.atom(model)


def rss(model: PageModel) -> bytes:
    return feeds.rss(model)


BADGE_KINDS = ("status", "uptime", "latency")
_STATUS_BADGE = {
    "operational": ("operational", "green"),
    "up": ("up", "green"),
    "degraded_performance": ("degraded", "yellow"),
    "degraded": ("degraded", "yellow"),
    "partial_outage": ("partial outage", "orange"),
    "major_outage": ("major outage", "red"),
    "down": ("down", "red"),
    "under_maintenance": ("maintenance", "blue"),
    "maintenance": ("maintenance", "blue"),
    "unknown": ("unknown", "grey"),
}


def badge(model: PageModel, key: str, kind: str, period: str) -> bytes | None:
    """A badge for a component or a monitor; None if there is no such thing."""
    component = model.component(key)
    monitor = model.monitor(key) if component is None else None
    if component is None and monitor is None:
        return None
    if kind == "status":
        state = component.status.value if component else monitor.state  # type: ignore[union-attr]
        message, color = _STATUS_BADGE.get(state, (state, "grey"))
        return svg.badge("status", message, color).encode()
    if kind == "uptime":
        uptime = (component or monitor).uptime.get(period)  # type: ignore[union-attr]
        if uptime is None:
            return svg.badge(f"uptime {period}", "no data", "grey").encode()
        color = "green" if uptime >= 99.9 else "yellow" if uptime >= 99 else "red"
        return svg.badge(f"uptime {period}", _percent(uptime), color).encode()
    latencies = [
        m.latency_ms
        for m in (component.monitors if component else [monitor])
        if m and m.latency_ms is not None
    ]
    if not latencies:
        return svg.badge("response time", "no data", "grey").encode()
    value = sum(latencies) / len(latencies)
    color = "green" if value < 300 else "yellow" if value < 1000 else "red"
    return svg.badge("response time", f"{value:.0f} ms", color).encode()


def badge_paths(model: PageModel) -> list[tuple[str, str, str]]:
    """Every (id, kind, period) a static export writes; period is the default 30d."""
    keys = [c.id for c in model.components] + [m.id for c in model.components for m in c.monitors]
    return [(key, kind, "30d") for key in dict.fromkeys(keys) for kind in BADGE_KINDS]


# -- helpers -----------------------------------------------------------------------------------


class _Section:
    def __init__(
        self, id_: str, name: str, status: Any, show_status: bool, components: list[ComponentView]
    ) -> None:
        self.id = id_
        self.name = name
        self.status = status
        self.show_status = show_status
        self.components = components


def _iso(ms: Millis | None) -> str:
    if ms is None:
        return ""
    return to_datetime(ms, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _percent(value: float | None) -> str:
    if value is None:
        return "no data"
    if value >= 100:
        return "100%"
    return (
        f"{min(value, 99.999):.3f}".rstrip("0").rstrip(".") + "%"
        if value >= 99
        else f"{value:.2f}%"
    )


def _duration(incident: Any) -> str:
    start = incident.started_at or incident.created_at
    end = incident.resolved_at
    if end is None:
        return "ongoing"
    return _span(end - start)


def _span(ms: int) -> str:
    minutes = max(0, ms) / 60_000
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours, rest = divmod(round(minutes), 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"
