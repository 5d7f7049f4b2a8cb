"""The status page (server-rendered HTML, works without JavaScript, refreshes every 60 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from uptally.clock import iso
from uptally.evaluator import MonitorState
from uptally.status import ComponentStatus, component_status, page_indicator
from uptally.web.deps import runtime_of

router = APIRouter(include_in_schema=False)
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

_LABELS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
    "under_maintenance": "Under maintenance",
}


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    config = runtime.config
    groups: dict[str | None, list[dict[str, Any]]] = {}
    statuses: dict[str, ComponentStatus] = {}
    for component in config.components:
        states = []
        for monitor_id in component.monitors:
            status = runtime.evaluator.status(monitor_id)
            states.append(status.state if status else MonitorState.UNKNOWN)
        overall = component_status(states)
        statuses[component.id] = overall
        groups.setdefault(component.group, []).append(
            {
                "name": component.title,
                "description": component.description,
                "status": overall.value,
                "label": _LABELS[overall.value],
            }
        )
    indicator = page_indicator(statuses)
    html = _templates.get_template("index.html").render(
        site=config.site,
        groups=groups,
        indicator=indicator,
        updated=iso(runtime.clock.now_ms()),
    )
    return HTMLResponse(html, headers={"Cache-Control": "public, max-age=30"})
