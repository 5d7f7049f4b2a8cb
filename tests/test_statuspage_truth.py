"""What the page shows is what is true: open incidents set their components' status everywhere
(page, group, Statuspage v2, badges), and uptime counts only the time that was measured (page,
badges, the SLA report over the API and the command line)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import run_cli
from uptally.clock import FakeClock
from uptally.config import ConfigError
from uptally.config.schema import Component
from uptally.evaluator import MonitorState, Outage
from uptally.incidents.views import ComponentImpact, IncidentView
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.sla.ledger import (
    availability,
    component_measured_from,
    counted_from,
    monitors_measured_from,
    percent,
)
from uptally.status import ComponentStatus, component_status
from uptally.statuspage import sources
from uptally.statuspage.days import ComponentDowntime, day_cells, last_days, uptime_percent
from uptally.statuspage.site import StatusSite
from uptally.statuspage.svg import cell_title
from uptally.store.database import Database
from uptally.store.outages import StoredOutage
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
    runtime: Runtime, http: tuple[aiohttp.ClientSession, str], tmp_path: Path
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
    await StatusSite(runtime).export(tmp_path / "site")  # the static copy says the same
    exported = json.loads((tmp_path / "site/api/v2/components.json").read_text())
    assert {c["id"]: c["status"] for c in exported["components"]}["web"] == "major_outage"
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


# -- measured time: the rule -------------------------------------------------------------------

M = 60_000
H = 60 * M
DAY = 24 * H
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
JANUARY = (T0, T0 + 31 * DAY)
MID = T0 + 14 * DAY + 10 * H + 45 * M  # 2026-01-15T10:45Z: the first result


def _outage(start: int, end: int | None, source: str = "detected") -> StoredOutage:
    return StoredOutage(Outage(f"o{start}", "api", start, end, True, {}, ""), None, source)


@pytest.mark.parametrize(
    ("measured_from", "recorded", "expected"),
    [
        (None, [], 100),  # never measured: nothing counts
        (50, [], 50),  # measured from inside the period
        (0, [], 10),  # measured before the period: all of it
        (150, [], 100),  # measured after the period: none of it
        (50, [(20, 30)], 10),  # a backfill before measured time vouches for the period
        (None, [(20, 30)], 10),
        (50, [(50, 60)], 50),  # an outage detected at the first result vouches for nothing
    ],
)
def test_a_period_counts_from_when_measured_time_began(
    measured_from: int | None, recorded: list[tuple[int, int]], expected: int
) -> None:
    assert counted_from(10, 100, measured_from, recorded) == expected


def test_a_monitor_first_seen_mid_month_counts_only_from_then() -> None:
    component = Component(id="api", monitors=["api"])
    down = [_outage(MID + H, MID + 2 * H)]
    end = JANUARY[1]
    found = availability(component, down, [], *JANUARY, now=end, measured={"api": MID})
    assert found.measured_from == MID
    assert found.span_ms == end - MID
    assert found.uptime == 1 - Fraction(H, end - MID)
    # Without measured time (the pure default) the whole month counts, as before.
    assert availability(component, down, [], *JANUARY, now=end).span_ms == 31 * DAY
    # Not measured at all: nothing counts, and the report says so.
    nothing = availability(component, [], [], *JANUARY, now=end, measured={})
    assert (nothing.measured_from, nothing.span_ms) == (None, 0)


def test_down_for_its_whole_measured_life_is_0_percent_never_more() -> None:
    component = Component(id="api", monitors=["api"])
    for now in (MID + M, MID + 15 * M, MID + 75 * M, MID + 5 * H):
        found = availability(
            component, [_outage(MID, None)], [], *JANUARY, now=now, measured={"api": MID}
        )
        assert percent(found.uptime) == 0.0, now
        downtime = ComponentDowntime([(MID, now)], [])
        assert uptime_percent(downtime, now - DAY, now, MID) == 0.0, now


def test_monitoring_started_overrides_the_first_result_in_the_site_timezone() -> None:
    config = config_from("""
site: {timezone: Europe/Berlin}
monitors:
  - {id: a, kind: http, url: "http://127.0.0.1:9/", monitoring_started: "2026-01-10T08:00"}
  - {id: b, kind: http, url: "http://127.0.0.1:9/"}
  - {id: c, kind: http, url: "http://127.0.0.1:9/"}
