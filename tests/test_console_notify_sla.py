"""The console's notifications and SLA pages over HTTP (and two looks in Chromium): the SLA
page shows the API's numbers and gives its CSV; "send test" reaches a real webhook receiver; a
failed delivery is retried; a viewer sees no controls and a forged POST is refused."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    ADMIN_TOKEN,
    CONFIG,
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
    page_csrf,
    signed_in_session,
)
from tests.procs import run_cli
from tests.receivers import HttpReceiver
from uptally.accounts.roles import Role
from uptally.secrets import Key, Keyring
from uptally.store import subscribers as subscriber_store
from uptally.store.subscribers import Subscriber

CONSOLE_CONFIG = (
    CONFIG
    + """
status_pages:
  - {id: internal, path: /internal, title: Internal, components: [db]}
notifications:
  channels:
    - {id: ops, url: "webhook+http://127.0.0.1:9/hook", events: ["incident.*"]}
sla:
  policies:
    - id: gold
      target: 99.9
      credits: [{below: 99.9, credit: 10}, {below: 99.0, credit: 25}]
  plans:
    - {id: gold, policy: gold, fee: 1000, currency: EUR}
  customers:
    - {id: globex, name: Globex, plan: gold}
"""
)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FIELDS = ["target", "uptime_percent", "downtime_minutes", "excluded_minutes", "credit_percent"]


async def api(http: aiohttp.ClientSession, url: str, method: str = "GET", **kw: Any) -> Any:
    async with http.request(method, url, headers=AUTH, **kw) as response:
        assert response.status < 300, await response.text()
        return await response.json() if "json" in response.content_type else await response.text()


async def get_html(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.text()


def page_rows(html: str) -> dict[tuple[str, str], dict[str, str]]:
    """The report table's cells by (policy, component), as text."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for policy, component, body in re.findall(
        r'<tr data-policy="([^"]+)" data-component="([^"]+)">(.*?)</tr>', html, re.S
    ):
        cells = dict(re.findall(r'data-field="([a-z_]+)">(.*?)</td>', body, re.S))
        found[(policy, component)] = {k: unescape(v).strip() for k, v in cells.items()}
    return found


