"""The console's incidents and maintenance pages: declaring from a real outage, updates on the
public page, the clocks, the postmortem, short-notice maintenance, and what a viewer may do."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from tests.conftest import config_from
from tests.console_support import (
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts.roles import Role
from uptally.clock import from_datetime
from uptally.incidents.commitments import Commitment, Kind
from uptally.notify.desk import rules_for
from uptally.results import Result
from uptally.store import incidents as incident_store
from uptally.store import maintenance as maintenance_store
from uptally.store import outages as outage_store
from uptally.web.console.incidents_view import clock_of

CONSOLE_CONFIG = """
site: {title: Acme Cloud, timezone: Europe/Berlin}
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: db, name: Database, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: db, name: Database, monitors: [db]}
incidents:
  automation: {default: "off", runbook: outage}  # people declare; the template names the runbook
  runbooks:
    outage:
      - {phase: notification, steps: [Page the on-call lead, Post the first update]}
      - {phase: recovery, steps: [Fail over the database]}
      - {phase: resolution, steps: [Confirm recovery, Write the postmortem]}
"""


async def _outage(served: Console, monitor: str = "db") -> str:
    """A real verified outage: a failing check result through the ingest pipeline."""
    runtime = served.runtime
    now = runtime.clock.now_ms()
    runtime.ingest.submit(
        Result("r1", monitor, "local", now, False, None, "refused", "connection refused")
    )
    await runtime.ingest.drained()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        async with runtime.db.connect() as conn:
            found = await outage_store.list_outages(conn, since=now, verified_only=True)
        if found:
            return found[0].outage.id
        await asyncio.sleep(0.02)
    raise AssertionError("no verified outage")


async def _form(http: aiohttp.ClientSession, url: str, data: dict[str, str]) -> tuple[int, str]:
    async with http.post(url, data=data, allow_redirects=True) as response:
        return response.status, await response.text()


def test_the_clocks_say_what_is_due_when_in_words_and_colour() -> None:
    config = config_from(CONSOLE_CONFIG)
    rules, tz = rules_for(config), config.site.timezone
    now = from_datetime(datetime(2026, 12, 3, 18, 0, tzinfo=ZoneInfo(tz)))
    tuesday_ends = from_datetime(datetime(2026, 12, 9, tzinfo=ZoneInfo(tz)))
    cases = [
        (Kind.UPDATE, now + 12 * 60_000 + 30_000, "next update due in 12 min", "clock-ok"),
        (Kind.UPDATE, now + 3 * 60_000, "next update due in 3 min", "clock-soon"),
        (Kind.FIRST_POST, now - 5 * 60_000, "first post overdue by 5 min", "clock-late"),
        (Kind.FIRST_POST, now + 65 * 60_000, "first post due in 1 h 5 min", "clock-ok"),
        (Kind.POSTMORTEM, tuesday_ends, "postmortem due Tue 8 Dec", "clock-ok"),
    ]
    for kind, due, text, css in cases:
        shown = clock_of(Commitment("c", "i", kind, now - 1, due), now, rules, tz)
        assert (shown.text, shown.css) == (text, css)


async def test_a_viewer_sees_no_controls_and_a_forged_post_is_refused(console: Console) -> None:
    await _outage(console)
    http = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with http:
        csrf = await page_csrf(http, console.url + "/console/incidents")
        async with http.get(console.url + "/console/incidents") as r:
            html = await r.text()
        assert "Database" in html  # the outage is listed …
        assert "Declare incident" not in html  # … without the control
        for path, data in [
            ("/console/incidents/new", {"title": "Forged", "impact": "major"}),
            ("/console/maintenance", {"title": "Forged", "components": "db"}),
        ]:
            status, text = await _form(http, console.url + path, {"csrf": csrf, **data})
            assert status == 403, text
    async with console.runtime.db.connect() as conn:
        assert await incident_store.find_incidents(conn) == []


async def test_a_bad_update_is_refused_inline_and_the_preview_is_the_subscribers_mail(
    console: Console,
) -> None:
    outage = await _outage(console)
    http = await signed_in_session(console.url, email_of(Role.RESPONDER))
    async with http:
        csrf = await page_csrf(http, console.url + "/console/incidents")
        status, html = await _form(
            http, console.url + "/console/incidents/declare", {"csrf": csrf, "outage": outage}
        )
        assert status == 200
        incident = re.search(r'action="/console/incidents/([0-9a-f]{26})/update"', html)
        assert incident, html
        path = f"/console/incidents/{incident[1]}"
        assert "Database is down" in html
        assert "first post due" not in html  # the template's message was the first post
        assert "next update due in 29 min" in html or "next update due in 30 min" in html
        status, html = await _form(
            http, console.url + path + "/update", {"csrf": csrf, "status": "identified"}
        )
        assert status == 422
        assert "an update needs a message" in html
        assert 'aria-invalid="true"' in html
        data = {
            "csrf": csrf,
            "status": "identified",
            "message": "The **primary** failed over.",
            "action": "preview",
        }
        status, html = await _form(http, console.url + path + "/update", data)
        assert status == 200
        assert "[Acme Cloud] Database is down (identified)" in html
        assert "You receive this because you subscribed" in html
        async with console.runtime.db.connect() as conn:
            updates = await incident_store.load_updates(conn, [incident[1]])
        assert len(updates) == 1  # a preview posts nothing


@pytest.mark.slow
async def test_a_responder_runs_an_incident_from_an_outage_to_its_postmortem(
    console: Console, browser: object
) -> None:
    await _outage(console)
    page = await browser_sign_in(browser, console.url, Role.RESPONDER)
    await page.goto(console.url + "/console/incidents")
    await assert_accessible(page)
    await page.get_by_role("button", name="Declare incident for Database").click()
    await page.wait_for_url(re.compile(r"/console/incidents/[0-9a-f]{26}\?done=declared"))
    incident_url = page.url.split("?")[0]
    clock = page.locator(".clocks.big li").first
    assert re.fullmatch(r"next update due in (29|30) min", await clock.inner_text())
    assert await clock.get_attribute("class") == "clock-ok"
    await assert_accessible(page)
    await page.emulate_media(color_scheme="dark")
    await assert_accessible(page)
    await page.goto(console.url + "/console/incidents")
    await assert_accessible(page)
    await page.emulate_media(color_scheme="light")
    await page.goto(incident_url)

    await page.select_option("#status", "identified")
    await page.fill("#message", "The primary database failed over; replicas catch up.")
    await page.get_by_role("button", name="Post update").click()
    await page.wait_for_url(re.compile(r"done=posted"))
    public = await browser.new_context()  # a visitor, not signed in
    visitor = await public.new_page()
    deadline = time.monotonic() + 1.0
    seen = False
    while not seen and time.monotonic() < deadline:
        await visitor.goto(console.url + "/")
        seen = "replicas catch up" in await visitor.content()
    assert seen, "the update is not on the public page within 1 s"

    await page.get_by_role("button", name=re.compile("Page the on-call lead")).click()
    await page.wait_for_url(re.compile(r"done=step"))
    assert await page.locator(".checklist li.done").count() == 1

    await page.select_option("#status", "resolved")
    await page.fill("#message", "Resolved: the database is healthy.")
    await page.get_by_role("button", name="Post update").click()
    await page.wait_for_url(re.compile(r"done=posted"))
    await page.fill("#pm-body", "## What happened\n\nThe primary **failed over**.")
    await page.get_by_role("button", name="Preview", exact=True).click()
    await page.locator(".pm-preview h2", has_text="What happened").wait_for()
    await page.get_by_role("button", name="Publish").click()
    await page.wait_for_url(re.compile(r"done=published"))
    assert "published" in await page.locator("#pm-h").inner_text()
    await visitor.goto(incident_url.replace("/console", ""))
    assert "failed over" in await visitor.content()
    await public.close()


@pytest.mark.slow
async def test_maintenance_with_short_notice_warns_and_ends_early(
    console: Console, browser: object
) -> None:
    page = await browser_sign_in(browser, console.url, Role.RESPONDER)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(console.url + "/console/maintenance")
    berlin = datetime.now(ZoneInfo("Europe/Berlin")).replace(second=0, microsecond=0)
    await page.fill("#title", "Database upgrade")
    await page.fill("#start", berlin.strftime("%Y-%m-%dT%H:%M"))  # now: less than 24 h
    await page.fill("#end", (berlin + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    await page.check("input[name=components][value=db]")
    await page.get_by_role("button", name="Schedule", exact=True).click()
    warning = page.locator(".warning-box")
    await warning.wait_for()
    assert "less than 24 h" in await warning.inner_text()
    async with console.runtime.db.connect() as conn:
        assert await maintenance_store.list_windows(conn) == []  # nothing until confirmed
    await page.get_by_role("button", name="Schedule anyway").click()
    await page.wait_for_url(re.compile(r"done=scheduled"))
    assert await page.locator(".tag", has_text="short notice").count() >= 1
    await assert_accessible(page)
    await page.emulate_media(color_scheme="dark")
    await assert_accessible(page)
    await page.emulate_media(color_scheme="light")
    # The timer starts it (it began now); then it ends early.
    running = page.locator(".window-status-in_progress")
    deadline = time.monotonic() + 5
    while not await running.count() and time.monotonic() < deadline:
        await page.reload()
    await page.get_by_role("button", name=re.compile(r"^End now")).click()
    await page.wait_for_url(re.compile(r"done=ended"))
    assert await page.locator(".window-status-completed").count() == 1
    async with console.runtime.db.connect() as conn:
        (window,) = await maintenance_store.list_windows(conn)
    assert window.status == "completed"
    assert window.completed_at is not None
    assert window.completed_at < window.scheduled_until - 3_600_000  # ended early


async def test_bad_maintenance_input_is_refused_inline_and_nothing_changes(
    console: Console,
) -> None:
    http = await signed_in_session(console.url, email_of(Role.RESPONDER))
    async with http:
        url = console.url + "/console/maintenance"
        csrf = await page_csrf(http, url)
        base = {"csrf": csrf, "title": "Vacuum", "components": "db", "kind": "once"}
        for data, expected in [
            ({"start": "2027-06-01T10:00", "end": "2027-06-01T09:00"}, "end must be after start"),
            ({"start": "not a time", "end": "2027-06-01T09:00"}, "start"),
            ({"kind": "recurring", "rrule": "FREQ=WEEKLY"}, "duration"),
            (
                {"start": "2027-06-01T10:00", "end": "2027-06-01T12:00", "components": "nope"},
                "nope",
            ),
        ]:
            status, html = await _form(http, url, {**base, **data})
            assert status == 422, html
            assert expected in html
            assert 'aria-invalid="true"' in html
        status, html = await _form(http, url + "/nope/extend", {"csrf": csrf, "by": "1h"})
        assert status == 404
        assert "no maintenance window" in html
        async with http.get(console.url + "/console/incidents/" + "0" * 26) as r:
            assert r.status == 404
        async with console.runtime.db.connect() as conn:
            assert await maintenance_store.list_windows(conn) == []
        daily = {**base, "kind": "recurring", "rrule": "FREQ=DAILY", "duration": "2h"}
        first = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)
        status, html = await _form(http, url, {**daily, "start": first.strftime("%Y-%m-%dT02:00")})
        assert status == 200, html
        assert "Maintenance scheduled" in html
        assert "recurring" in html
