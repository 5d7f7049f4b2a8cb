"""The console's overview: triage order, filters, search and pages over HTTP; live state over
Server-Sent Events (a change arrives, a slow reader is told to resync, a signed-out stream
ends); in Chromium, a state pill changes without a reload, and the page passes axe-core."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts.roles import Role
from uptally.livestate import RESYNC, LiveStates
from uptally.results import Result
from uptally.web.console import routes_overview

MONITORS = 120  # more than a page (100)
CONSOLE_CONFIG = (
    "site: {title: Acme Cloud, timezone: Europe/Berlin}\n"
    "locations: [{name: eu, token_env: OVERVIEW_TEST_EU}]\n"
    "monitors:\n"
    + "".join(
        f"  - {{id: m{i:03d}, name: Service {i:03d}, kind: tcp, host: 127.0.0.1, port: 9,"
        f" confirm: 1{', tags: [shop]' if i % 10 == 0 else ''}"
        f"{', locations: [local, eu], consensus: any' if i % 40 == 0 else ''}}}\n"
        for i in range(MONITORS)
    )
    + "components:\n  - {id: db, name: Database, monitors: [m005, m006]}\n"
)
_seq = iter(range(10**6))


async def report(served: Console, monitor: str, ok: bool) -> None:
    """A result from the embedded location, written and evaluated."""
    runtime = served.runtime
    runtime.ingest.submit(
        Result(
            f"r{next(_seq)}",
            monitor,
            "local",
            runtime.clock.now_ms(),
            ok,
            30.0,
            None if ok else "connect_refused",
            "" if ok else "refused",
        )
    )
    await runtime.ingest.drained()


def monitor_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-monitor="([^"]+)"', html)


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def test_open_outages_come_first_and_filters_search_and_pages_narrow_the_list(
    console: Console,
) -> None:
    for monitor in ("m001", "m002", "m003"):
        await report(console, monitor, True)
    await report(console, "m050", False)  # down: an open outage
    await console.runtime.pause("m002", "test")
    base = console.url + "/console/"
    async with await signed_in_session(console.url, email_of(Role.VIEWER)) as http:
        status, html = await get(http, base)
        assert status == 200
        ids = monitor_ids(html)
        assert len(ids) == 100
        assert ids[:3] == ["m050", "m000", "m004"]  # the open outage, then the worst, by name
        assert "Monitors 1–100 of 120" in html
        assert 'data-count="down">1<' in html
        assert 'data-count="paused">1<' in html
        assert 'href="?page=2"' in html
        assert "New monitor" not in html  # a viewer gets no edit controls
        status, html = await get(http, base + "?page=2")
        assert "Monitors 101–120 of 120" in html
        assert monitor_ids(html)[-3:] == ["m002", "m001", "m003"]  # paused, then up
        _, html = await get(http, base + "?state=down")
        assert monitor_ids(html) == ["m050"]
        _, html = await get(http, base + "?state=paused")
        assert monitor_ids(html) == ["m002"]
        _, html = await get(http, base + "?q=service+01")
        assert monitor_ids(html) == [f"m01{i}" for i in range(10)]
        _, html = await get(http, base + "?tag=shop&state=unknown")
        assert monitor_ids(html) == [f"m{i:03d}" for i in range(0, 120, 10) if i != 50]
        _, html = await get(http, base + "?component=db")
        assert sorted(monitor_ids(html)) == ["m005", "m006"]
        _, html = await get(http, base + "?location=eu&q=")
        assert sorted(monitor_ids(html)) == ["m000", "m040", "m080"]
        _, html = await get(http, base + "?tag=shop&page=2")  # one page only: clamped
        assert len(monitor_ids(html)) == 12
        status, html = await get(http, base + "?component=nope")
        assert status == 422
        assert 'class="field-error"' in html
        assert "no component" in html
        assert 'id="component" name="component" aria-invalid="true"' in html
    async with await signed_in_session(console.url, email_of(Role.EDITOR)) as http:
        _, html = await get(http, base)
        assert 'href="/console/monitors/new"' in html


async def events(http: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of a Server-Sent Events stream."""
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name, data = "message", ""
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield name, data
                name, data = "message", ""
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()


async def test_a_state_change_reaches_an_open_event_stream(console: Console) -> None:
    await report(console, "m007", True)
    async with await signed_in_session(console.url, email_of(Role.VIEWER)) as http:
        stream = events(http, console.url + "/console/events")
        async with asyncio.timeout(10):
            name, _ = await anext(stream)
            assert name == "ready"  # subscribed: what changes from now on is sent
            started = time.monotonic()
            await report(console, "m007", False)
            async for name, data in stream:
                if name == "states" and '"m007":{"state":"down"' in data:
                    break
            assert time.monotonic() - started < 3
            assert '"down":1' in data  # the counts come along
        await stream.aclose()


async def test_a_stream_ends_at_the_next_heartbeat_after_signing_out(
    console: Console,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes_overview, "HEARTBEAT_S", 0.3)
    async with await signed_in_session(console.url, email_of(Role.VIEWER)) as http:
        csrf = await page_csrf(http, console.url + "/console/")
        stream = events(http, console.url + "/console/events")
        async with asyncio.timeout(10):
            assert (await anext(stream))[0] == "ready"
            async with http.post(console.url + "/console/logout", data={"csrf": csrf}) as r:
                assert r.status == 200  # redirected to the sign-in form
            assert (await anext(stream)) == ("end", "signed-out")
        await stream.aclose()
    url = console.url + "/console/events"
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False) as r:
        assert r.status == 303  # signed out: no stream at all


async def test_a_reader_that_falls_behind_is_told_to_resync_and_holds_no_more_frames() -> None:
    states = {f"m{i}": "up" for i in range(100)}
    feed = LiveStates(lambda m: (states[m], ()), window_s=0, queue=4)
    feed.reset(states)
    slow = feed.subscribe()
    for round_ in range(10):
        for name in states:
            states[name] = "down" if round_ % 2 == 0 else "up"
        feed.check(states)
        await asyncio.sleep(0)  # the frame goes out on the next turn of the loop
    assert len(slow._frames) == 0  # dropped, not grown
    assert await slow.next(1) is RESYNC
    assert feed.counts == {"up": 100, "down": 0}
    late = feed.subscribe(since=feed.seq - 2)  # a reconnect replays what is kept
    assert [(await late.next(1)).seq for _ in range(2)] == [feed.seq - 1, feed.seq]


@pytest.mark.slow
async def test_the_page_updates_live_and_is_accessible_in_light_and_dark(
    console: Console,
    browser: Any,
) -> None:
    from playwright.async_api import expect

    await report(console, "m000", True)
    page = await browser_sign_in(browser, console.url, Role.VIEWER)
    await page.goto(console.url + "/console/?q=service+00")  # up comes last: on page 1 here
    await expect(page.locator("#live-status")).to_have_text("Live", timeout=10_000)
    pill = page.locator('tr[data-monitor="m000"] [data-state]')
    await expect(pill).to_have_text("up")
    await report(console, "m000", False)
    await expect(pill).to_have_text("down", timeout=5_000)  # no reload
    await expect(page.locator('[data-count="down"]')).to_have_text("1")
    await assert_accessible(page)
    await page.emulate_media(color_scheme="dark")
    await assert_accessible(page)
    await page.context.close()