def iso_at(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def same(cell: str, value: float) -> bool:
    return float(cell) == value


async def deadline(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll `check` (async) until it returns something truthy."""
    end = time.monotonic() + seconds
    while True:
        found = await check()
        if found or time.monotonic() > end:
            return found
        await asyncio.sleep(0.05)


async def seed_outages(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for body in (
            {"monitor": "api", "start": "2026-10-05T10:00:00Z", "end": "2026-10-05T11:30:00Z"},
            {"component": "db", "start": "2026-10-20T08:00:00Z", "end": "2026-10-20T08:20:00Z"},
            {"monitor": "api", "start": "2026-12-01T09:00:00Z", "end": "2026-12-01T09:05:00Z"},
        ):
            await api(http, url + "/api/v1/outages", "POST", json={**body, "reason": "test"})


async def test_the_sla_page_shows_the_apis_numbers_and_gives_its_csv(
    console: Console,
    tmp_path: Path,
) -> None:
    await seed_outages(console.url)
    http = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with http, aiohttp.ClientSession() as admin:
        html = await get_html(http, console.url + "/console/sla?year=2026&month=10")
        report = await api(admin, console.url + "/api/v1/sla/report?period=2026-10")
        rows = page_rows(html)
        assert len(rows) == len(report["rows"]) == 2
        for row in report["rows"]:
            cells = rows[(row["policy"], row["component"])]
            for name in FIELDS:
                assert same(cells[name], row[name]), (name, cells, row)
            assert ("missed" in cells["met"]) == (row["met"] is False)
        api_row = report["rows"][0]
        assert (api_row["component"], api_row["downtime_minutes"], api_row["met"]) == (
            "api",
            90,
            False,
        )
        assert f"2026-10: {api_row['uptime_percent']} % (below target)" in unescape(html)
        september = await api(admin, console.url + "/api/v1/sla/report?period=2026-09")
        assert september["rows"][0]["measured_from"] is None  # before any data: not measured
        assert "2026-09: no data" in html
        globex = report["customers"][0]
        assert globex["credit_amount"] == "100.00"
        assert f"{globex['credit_amount']} EUR" in html

        # The current month (the default) moves with time: the page lies between two reads.
        label = (await api(admin, console.url + "/api/v1/sla/budgets"))["budgets"][0]["period"]
        before = await api(admin, console.url + f"/api/v1/sla/report?period={label}")
        current = page_rows(await get_html(http, console.url + "/console/sla"))
        after = await api(admin, console.url + f"/api/v1/sla/report?period={label}")
        for early, late in zip(before["rows"], after["rows"], strict=True):
            cells = current[(early["policy"], early["component"])]
            low, high = sorted((early["uptime_percent"], late["uptime_percent"]))
            assert low <= float(cells["uptime_percent"]) <= high
            assert same(cells["downtime_minutes"], early["downtime_minutes"])

        async with http.get(console.url + "/console/sla/report.csv?period=2026-10") as r:
            assert r.status == 200
            assert r.content_type == "text/csv"
            assert "attachment" in r.headers["Content-Disposition"]
            page_csv = await r.text()
        assert page_csv == await api(
            admin, console.url + "/api/v1/sla/report?period=2026-10&format=csv"
        )
        first = next(iter(csv.DictReader(io.StringIO(page_csv))))
        assert first["downtime_minutes"] == "90.0"
        config = tmp_path / "uptally.yaml"
        config.write_text(CONSOLE_CONFIG)
        code, printed = await run_cli(
            *("sla", "report", "--config", str(config), "--period", "2026-10"),
            *("--format", "csv", "--data-dir", str(tmp_path)),
            env={"UPTALLY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/u.db"},
        )
        assert (code, printed) == (0, page_csv)

        # Burning now: 20 minutes down in the last hour (the 1 h and 6 h windows hold all of it)
        now = time.time()
        await api(
            admin,
            console.url + "/api/v1/outages",
            "POST",
            json={"component": "db", "start": iso_at(now - 1800), "end": iso_at(now - 600)},
        )
        burning = await get_html(http, console.url + "/console/sla")
        rates = (await api(admin, console.url + "/api/v1/sla/burn-rates"))["burn_rates"]
        db = next(r for r in rates if r["component"] == "db")
        assert (db["rates"]["1h"], db["rates"]["6h"]) == (333.333, 55.556)
        cells = re.search(r'<tr data-burn="gold/db">(.*?)</tr>', burning, re.S)
        assert cells is not None
        assert ">333.333×<" in cells[1]
        assert ">55.556×<" in cells[1]
        assert "1h/5m ≥ 14.4×: quiet" in cells[1]  # the last 5 minutes burn nothing
        assert "6h/30m ≥ 6×: firing" in cells[1]

        bad = await get_html(http, console.url + "/console/sla?year=20x6&month=10")
        assert 'aria-invalid="true"' in bad
        assert "four digits" in bad
        assert '<svg viewBox="0 0 640 180" role="img"' in bad


async def channel_log(http: aiohttp.ClientSession, url: str, channel: str) -> list[dict[str, Any]]:
    found = await api(http, url + f"/api/v1/deliveries?channel={channel}")
    return list(found["deliveries"])


async def test_send_test_reaches_a_webhook_and_a_failed_delivery_is_retried(
    console: Console,
) -> None:
    console.runtime.keyring = Keyring(Key.from_bytes(os.urandom(32)))
    # the first test is taken; the second refused for good (400); its retry taken
    receiver = HttpReceiver(answer=lambda n, _path: 400 if n == 1 else 200)
    async with receiver, aiohttp.ClientSession() as admin:
        await api(
            admin,
            console.url + "/api/v1/channels",
            "POST",
            json={"id": "hook", "url": f"webhook+{receiver.url}/in", "secret": "s3cret-value"},
        )
        http = await signed_in_session(console.url, email_of(Role.EDITOR))
        async with http:
            page = console.url + "/console/notifications"
            html = await get_html(http, page)
            assert "s3cret-value" not in html
            assert receiver.url not in html
            csrf = await page_csrf(http, page)
            test = page + "/channels/hook/test"
            async with http.post(test, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            await receiver.wait_for(lambda: len(receiver.requests) == 1)
            sent = receiver.requests[0]
            assert sent.headers["X-Uptally-Event"] == "channel.test"
            assert sent.json()["data"]["requested_by"] == f"operator:{email_of(Role.EDITOR)}"

            async def settled() -> list[dict[str, Any]]:
                log = await channel_log(admin, console.url, "hook")
                return log if all(d["state"] != "pending" for d in log) else []

            assert [d["state"] for d in await deadline(settled)] == ["delivered"]
            async with http.post(test, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303
            await receiver.wait_for(lambda: len(receiver.requests) == 2)

            async def failed() -> list[dict[str, Any]]:
                return [d for d in await settled() if d["state"] == "failed"]

            (broken,) = await deadline(failed)
            html = await get_html(http, page)
            assert f"/console/notifications/deliveries/{broken['id']}/retry" in html
            assert "Delivered within 1 h" in html
            retry = page + f"/deliveries/{broken['id']}/retry"
            async with http.post(retry, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 303
            await receiver.wait_for(lambda: len(receiver.requests) == 3)
            assert receiver.requests[2].headers["X-Uptally-Delivery"] == broken["id"]
            states = [d["state"] for d in await deadline(settled)]
            assert states == ["delivered", "delivered"]
            async with http.post(retry, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 404  # only a failed delivery is retried
        for path in ("/channels/nope/test", f"/deliveries/{broken['id']}/retry"):
            async with admin.post(console.url + "/api/v1" + path, headers=AUTH) as r:
                assert r.status == 404, await r.text()
        queued = await api(admin, console.url + "/api/v1/channels/hook/test", "POST")
        assert queued["target"] == "channel:hook"
        await receiver.wait_for(lambda: len(receiver.requests) == 4)
        audit = await api(admin, console.url + "/api/v1/audit?action=delivery.retried")
        assert [e["target"] for e in audit["entries"]] == [f"delivery:{broken['id']}"]


async def add_subscribers(served: Console) -> None:
    now = served.runtime.clock.now_ms()
    async with served.runtime.db.begin() as conn:
        for i, (kind, address, components, state) in enumerate(
            [
                ("email", "jane.doe@example.org", [], "active"),
                ("email", "max@example.net", ["db"], "pending"),
                ("webhook", "https://hooks.example.com/t/abc123", ["api"], "active"),
            ]
        ):
            await subscriber_store.save(
                conn,
                Subscriber(f"{i:026d}", kind, address, components, state, now, None, None, now, 0),
            )


async def test_a_viewer_sees_no_controls_and_masked_addresses_and_forged_posts_are_refused(
    console: Console,
) -> None:
    await add_subscribers(console)
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    page = console.url + "/console/notifications"
    async with viewer:
        html = await get_html(viewer, page)
        for control in ("Send test", "Retry", "Export CSV", 'name="csrf" value="'):
            assert control not in html.split("</header>", 1)[1]
        assert "jane.doe@example.org" not in html
        assert "j•••@example.org" in html
        assert "abc123" not in html
        # per status page: the main page has all three, /internal (db) the two that cover db
        main = re.search(r'data-scope="/">(.*?)</tr>', html, re.S)
        internal = re.search(r'data-scope="/internal">(.*?)</tr>', html, re.S)
        assert main is not None
        assert internal is not None
        numbers = [re.findall(r'class="num">(\d+)<', m[1]) for m in (main, internal)]
        assert numbers == [["1", "1", "1", "0"], ["1", "1", "0", "0"]]
        csrf = await page_csrf(viewer, page)
        for path in ("/channels/ops/test", "/deliveries/" + "0" * 26 + "/retry"):
            async with viewer.post(page + path, data={"csrf": csrf}, allow_redirects=False) as r:
                assert r.status == 403
        async with viewer.get(page + "/subscribers.csv") as r:
            assert r.status == 403
    editor = await signed_in_session(console.url, email_of(Role.EDITOR))
    async with editor:
        async with editor.post(page + "/channels/ops/test", allow_redirects=False) as r:
            assert r.status == 403  # no CSRF token
        async with editor.get(page + "/subscribers.csv") as r:
            assert r.status == 403  # addresses are for admins
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        html = await get_html(admin, page)
        assert "jane.doe@example.org" in html
        assert "Export CSV" in html
        async with admin.get(page + "/subscribers.csv") as r:
            exported = list(csv.DictReader(io.StringIO(await r.text())))
        assert sorted(row["address"] for row in exported) == [
            "https://hooks.example.com/t/abc123",
            "jane.doe@example.org",
            "max@example.net",
        ]


@pytest.mark.slow
async def test_both_pages_are_accessible_in_light_and_dark(
    console: Console,
    browser: Any,
) -> None:
    await seed_outages(console.url)
    await add_subscribers(console)
    page = await browser_sign_in(browser, console.url, Role.EDITOR)
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        for path in ("/console/notifications", "/console/sla?year=2026&month=10"):
            await page.goto(console.url + path)
            await page.wait_for_selector("h1")
            await assert_accessible(page)
