"""Public Statuspage v2 compatible JSON: /api/v2/status.json, components.json, summary.json."""

from __future__ import annotations

import hashlib
import re
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request

from uptally.clock import Millis, to_datetime
from uptally.evaluator import MonitorState
from uptally.runtime import Runtime
from uptally.status import ComponentStatus, component_status, page_indicator, worst
from uptally.web.deps import base_url, runtime_of

router = APIRouter(prefix="/api/v2", tags=["statuspage v2"])


def _time(ms: Millis | None, zone: ZoneInfo) -> str | None:
    if ms is None:
        return None
    return to_datetime(ms).astimezone(zone).isoformat(timespec="milliseconds")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "group"


def page_id(runtime: Runtime) -> str:
    return hashlib.sha256(runtime.config.site.title.encode()).hexdigest()[:12]


def _page(runtime: Runtime, request: Request, updated: Millis | None) -> dict[str, Any]:
    site = runtime.config.site
    zone = ZoneInfo(site.timezone)
    return {
        "id": page_id(runtime),
        "name": site.title,
        "url": base_url(request),
        "time_zone": site.timezone,
        "updated_at": _time(updated or runtime.clock.now_ms(), zone),
    }


def _components(
    runtime: Runtime,
) -> tuple[list[dict[str, Any]], dict[str, ComponentStatus], Millis | None]:
    config = runtime.config
    zone = ZoneInfo(config.site.timezone)
    pid = page_id(runtime)
    statuses: dict[str, ComponentStatus] = {}
    rows: list[dict[str, Any]] = []
    groups: dict[str, dict[str, Any]] = {}
    newest: Millis | None = None
    for position, component in enumerate(config.components, 1):
        monitor_statuses = [runtime.evaluator.status(m) for m in component.monitors]
        states = [s.state if s else MonitorState.UNKNOWN for s in monitor_statuses]
        sinces = [s.since for s in monitor_statuses if s and s.since is not None]
        updated = max(sinces) if sinces else None
        if updated is not None:
            newest = updated if newest is None else max(newest, updated)
        status = component_status(states)
        statuses[component.id] = status
        group_id = None
        if component.group:
            group_id = f"group-{_slug(component.group)}"
            group = groups.setdefault(
                group_id,
                {
                    "id": group_id,
                    "name": component.group,
                    "status": ComponentStatus.OPERATIONAL,
                    "created_at": None,
                    "updated_at": None,
                    "position": position,
                    "description": None,
                    "showcase": False,
                    "start_date": None,
                    "group_id": None,
                    "page_id": pid,
                    "group": True,
                    "only_show_if_degraded": False,
                    "components": [],
                },
            )
            group["components"].append(component.id)
            group["status"] = worst([group["status"], status])
            if updated is not None and (
                group["updated_at"] is None or updated > group["updated_at"]
            ):
                group["updated_at"] = updated
        rows.append(
            {
                "id": component.id,
                "name": component.title,
                "status": status.value,
                "created_at": updated,
                "updated_at": updated,
                "position": position,
                "description": component.description,
                "showcase": True,
                "start_date": None,
                "group_id": group_id,
                "page_id": pid,
                "group": False,
                "only_show_if_degraded": False,
            }
        )
    for group in groups.values():
        group["status"] = group["status"].value
        rows.append(group)
    fallback = runtime.clock.now_ms()
    for row in rows:
        row["created_at"] = _time(row["created_at"] or fallback, zone)
        row["updated_at"] = _time(row["updated_at"] or fallback, zone)
    rows.sort(key=lambda r: (r["position"], not r["group"]))
    return rows, statuses, newest


@router.get("/status.json")
async def status_json(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    _, statuses, newest = _components(runtime)
    indicator = page_indicator(statuses)
    return {
        "page": _page(runtime, request, newest),
        "status": {"indicator": indicator.indicator, "description": indicator.description},
    }


@router.get("/components.json")
async def components_json(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    rows, _, newest = _components(runtime)
    return {"page": _page(runtime, request, newest), "components": rows}


@router.get("/summary.json")
async def summary_json(request: Request) -> dict[str, Any]:
    runtime = runtime_of(request)
    rows, statuses, newest = _components(runtime)
    indicator = page_indicator(statuses)
    return {
        "page": _page(runtime, request, newest),
        "components": rows,
        "incidents": [],
        "scheduled_maintenances": [],
        "status": {"indicator": indicator.indicator, "description": indicator.description},
    }