components: [{id: x, monitors: [a, b]}, {id: y, monitors: [c]}]
""")
    first = {"a": MID, "b": MID + H}
    measured = monitors_measured_from(config.monitors, first, "Europe/Berlin")
    assert measured == {"a": T0 + 9 * DAY + 7 * H, "b": MID + H}  # 08:00 in Berlin is 07:00Z
    x, y = config.components
    assert component_measured_from(x, measured) == T0 + 9 * DAY + 7 * H
    assert component_measured_from(y, measured) is None


def test_monitoring_started_that_is_no_time_is_refused_on_its_line() -> None:
    with pytest.raises(ConfigError) as raised:
        config_from("""
monitors:
  - id: a
    kind: http
    url: "http://127.0.0.1:9/"
    monitoring_started: last tuesday
""")
    [line] = raised.value.lines()
    assert line.startswith("test.yaml:6: monitors[0].monitoring_started: ")


def test_days_before_measured_time_have_no_data() -> None:
    days = last_days(3, MID, ZoneInfo("UTC"))
    cells = day_cells(ComponentDowntime([(MID, MID + H)], []), days, MID)
    assert [c.state for c in cells] == ["nodata", "nodata", "major"]
    assert cell_title(cells[0]) == "2026-01-13: no data"
    # A day with an outage recorded by hand before measured time shows it.
    backfill = ComponentDowntime([(MID - DAY, MID - DAY + H)], [])
    assert [c.state for c in day_cells(backfill, days, MID)] == ["nodata", "major", "operational"]


# -- measured time over HTTP and the command line ----------------------------------------------

NEVER_UP = """
site: {title: Acme, timezone: UTC, url: "https://status.acme.test"}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: Public API, monitors: [api]}
sla:
  policies: [{id: scale, target: 99.9, components: [api]}]
"""


@pytest.fixture
async def never_up(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    """A service that was never up: its first result is at 10:45, and it fails for 30 minutes."""
    clock.advance(10 * H + 45 * M)
    rt = Runtime(
        config_from(NEVER_UP), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    for n in range(30):
        rt.ingest.submit(
            Result(f"n{n}", "api", "local", clock.now_ms(), False, None, "timeout", "timed out")
        )
        clock.advance(M)
    await rt.ingest.drained()
    await rt.ingest.flush()
    yield rt
    await rt.stop()


async def test_uptime_counts_from_the_first_result_on_the_page_badges_and_sla_report(
    never_up: Runtime, tmp_path: Path, db_url: str
) -> None:
    async with (
        serve_app(create_app(never_up, TOKEN)) as url,
        aiohttp.ClientSession() as session,
    ):
        http = (session, url)
        for period in ("24h", "30d"):
            badge = await _get(http, f"/badge/api/uptime.svg?period={period}")
            assert ElementTree.fromstring(badge).get("aria-label") == f"uptime {period}: 0.00%"
        html = await _get(http, "/")
        assert len(re.findall(r"<title>\d{4}-\d{2}-\d{2}: no data</title>", html)) == 89
        assert re.search(r'class="day major"[^>]*><title>2026-01-01: 30 min of downtime', html)
        components = json.loads(await _get(http, "/api/v2/components.json"))
        assert components["components"][0]["created_at"] == "2026-01-01T10:45:00.000+00:00"
        async with session.get(
            url + "/api/v1/sla/report?period=2026-01", headers=ADMIN
        ) as response:
            report = await response.json()
        async with session.get(
            url + "/api/v1/sla/report?period=2026-01&format=csv", headers=ADMIN
        ) as response:
            csv_text = await response.text()
    [row] = report["rows"]
    assert row["measured_from"] == "2026-01-01T10:45:00.000Z"
    assert (row["uptime_percent"], row["measured_minutes"]) == (0.0, 30.0)
    assert (row["met"], row["credit_percent"]) == (False, 0.0)
    [csv_row] = csv.DictReader(io.StringIO(csv_text))
    assert csv_row["measured_from"] == "2026-01-01T10:45:00.000Z"

    config = tmp_path / "uptally.yaml"
    config.write_text(NEVER_UP)
    env = {"COLUMNS": "250"}  # the table whole, not cut to a terminal's width
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url
    args = ["sla", "report", "--config", str(config), "--data-dir", str(tmp_path)]
    code, table = await run_cli(*args, "--period", "2026-01", env=env)
    assert code == 0, table
    assert "Measured from" in table
    assert "2026-01-01T10:45:00.000Z" in table
    assert " 0.0000 " in table
