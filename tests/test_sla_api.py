"""The SLA API and `uptally sla` on a real database: reports, ledger, budgets, exclusions."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import run_cli
from tests.test_api import AUTH, TOKEN, get, post
from uptally import audit
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import monitoring_gaps as gap_store
from uptally.store import sla as sla_store
from uptally.store.audit import AuditFilter
from uptally.store.database import Database
from uptally.web.app import create_app

CONFIG = """
site: {title: Acme, timezone: Europe/Berlin}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/health"}
  - {id: web, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, name: API, monitors: [api]}
  - {id: website, name: Website, monitors: [web]}
sla:
  policies:
    - id: scale
      target: 99.9
      components: [api, website]
      credits: [{below: 99.9, credit: 10}, {below: 99.0, credit: 25}]
  plans:
    - {id: starter}
    - {id: scale, policy: scale, fee: 499, currency: EUR}
  customers:
    - {id: acme, name: Acme Corp, plan: scale, components: [api]}
    - {id: tiny, plan: starter}
"""
Http = tuple[aiohttp.ClientSession, str]


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[Http]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url


def ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


async def record_december(http: Http) -> str:
    """Two outages of the API in December 2025 (one partly excluded) and one of the website."""
    for body in (
        {"monitor": "api", "start": "2025-12-03T10:00:00Z", "end": "2025-12-03T11:00:00Z"},
        {"component": "api", "start": "2025-12-03T10:30:00Z", "end": "2025-12-03T11:30:00Z"},
        {"monitor": "web", "start": "2025-12-31T22:50:00Z", "end": "2025-12-31T23:10:00Z"},
    ):
        status, _ = await post(http, "/api/v1/outages", {**body, "reason": "x"}, headers=AUTH)
        assert status == 201
    status, exclusion = await post(
        http,
        "/api/v1/sla/exclusions",
        {
            "start": "2025-12-03T12:15:00",  # site time: 11:15Z
            "end": "2025-12-03T13:00:00",
            "component": "api",
            "reason": "upstream cloud provider outage",
        },
        headers=AUTH,
    )
    assert status == 201, exclusion
    return str(exclusion["id"])


async def test_the_report_counts_exact_minutes_and_credits(http: Http) -> None:
    exclusion = await record_december(http)
    status, report = await get(http, "/api/v1/sla/report?period=2025-12", headers=AUTH)
    assert status == 200, report
    assert report["period"]["start"] == "2025-11-30T23:00:00.000Z"
    assert report["period"]["final"] is True
    api, website = report["rows"]
    # 10:00-11:30 merged (90 min), minus the exclusion 11:15-11:30 → 75 min down, 45 excluded
    assert (api["downtime_minutes"], api["excluded_minutes"]) == (75, 45)
    assert api["uptime_percent"] == 99.8318  # 1 - 75 / (44640 - 45), rounded down
    assert (api["met"], api["credit_percent"]) == (False, 10)
    assert [o["source"] for o in api["outages"]] == ["manual", "manual"]
    # 22:50Z-23:10Z is 23:50-00:10 in Berlin: half of it in December, half in January
    assert (website["downtime_minutes"], website["met"]) == (10, True)
    acme, tiny = report["customers"]
    assert (acme["customer"], acme["credit_percent"], acme["credit_amount"]) == (
        "acme",
        10,
        "49.90",
    )
    assert (tiny["policy"], tiny["credit_amount"]) == (None, None)
    status, january = await get(http, "/api/v1/sla/report?period=2026-01", headers=AUTH)
    assert january["rows"][1]["downtime_minutes"] == 10
    status, csv_text = await text(http, "/api/v1/sla/report?period=2025-12&format=csv")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["component"], r["uptime_percent"], r["met"]) for r in rows] == [
        ("api", "99.8318", "false"),
        ("website", "99.9775", "true"),
    ]
    status, audit = await get(http, "/api/v1/audit?action=sla.*", headers=AUTH)
    assert [(e["action"], e["target"]) for e in audit["entries"]] == [
        ("sla.exclusion_added", f"sla-exclusion:{exclusion}")
    ]


async def text(http: Http, path: str) -> tuple[int, str]:
    session, base = http
    async with session.get(base + path, headers=AUTH) as response:
        return response.status, await response.text()


async def test_withdrawn_exclusions_count_no_more_and_stay_on_record(http: Http) -> None:
    exclusion = await record_december(http)
    session, base = http
    async with session.delete(f"{base}/api/v1/sla/exclusions/{exclusion}", headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["removed_by"] == "bootstrap-token"
    async with session.delete(f"{base}/api/v1/sla/exclusions/{exclusion}", headers=AUTH) as r:
        assert r.status == 404
    status, report = await get(http, "/api/v1/sla/report?period=2025-12", headers=AUTH)
    assert (status, report["rows"][0]["downtime_minutes"]) == (200, 90)
    _, listed = await get(http, "/api/v1/sla/exclusions?include_removed=true", headers=AUTH)
    assert [x["id"] for x in listed["exclusions"]] == [exclusion]
    _, active = await get(http, "/api/v1/sla/exclusions", headers=AUTH)
    assert active["exclusions"] == []


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("period=2025-13", 422, "invalid_request"),
        ("period=last-month", 422, "invalid_request"),
        ("period=2025-12&policy=nope", 404, "not_found"),
        ("", 422, "invalid_request"),
    ],
)
async def test_bad_report_requests_are_refused(
    http: Http, query: str, status: int, code: str
) -> None:
    got, body = await get(http, f"/api/v1/sla/report?{query}", headers=AUTH)
    assert (got, body["error"]["code"]) == (status, code)


async def test_budgets_and_the_ledger(http: Http, clock: FakeClock) -> None:
    clock.advance(10 * 86_400_000)  # 2026-01-11
    status, _ = await post(
        http,
        "/api/v1/outages",
        {"monitor": "api", "start": "2026-01-05T10:00:00Z", "end": "2026-01-05T10:30:00Z"},
        headers=AUTH,
    )
    status, budgets = await get(http, "/api/v1/sla/budgets", headers=AUTH)
    assert status == 200
    api = budgets["budgets"][0]
    assert (api["component"], api["period"]) == ("api", "2026-01")
    assert api["allowed_minutes"] == 44.64  # 0.1 % of 31 days
    assert (api["consumed_minutes"], api["remaining_minutes"]) == (30, 14.64)
    assert api["exhausted"] is False
    _, ledger = await get(http, "/api/v1/sla/ledger?period=2026-01", headers=AUTH)
    # provisional: 30 minutes in 10 days is 99.79 % so far
    assert ledger["period"]["final"] is False
    assert [(c["customer"], c["closed"], c["credit_percent"]) for c in ledger["customers"]] == [
        ("acme", False, 10),
        ("tiny", False, 0.0),
    ]
    _, csv_text = await text(http, "/api/v1/sla/ledger?period=2026-01&format=csv")
    assert csv_text.splitlines()[0].endswith(",credit_amount,closed")


async def test_the_command_line_prints_the_same_rows(
    runtime: Runtime, http: Http, db_url: str, tmp_path: Path
) -> None:
    await record_december(http)
    async with runtime.db.begin() as conn:  # uptally was not running 10 minutes of an outage
        await gap_store.record_gap(
            runtime.db, conn, ms("2025-12-03T10:40Z"), ms("2025-12-03T10:50Z"), False
        )
    _, report = await get(http, "/api/v1/sla/report?period=2025-12", headers=AUTH)
    api = report["rows"][0]
    assert (api["downtime_minutes"], api["not_monitored_minutes"]) == (65.0, 10.0)
    assert api["uptime_percent"] == 99.8542  # 1 - 65 / (44640 - 45 - 10) minutes
    config = tmp_path / "uptally.yaml"
    config.write_text(CONFIG)
    data = tmp_path
    env = {"UPTALLY_DATABASE_URL": db_url} if db_url.startswith("postgresql") else {}
    args = [
        "sla",
        "report",
        "--config",
        str(config),
        "--data-dir",
        str(data),
        "--period",
        "2025-12",
    ]
    ledger_args = ["sla", "ledger", "--config", str(config), "--data-dir", str(data)]
    runs = await asyncio.gather(
        run_cli(*args, "--format", "json", env=env),
        run_cli(*args, "--format", "csv", env=env),
        run_cli(*args, env=env),
        run_cli(*args[:-1], "2025-14", env=env),
        run_cli(*ledger_args, "--period", "2025", env=env),
    )
    (code, output), (csv_code, csv_output), (table_code, table), (bad_code, bad), ledger = runs
    assert (code, csv_code, table_code, ledger[0]) == (0, 0, 0, 0), runs
    printed: dict[str, Any] = json.loads(output)
    assert printed["rows"] == report["rows"]
    assert printed["customers"] == report["customers"]
    header, first = csv_output.splitlines()[:2]
    assert header.endswith(",measured_from,not_monitored_minutes")
    assert first.startswith("scale,api,99.9,99.8542,65.0,45.0,false,10.0,")
    assert first.endswith(",10.0")
    assert "99.8542" in table
    assert "Not monitored" in table
    assert "acme" in table
    assert (bad_code, "month out of range" in bad) == (2, True)
    rows = list(csv.DictReader(io.StringIO(ledger[1])))
    assert (rows[0]["customer"], rows[0]["credit_amount"]) == ("acme", "49.90")


async def test_exclusions_in_the_config_are_recorded_and_audit_logged(
    db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    with_exclusion = CONFIG + (
        "  exclusions:\n"
        "    - {start: 2025-12-03T11:00, end: 2025-12-03T12:00, reason: DDoS, component: api}\n"
    )
    path = tmp_path / "uptally.yaml"
    path.write_text(with_exclusion)
    runtime = Runtime(
        config_from(with_exclusion),
        Database(db_url),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
    )
    runtime.config_path = path
    await runtime.start()
    try:
        async with runtime.db.connect() as conn:
            [stored] = await sla_store.list_exclusions(conn)
        assert (stored.exclusion.source, stored.exclusion.reason) == ("config", "DDoS")
        assert stored.exclusion.start == 1_764_756_000_000  # 11:00 in Berlin
        await runtime.reload("signal:SIGHUP")  # unchanged: nothing happens
        path.write_text(CONFIG)
        await runtime.reload("signal:SIGHUP")
        async with runtime.db.connect() as conn:
            assert await sla_store.list_exclusions(conn) == []
            entries = await audit.list_entries(
                conn, AuditFilter(action="sla.*", newest_first=False)
            )
        assert [(e.action, e.actor) for e in entries] == [
            ("sla.exclusion_added", "system"),
            ("sla.exclusion_removed", "signal:SIGHUP"),
        ]
        assert entries[0].details["reason"] == "DDoS"
    finally:
        await runtime.stop()
