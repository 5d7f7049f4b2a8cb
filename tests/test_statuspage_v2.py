"""Statuspage v2 JSON checked field by field against the Atlassian public API documentation,
with real incidents and maintenance windows created through the admin API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import feedparser
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

ADMIN = {"Authorization": "Bearer v2-admin"}
CONFIG = """
site: {title: Acme, timezone: America/New_York, url: "https://status.acme.test"}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/"}
  - {id: web, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: web, name: Website, monitors: [web]}
"""

PAGE = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
}
INCIDENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
}
UPDATE = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
}
MAINTENANCE = INCIDENT | {"scheduled_for", "scheduled_until"}
COMPONENT_STATUSES = {
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")


@pytest.fixture
async def http(db_url: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    runtime = Runtime(
        config_from(CONFIG),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    now = runtime.clock.now_ms()
    for n, monitor in enumerate(("api", "web")):
        runtime.ingest.submit(Result(f"v2-{n}", monitor, "local", now, True, 10.0, None, ""))
    await runtime.ingest.drained()
    async with (
        serve_app(create_app(runtime, "v2-admin")) as url,
        aiohttp.ClientSession() as session,
    ):
        yield session, url
    await runtime.stop()


async def get(http: tuple[aiohttp.ClientSession, str], path: str) -> Any:
    session, base = http
    async with session.get(base + path) as response:
        assert response.status == 200, path
        return await response.json()


async def post(http: tuple[aiohttp.ClientSession, str], path: str, body: Any) -> Any:
    session, base = http
    async with session.post(base + path, json=body, headers=ADMIN) as response:
        assert response.status in (200, 201), await response.text()
        return await response.json()


def check_times(document: Any) -> None:
    """Every *_at / scheduled_* value is ISO 8601 with milliseconds and an offset (or null)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if (key.endswith("_at") or key.startswith("scheduled_")) and isinstance(value, str):
                assert TIMESTAMP.match(value), (key, value)
            check_times(value)
    elif isinstance(document, list):
        for item in document:
            check_times(item)


async def test_every_v2_document_has_the_documented_fields(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    iso = "%Y-%m-%dT%H:%M:%SZ"
    now = datetime.now(UTC)
    incident = await post(
        http,
        "/api/v1/incidents",
        {
            "title": "Elevated API errors",
            "status": "investigating",
            "impact": "major",
            "components": ["api"],
            "message": "We are **investigating** errors on the API.",
        },
    )
    await post(
        http,
        f"/api/v1/incidents/{incident['id']}/updates",
        {
            "status": "identified",
            "message": "A bad deploy; rolling back.",
        },
    )
    await post(
        http,
        "/api/v1/maintenance",
        {
            "title": "Database upgrade",
            "components": ["web"],
            "message": "Short read-only period.",
            "start": (now + timedelta(days=3)).strftime(iso),
            "end": (now + timedelta(days=3, hours=1)).strftime(iso),
        },
    )
    await post(
        http,
        "/api/v1/maintenance",
        {
            "title": "Network work",
            "components": ["web"],
            "message": "In progress now.",
            "start": (now + timedelta(seconds=1)).strftime(iso),
            "end": (now + timedelta(hours=1)).strftime(iso),
        },
    )

    async with asyncio.timeout(20):  # the second window starts by itself a second from now
        while not (await get(http, "/api/v2/scheduled-maintenances/active.json"))[
            "scheduled_maintenances"
        ]:
            await asyncio.sleep(0.2)
    summary = await get(http, "/api/v2/summary.json")
    check_times(summary)
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert set(summary["page"]) == PAGE
    assert summary["page"]["time_zone"] == "America/New_York"
    assert summary["page"]["url"] == "https://status.acme.test"
    for component in summary["components"]:
        assert set(component) >= COMPONENT
        assert component["status"] in COMPONENT_STATUSES
    groups = [c for c in summary["components"] if c["group"]]
    assert [(g["name"], g["components"]) for g in groups] == [("Platform", ["api"])]
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id["api"]["group_id"] == groups[0]["id"]
    assert by_id["web"]["status"] == "under_maintenance"
    assert summary["status"]["indicator"] in {"none", "minor", "major", "critical"}
    assert summary["status"]["indicator"] == "major"  # the open incident's impact

    [open_incident] = summary["incidents"]
    assert set(open_incident) >= INCIDENT
    assert (open_incident["name"], open_incident["status"], open_incident["impact"]) == (
        "Elevated API errors",
        "identified",
        "major",
    )
    assert open_incident["shortlink"] == f"https://status.acme.test/incidents/{incident['id']}"
    updates = open_incident["incident_updates"]
    assert [u["status"] for u in updates] == ["identified", "investigating"]  # newest first
    for update in updates:
        assert set(update) == UPDATE
        assert update["incident_id"] == open_incident["id"]
    assert [c["id"] for c in open_incident["components"]] == ["api"]

    scheduled = summary["scheduled_maintenances"]
    assert {m["status"] for m in scheduled} == {"in_progress", "scheduled"}
    for window in scheduled:
        assert set(window) >= MAINTENANCE
        assert window["impact"] == "maintenance"

    assert [
        m["name"]
        for m in (await get(http, "/api/v2/scheduled-maintenances/upcoming.json"))[
            "scheduled_maintenances"
        ]
    ] == ["Database upgrade"]
    assert [
        m["name"]
        for m in (await get(http, "/api/v2/scheduled-maintenances/active.json"))[
            "scheduled_maintenances"
        ]
    ] == ["Network work"]
    assert (
        len((await get(http, "/api/v2/scheduled-maintenances.json"))["scheduled_maintenances"]) == 2
    )
    assert set(await get(http, "/api/v2/status.json")) == {"page", "status"}
    assert set(await get(http, "/api/v2/components.json")) == {"page", "components"}

    await post(
        http,
        f"/api/v1/incidents/{incident['id']}/updates",
        {
            "status": "resolved",
            "message": "Rolled back; all good.",
        },
    )
    async with asyncio.timeout(10):  # changes made elsewhere show within a second
        while (await get(http, "/api/v2/incidents/unresolved.json"))["incidents"]:
            await asyncio.sleep(0.2)
    [resolved] = (await get(http, "/api/v2/incidents.json"))["incidents"]
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None


async def test_incidents_show_on_the_page_their_own_page_and_the_feeds(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = http
    incident = await post(
        http,
        "/api/v1/incidents",
        {
            "title": "Login failures",
            "status": "investigating",
            "impact": "minor",
            "components": ["web"],
            "message": "Some users cannot log in. <script>alert(1)</script>",
        },
    )
    async with session.get(base + "/") as response:
        page = await response.text()
    assert "Login failures" in page
    assert "<script>alert(1)</script>" not in page  # sanitised Markdown
    async with session.get(base + f"/incidents/{incident['id']}") as response:
        assert response.status == 200
        detail = await response.text()
    assert "Some users cannot log in." in detail
    assert "Investigating" in detail
    async with session.get(base + "/history") as response:
        assert "Login failures" in await response.text()
    async with session.get(base + "/feed.atom") as response:
        feed = feedparser.parse(await response.read())
    assert not feed.bozo
    assert [e.title for e in feed.entries] == ["Login failures (investigating)"]
    assert feed.entries[0].link == f"https://status.acme.test/incidents/{incident['id']}"
