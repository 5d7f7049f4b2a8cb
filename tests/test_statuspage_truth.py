"""What the page shows is what is true: open incidents set their components' status everywhere
(page, group, Statuspage v2, badges), and uptime counts only the time that was measured."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from xml.etree import ElementTree

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.evaluator import MonitorState
from uptally.incidents.views import ComponentImpact, IncidentView
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.status import ComponentStatus, component_status
from uptally.statuspage import sources
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "truth-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """
site: {title: Acme, timezone: Europe/Berlin, url: "https://status.acme.test"}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: web, name: Website, group: Platform, monitors: [web]}
"""
UP, DOWN = MonitorState.UP, MonitorState.DOWN
S = ComponentStatus


# -- the rule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "declared", "expected"),
    [
        ([UP], [], S.OPERATIONAL),
        ([UP], [S.MAJOR_OUTAGE], S.MAJOR_OUTAGE),  # the incident is worse
        ([UP, DOWN], [S.DEGRADED_PERFORMANCE], S.PARTIAL_OUTAGE),  # the monitors are worse
        ([DOWN], [S.OPERATIONAL], S.MAJOR_OUTAGE),  # an incident cannot hide an outage
        ([UP], [S.DEGRADED_PERFORMANCE, S.PARTIAL_OUTAGE], S.PARTIAL_OUTAGE),
        ([MonitorState.MAINTENANCE], [S.DEGRADED_PERFORMANCE], S.DEGRADED_PERFORMANCE),
        ([], [S.UNDER_MAINTENANCE], S.UNDER_MAINTENANCE),
    ],
)
def test_a_component_shows_the_worse_of_its_monitors_and_its_open_incidents(
    states: list[MonitorState], declared: list[ComponentStatus], expected: ComponentStatus
) -> None:
    assert component_status(states, declared) is expected


def _incident(status: str, components: dict[str, str], updated_at: int = 5) -> IncidentView:
    return IncidentView(
        "i" + status,
        "title",
        status,
        "major",
        1,
        updated_at,
        1,
        None,
        None,
        [ComponentImpact(name, value, value) for name, value in components.items()],
        [],
        None,
    )


def test_only_unresolved_incidents_declare_component_statuses() -> None:
    found = sources.declared(
        [
            _incident("investigating", {"web": "major_outage"}, updated_at=7),
            _incident("monitoring", {"web": "degraded_performance", "api": "partial_outage"}),
            _incident("resolved", {"api": "major_outage"}),
            _incident("postmortem", {"db": "major_outage"}),
        ]
    )
    assert found["web"].statuses == [S.MAJOR_OUTAGE, S.DEGRADED_PERFORMANCE]
    assert found["web"].updated_at == 7
    assert found["api"].statuses == [S.PARTIAL_OUTAGE]
    assert "db" not in found


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    for n in range(2):
        for monitor in ("api", "web"):
            rt.ingest.submit(
                Result(f"t{n}{monitor}", monitor, "local", clock.now_ms(), True, 40.0, None, "")
            )
        clock.advance(60_000)
    await rt.ingest.drained()
    await rt.ingest.flush()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url


async def _get(http: tuple[aiohttp.ClientSession, str], path: str) -> str:
    session, base = http
    async with session.get(base + path) as response:
        assert response.status == 200, path
        return await response.text()


async def _post(http: tuple[aiohttp.ClientSession, str], path: str, body: Any) -> Any:
    session, base = http
    async with session.post(base + path, json=body, headers=ADMIN) as response:
        assert response.status in (200, 201), await response.text()
        return await response.json()


async def _web_status(http: tuple[aiohttp.ClientSession, str]) -> str:
    session, base = http
    async with session.get(base + "/api/v2/components.json") as response:
        body = await response.json()
    return next(str(c["status"]) for c in body["components"] if c["id"] == "web")


async def _until_web_is(http: tuple[aiohttp.ClientSession, str], status: str) -> None:
    """Pages are rebuilt in the background after a change: wait (with a deadline) for it."""
    async with asyncio.timeout(10):
        while await _web_status(http) != status:
            await asyncio.sleep(0.02)


async def _shown(http: tuple[aiohttp.ClientSession, str]) -> dict[str, Any]:
    summary = json.loads(await _get(http, "/api/v2/summary.json"))
    by_id = {c["id"]: c["status"] for c in summary["components"]}
    badge = ElementTree.fromstring(await _get(http, "/badge/web/status.svg")).get("aria-label")
    html = await _get(http, "/")
    web = re.search(r'Website</div>.*?<span class="status ([a-z_]+)">', html, re.S)
    group = re.search(r'id="group-platform">Platform</h2>\s*<span class="status ([a-z_]+)"', html)
    return {
        "summary": by_id["web"],
        "api": by_id["api"],
        "group": by_id["group-platform"],
        "badge": badge,
        "html": web.group(1) if web else None,
        "html_group": group.group(1) if group else None,
        "indicator": summary["status"]["indicator"],
    }


async def test_an_open_incident_sets_its_components_status_until_it_is_resolved(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    assert (await _shown(http))["summary"] == "operational"
    made = await _post(
        http,
        "/api/v1/incidents",
        {
            "title": "Website down",
            "status": "investigating",
            "impact": "major",
            "components": {"web": "major_outage"},
            "message": "We are looking into it.",
        },
    )
    await _until_web_is(http, "major_outage")
    shown = await _shown(http)
    assert shown == {
        "summary": "major_outage",
        "api": "operational",  # not named by the incident: its monitors decide
        "group": "major_outage",
        "badge": "status: major outage",
        "html": "major_outage",
        "html_group": "major_outage",
        "indicator": "major",
    }
    await _post(
        http,
        f"/api/v1/incidents/{made['id']}/updates",
        {"status": "resolved", "message": "Fixed."},
    )
    await _until_web_is(http, "operational")
    shown = await _shown(http)
    assert shown["summary"] == shown["group"] == shown["html"] == "operational"
    assert shown["badge"] == "status: operational"
    assert shown["indicator"] == "none"


async def test_components_named_without_a_status_take_the_one_the_impact_suggests(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    await _post(
        http,
        "/api/v1/incidents",
        {"title": "Slow pages", "impact": "major", "components": ["web"], "message": "m"},
    )
    await _until_web_is(http, "partial_outage")
    assert (await _shown(http))["badge"] == "status: partial outage"
