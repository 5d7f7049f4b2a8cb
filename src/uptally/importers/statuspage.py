"""Statuspage v2 JSON (summary.json, incidents.json) to uptally components and incident history."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from uptally.importers.report import Report

SOURCE = "statuspage"
_STATUSES = ("investigating", "identified", "monitoring", "resolved")
_IMPACTS = ("none", "minor", "major", "critical")
_COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)


class StatuspageError(ValueError):
    """The source is not Statuspage v2 JSON uptally can read."""


@dataclass(frozen=True, slots=True)
class PastUpdate:
    status: str  # investigating | identified | monitoring | resolved
    body: str
    at: int  # ms since the epoch, UTC
    components: dict[str, str]  # uptally component id -> Statuspage component status


@dataclass(frozen=True, slots=True)
class PastIncident:
    """An incident of the Statuspage history, with every update, at its original times."""

    source_id: str
    title: str
    impact: str
    started_at: int
    components: tuple[str, ...]
    updates: tuple[PastUpdate, ...]  # oldest first
    resolved_at: int | None
    postmortem: str | None


@dataclass(slots=True)
class Imported:
    report: Report
    incidents: list[PastIncident]


_FILES = ("summary.json", "components.json", "incidents.json", "scheduled-maintenances.json")


def read(source: Path) -> dict[str, Any]:
    """The v2 documents of a directory (summary.json, components.json, incidents.json,
    scheduled-maintenances.json), or one such file, merged into one."""
    files = [source / n for n in _FILES if (source / n).exists()] if source.is_dir() else [source]
    if not files:
        raise StatuspageError(f"{source}: no {', '.join(_FILES)} in this directory")
    merged: dict[str, Any] = {}
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StatuspageError(f"{file}: cannot read it as JSON: {error}") from None
        _merge(merged, data, str(file))
    return _merged(merged)


def _merge(merged: dict[str, Any], data: Any, name: str) -> None:
    keys = ("components", "incidents", "scheduled_maintenances")
    if not isinstance(data, dict) or not any(isinstance(data.get(k), list) for k in keys):
        raise StatuspageError(
            f"{name}: not a Statuspage v2 document (no components, incidents or "
            "scheduled_maintenances list)"
        )
    merged.setdefault("page", data.get("page"))
    if isinstance(data.get("components"), list):
        merged["components"] = data["components"]
    # summary.json lists the unresolved incidents, incidents.json the last 50: keep all, the
    # later document's copy of an incident winning (it knows more updates).
    for key in ("incidents", "scheduled_maintenances"):
        found = merged.setdefault(f"_{key}", {})
        for item in data.get(key) or []:
            found[str(item.get("id") if isinstance(item, dict) else item)] = item


def _merged(merged: dict[str, Any]) -> dict[str, Any]:
    for key in ("incidents", "scheduled_maintenances"):
        merged[key] = list(merged.pop(f"_{key}", {}).values())
    return merged


async def fetch(url: str, timeout: float = 30) -> dict[str, Any]:
    """The v2 documents a live page serves: summary.json and incidents.json under URL (a page's
    address), or the one document URL names."""
    import aiohttp

    base = url.rstrip("/")
    if base.endswith(".json"):
        urls = [base]
    else:
        base = base.removesuffix("/api/v2")
        urls = [f"{base}/api/v2/summary.json", f"{base}/api/v2/incidents.json"]
    merged: dict[str, Any] = {}
    limit = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=limit) as session:
        for address in urls:
            try:
                async with session.get(address, headers={"Accept": "application/json"}) as r:
                    status = r.status
                    data = await r.json(content_type=None) if status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                raise StatuspageError(f"{address}: {type(error).__name__}: {error}") from None
            if status != 200:
                raise StatuspageError(f"{address}: answered HTTP {status}")
            _merge(merged, data, address)
    return _merged(merged)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip()).strip("-").lower()[:64] or "component"


def _ms(text: Any) -> int | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


def convert(data: dict[str, Any]) -> Imported:
    report = Report(SOURCE)
    raw_components = [c for c in data.get("components") or [] if isinstance(c, dict)]
    groups = {str(c["id"]): str(c.get("name") or "") for c in raw_components if c.get("group")}
    ids: dict[str, str] = {}  # Statuspage component id -> uptally id
    components: list[dict[str, Any]] = []
    taken: set[str] = set()
    for raw in sorted(raw_components, key=lambda c: int(c.get("position") or 0)):
        name = str(raw.get("name") or raw.get("id"))
        if raw.get("group"):
            report.mapped(f"group {name}", "the group of its components")
            continue
        cid = _slug(name)
        base, n = cid, 2
        while cid in taken:
            cid = f"{base[:60]}-{n}"
            n += 1
        taken.add(cid)
        ids[str(raw.get("id"))] = cid
        component: dict[str, Any] = {"id": cid, "name": name}
        if raw.get("description"):
            component["description"] = str(raw["description"])
        group = groups.get(str(raw.get("group_id")))
        if group:
            component["group"] = group
        components.append(component)
        report.approximated(
            f"component {name}",
            f"component {cid}"
            + (f" in group {group}" if group else "")
            + "; it has no monitors yet: attach yours (its status now comes from incidents)",
        )
        for key in ("only_show_if_degraded", "showcase", "start_date"):
            if raw.get(key):
                report.left_out(f"component {name}: {key}", "no uptally equivalent")
    incidents: list[PastIncident] = []
    for raw in data.get("incidents") or []:
        made = _incident(raw, ids, report)
        if made is not None:
            incidents.append(made)
    incidents.sort(key=lambda i: i.started_at)
    for raw in data.get("scheduled_maintenances") or []:
        report.left_out(
            f"scheduled maintenance {raw.get('name')!r}",
            "declare it as an uptally maintenance window (docs/maintenance.md)",
        )
    document: dict[str, Any] = {}
    page = data.get("page") or {}
    if page.get("name"):
        report.left_out(f"page {page['name']!r}", f"set site.title: {page['name']!r} yourself")
    document["components"] = components
    report.document = document
    return Imported(report, incidents)


def _incident(raw: Any, ids: dict[str, str], report: Report) -> PastIncident | None:
    if not isinstance(raw, dict):
        report.left_out(f"incident {raw!r}"[:100], "not an object")
        return None
    title = str(raw.get("name") or "").strip()
    item = f"incident {title!r} ({raw.get('id')})"
    impact = str(raw.get("impact") or "none")
    if impact == "maintenance" or raw.get("scheduled_for"):
        report.left_out(item, "a scheduled maintenance; declare it as a maintenance window")
        return None
    started = _ms(raw.get("started_at")) or _ms(raw.get("created_at"))
    if not title or started is None:
        report.left_out(item, "needs a name and created_at/started_at")
        return None
    if impact not in _IMPACTS:
        report.approximated(f"{item}: impact {impact}", "taken as none")
        impact = "none"
    updates: list[PastUpdate] = []
    for u in raw.get("incident_updates") or []:
        at = _ms(u.get("display_at")) or _ms(u.get("created_at"))
        status = str(u.get("status") or "")
        if at is None or not str(u.get("body") or "").strip():
            report.left_out(f"{item}: update {u.get('id')}", "no time or no text")
            continue
        if status not in _STATUSES:
            report.approximated(f"{item}: update status {status}", "kept as investigating")
            status = "investigating"
        affected: dict[str, str] = {}
        for a in u.get("affected_components") or []:
            cid = ids.get(str(a.get("code")))
            new = str(a.get("new_status") or "")
            if cid and new in _COMPONENT_STATUSES and new != "under_maintenance":
                affected[cid] = new
        updates.append(PastUpdate(status, str(u["body"]), at, affected))
    updates.sort(key=lambda u: u.at)
    named = {ids[str(c.get("id"))] for c in raw.get("components") or [] if str(c.get("id")) in ids}
    for u in updates:
        named |= set(u.components)
    resolved = _ms(raw.get("resolved_at"))
    if resolved is None and raw.get("status") in ("resolved", "postmortem") and updates:
        resolved = updates[-1].at
    postmortem = raw.get("postmortem_body")
    incident = PastIncident(
        str(raw.get("id") or ""),
        title,
        impact,
        min([started, *(u.at for u in updates)]),
        tuple(sorted(named)),
        tuple(updates),
        resolved,
        str(postmortem) if postmortem else None,
    )
    how = f"{len(updates)} update(s), impact {impact}, at their original times"
    if not updates:
        how += "; no update text: declared with the title only"
    if resolved is None:
        how += "; still open in the document: imported open (resolve it in uptally)"
    report.mapped(item, how)
    if impact in ("major", "critical") and incident.components and resolved is not None:
        report.approximated(
            f"{item}: downtime",
            "recorded as a manual outage of "
            + ", ".join(incident.components)
            + " from its start to its resolution (Statuspage keeps no measured downtime)",
        )
    return incident
