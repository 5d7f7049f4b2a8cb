"""Uptime Kuma's status pages (as components and pages) and maintenance windows for uptally."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from uptally.config.schema import MaintenanceWindow, StatusPage
from uptally.importers.kuma_source import KumaData, Row, truthy
from uptally.importers.report import Report

_RESERVED = {"api", "badge", "docs", "healthz", "history", "incidents", "maintenance", "metrics",
             "ping", "readyz", "redoc", "static", "subscribe"}  # fmt: skip


def pages(
    data: KumaData, ids: dict[int, str], names: dict[int, str], report: Report
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Components (one per monitor shown, grouped as on the page) and status_pages."""
    components: dict[str, dict[str, Any]] = {}
    made: list[dict[str, Any]] = []
    paths: set[str] = set()
    for page in data.status_pages:
        source = f"status page {page.get('slug')!r}"
        listed: list[str] = []
        for group, members in page["groups"]:
            for kuma_id in members:
                monitor = ids.get(kuma_id)
                if monitor is None:
                    why = f"monitor #{kuma_id} was not imported (see above)"
                    report.add(source, f"group {group!r}", "left out", why)
                    continue
                existing = components.get(monitor)
                if existing is None:
                    components[monitor] = {"id": monitor, "name": names[kuma_id],
                                           "group": group, "monitors": [monitor]}  # fmt: skip
                elif existing.get("group") != group:
                    why = f"also in group {group!r}: a component has one group, the first"
                    report.add(source, f"component {monitor!r}", "approximated", why)
                if monitor not in listed:
                    listed.append(monitor)
        slug = re.sub(r"[^a-z0-9-]+", "-", str(page.get("slug") or "").lower()).strip("-")
        path = slug if slug and slug not in _RESERVED else f"status-{slug or page['id']}"
        while path in paths:
            path += "-2"
        paths.add(path)
        if not listed:
            report.add(source, "status page", "left out", "it shows no imported monitor")
            continue
        doc: dict[str, Any] = {"id": path, "path": f"/{path}",
                               "title": str(page.get("title") or slug or path)[:200],
                               "components": listed}  # fmt: skip
        if page.get("description"):
            doc["description"] = str(page["description"])
        try:
            StatusPage.model_validate(doc)
        except ValidationError as error:
            report.add(source, "status page", "left out", invalid(error))
            continue
        how = f"status_pages {path!r} at /{path}"
        if path != page.get("slug"):
            how += f" (Kuma's path was /status/{page.get('slug')})"
        report.add(source, "status page", "mapped", f"{how}; groups are component groups")
        for key in ("custom_css", "footer_text", "google_analytics_tag_id", "password"):
            if page.get(key):
                report.add(source, key, "left out", "no uptally equivalent")
        made.append(doc)
    return list(components.values()), made


def window(row: Row, ids: dict[int, str], report: Report) -> dict[str, Any] | None:
    """One maintenance window on the imported monitors, or None (reported) if it cannot be."""
    title = str(row.get("title") or f"maintenance {row.get('id')}")[:200]
    source, item = f"maintenance #{row.get('id')} ({row.get('strategy')})", repr(title)
    strategy = str(row.get("strategy") or "")
    if not truthy(row.get("active", 1)):
        report.add(source, item, "left out", "inactive in Uptime Kuma")
        return None
    monitors = [ids[m] for m in row["monitors"] if m in ids]
    if not monitors:
        why = "it names no imported monitor (status-page-wide windows are not mapped)"
        report.add(source, item, "left out", why)
        return None
    zone, tz_note = _zone(row.get("timezone"))
    doc: dict[str, Any] = {"title": title, "monitors": monitors}
    if row.get("description"):
        doc["message"] = str(row["description"])[:10_000]
    if strategy == "single":
        start, end = _when(row.get("start_date"), zone), _when(row.get("end_date"), zone)
        if start is None or end is None:
            report.add(source, item, "left out", "a single window without start or end")
            return None
        doc.update(start=start, end=end)
    elif strategy == "cron" or strategy.startswith("recurring-"):
        if not row.get("cron") or not row.get("duration"):
            report.add(source, item, "left out", "no cron schedule stored for it")
            return None
        doc["id"] = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] + f"-{row['id']}"
        doc.update(cron=row["cron"], duration=f"{int(row['duration'])}s")
        start, until = _when(row.get("start_date"), zone), _when(row.get("end_date"), zone)
        if start:
            doc["start"] = start
        if until:
            doc["until"] = until
        if zone is not None and str(zone) != "UTC":
            tz_note = f"the cron runs in site.timezone; Kuma ran it in {zone}"
    else:
        why = f"{strategy!r} windows are started by hand in Kuma; use the API or console"
        report.add(source, item, "left out", why)
        return None
    try:
        MaintenanceWindow.model_validate(doc)
    except ValidationError as error:
        report.add(source, item, "left out", invalid(error))
        return None
    report.add(source, item, "mapped", f"maintenance on {', '.join(monitors)}")
    if tz_note:
        report.add(source, f"{item}: timezone", "approximated", tz_note)
    if row["status_pages"]:
        why = "the window covers its monitors, not whole status pages"
        report.add(source, f"{item}: status pages", "approximated", why)
    return doc


def invalid(error: ValidationError) -> str:
    """The first problem pydantic found, as a reason for the report."""
    first = error.errors()[0]
    return f"not valid here: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def _zone(name: Any) -> tuple[ZoneInfo | None, str]:
    if not name or name == "SAME_AS_SERVER":
        return None, "Kuma used its server's timezone; times are read in site.timezone"
    try:
        return ZoneInfo(str(name)), ""
    except (ZoneInfoNotFoundError, ValueError):
        return None, f"unknown timezone {name!r}; times are read in site.timezone"


def _when(text: Any, zone: ZoneInfo | None) -> str | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace(" ", "T"))
    except ValueError:
        return None
    if zone is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()
