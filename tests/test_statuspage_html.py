"""What a visitor sees is valid and true: every page and feed is valid HTML (incident Markdown
rendered once, never nested in a paragraph), empty history says so, the page offers subscribing,
browsers get HTML 404 pages, the favicon, a heartbeat waiting for its first ping, the title, and
response-time charts with labelled axes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import aiohttp
import feedparser
import pytest

from tests.conftest import config_from, serve_app
from tests.htmlcheck import assert_valid, problems
from uptally.clock import FakeClock, to_datetime
from uptally.config.schema import Site as SiteSettings
from uptally.markdown import lead_in
from uptally.markdown import render as markdown
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.status import Indicator
from uptally.statuspage import feeds, render, svg
from uptally.statuspage.build import build_page
from uptally.statuspage.model import PageModel
from uptally.store import monitoring_gaps as gap_store
from uptally.store.database import Database
from uptally.web.app import create_app

BOOT = "html-admin-token"
AUTH = {"Authorization": f"Bearer {BOOT}"}
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
SMTP = 'notifications:\n  smtp: {host: 127.0.0.1, port: 9, from: "Acme <status@acme.test>"}\n'
CONFIG = """
site: {title: Acme, timezone: Europe/Berlin, url: "https://status.acme.test"}
monitors:
  - {id: api, name: API health, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: nightly, name: Nightly run, kind: heartbeat, period: 24h, grace: 1h,
     token: nightly-token-1}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: backup, name: Backups, monitors: [nightly]}
"""
FIRST = "- replica promoted\n- writes paused"  # a list first: no paragraph to put the lead in
LATEST = "The primary failed over.\n\n- cause: a full disk\n- fix: rolling out\n\nMore soon."
WINDOW = "We upgrade PostgreSQL.\n\n- reads keep working\n- writes pause for **5 minutes**"
_ids = iter(range(10**9))


def result(clock: FakeClock, monitor: str, latency: float = 40.0) -> Result:
    return Result(f"h{next(_ids)}", monitor, "local", clock.now_ms(), True, latency, None, "")


@dataclass
class Site:
    runtime: Runtime
    clock: FakeClock
    http: aiohttp.ClientSession
    url: str
    incident: str
    window: str

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        async with self.http.get(self.url + path, headers=headers) as response:
            return Answer(
                response.status, response.headers.get("content-type", ""), await response.text()
            )


@dataclass
class Answer:
    status: int
    type: str
    text: str


async def start(db_url: str, clock: FakeClock, config: str) -> Runtime:
    runtime = Runtime(
        config_from(config), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    runtime.ingest.submit(result(clock, "api"))
    await runtime.ingest.drained()
    await runtime.ingest.flush()
    return runtime


@pytest.fixture
async def site(db_url: str, clock: FakeClock) -> AsyncIterator[Site]:
    runtime = await start(db_url, clock, CONFIG + SMTP)
    try:
        async with serve_app(create_app(runtime, BOOT)) as url, aiohttp.ClientSession() as http:
            body = {"title": "Database failover", "impact": "major", "components": ["api"]}
            async with http.post(
                url + "/api/v1/incidents", json={**body, "message": FIRST}, headers=AUTH
            ) as response:
                assert response.status == 201, await response.text()
                incident = (await response.json())["id"]
            clock.advance(60_000)
            update = {"status": "identified", "message": LATEST}
            async with http.post(
                f"{url}/api/v1/incidents/{incident}/updates", json=update, headers=AUTH
            ) as response:
                assert response.status == 201, await response.text()
            begins = to_datetime(clock.now_ms()) + timedelta(days=2)
            window = {
                "title": "Database upgrade",
                "start": begins.isoformat(),
                "end": (begins + timedelta(hours=2)).isoformat(),
                "components": ["api"],
                "message": WINDOW,
            }
            async with http.post(
                url + "/api/v1/maintenance", json=window, headers=AUTH
            ) as response:
                assert response.status == 201, await response.text()
                window_id = (await response.json())["id"]
            yield Site(runtime, clock, http, url, incident, window_id)
    finally:
        await runtime.stop()


async def until(fetch: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]) -> Any:
    """Poll with a deadline (the page rebuilds in the background after a change)."""
    async with asyncio.timeout(20):
        while True:
            value = await fetch()
            if check(value):
                return value
            await asyncio.sleep(0.05)


def model(title: str = "Acme", **extra: Any) -> PageModel:
    return PageModel(
        SiteSettings(title=title, url=extra.pop("url", None)),
        "p",
        "https://status.acme.test",
        1_767_225_600_000,
        Indicator("none", "All Systems Operational"),
        [],
        [],
        [],
        [],
        **extra,
    )


# -- Markdown, rendered once -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Looking into it.",
        FIRST,
        LATEST,
        WINDOW,
        "# Heading\n\n1. one\n2. two\n\n```\ncode\n```",
        "> quoted\n>\n> - in a list\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "<p>raw <b>html</b></p><script>alert(1)</script>\n\n[x](javascript:alert(1))",
        "- nested\n  - deeper\n\n    with a paragraph\n- last",
    ],
)
def test_markdown_renders_valid_html_and_the_lead_never_dangles(text: str) -> None:
    html = markdown(text)
    assert_valid(html, fragment=True)
    led = lead_in("Investigating", html)
    assert_valid(led, fragment=True)
    assert led.startswith("<p><strong>Investigating</strong>")
    assert "— </p>" not in led
    assert "—</p>" not in led
    assert "<script" not in led
    assert 'href="javascript' not in led


def test_the_lead_goes_into_the_first_paragraph_or_stands_before_a_list() -> None:
    assert lead_in("Identified", markdown("Found it.\n\n- a")) == (
        "<p><strong>Identified</strong> — Found it.</p>\n<ul>\n<li>a</li>\n</ul>\n"
    )
    assert lead_in("Identified", markdown("- a")).startswith(
        "<p><strong>Identified</strong></p><ul>"
    )
    assert lead_in("<b>", "") == "<p><strong>&lt;b&gt;</strong></p>"


def test_the_checker_finds_a_paragraph_in_a_paragraph() -> None:
    """What the old card and feed wrote: the update's paragraph nested in another."""
    old = f"<p><strong>Identified</strong> — {markdown(LATEST)}</p>"
    assert any("inside <p>" in p for p in problems(old, fragment=True))


# -- pages and feeds ---------------------------------------------------------------------------


async def test_every_page_is_valid_html_with_the_updates_read_as_written(site: Site) -> None:
    pages = {
        "/": None,
        "/history": None,
        "/history?page=2": None,
        f"/incidents/{site.incident}": None,
        f"/maintenance/{site.window}": None,
        "/subscribe": None,
        "/no-such-page": None,
    }
    for path in pages:
        answer = await site.get(path, HTML)
        assert answer.type.startswith("text/html"), (path, answer.type)
        assert_valid(answer.text)
        assert "— </p>" not in answer.text, path
        pages[path] = answer.text
    index = pages["/"]
    assert "<strong>Identified</strong> — The primary failed over.</p>" in index
    assert "<li>fix: rolling out</li>" in index
    assert "<li>writes pause for <strong>5 minutes</strong></li>" in index  # the window's note
    incident = pages[f"/incidents/{site.incident}"]
    assert "<li>replica promoted</li>" in incident
    assert "<li>cause: a full disk</li>" in incident


async def test_feeds_carry_the_updates_as_escaped_valid_html(site: Site) -> None:
    atom = await site.get("/feed.atom")
    root = ElementTree.fromstring(atom.text)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    contents = root.findall("a:entry/a:content", ns)
    assert contents
    assert all(c.get("type") == "html" and len(c) == 0 for c in contents)
    assert "&lt;ul&gt;" in atom.text
    assert "<ul>" not in atom.text

    for path in ("/feed.atom", "/feed.rss"):
        feed = feedparser.parse((await site.get(path)).text)
        assert not feed.bozo, feed.bozo_exception
        by_title = {entry.title: entry for entry in feed.entries}
        incident = by_title["Database failover (identified)"]
        html = incident.content[0].value if path == "/feed.atom" else incident.description
        assert_valid(html, fragment=True)
        assert "<strong>Identified</strong> — The primary failed over.</p>" in html
        assert "<p><strong>Investigating</strong></p><ul>" in html
        window = by_title["Maintenance: Database upgrade (scheduled)"]
        html = window.content[0].value if path == "/feed.atom" else window.description
        assert_valid(html, fragment=True)
        assert "<li>reads keep working</li>" in html
        assert "- reads" not in html


async def test_history_months_with_nothing_say_no_incidents_reported(site: Site) -> None:
    # The clock stands at 2026-01-01 01:00 in Berlin: the first page shows Jan 2026 (the
    # incident and the window), Dec and Nov 2025 (nothing); the second page nothing at all.
    first = (await site.get("/history", HTML)).text
    months = re.findall(r'<section class="month"[^>]*>\s*<h2[^>]*>([^<]+)</h2>', first)
    assert months == ["January 2026", "December 2025", "November 2025"]
    assert first.count("No incidents reported") == 2
    january = first.split("January 2026", 1)[1].split("December 2025", 1)[0]
    assert "Database failover" in january
    assert "No incidents reported" not in january
    second = (await site.get("/history?page=2", HTML)).text
    assert second.count("No incidents reported") == 3


async def test_time_not_monitored_is_shown_in_the_day_and_listed_in_the_history(
    site: Site,
) -> None:
    site.clock.advance(2 * 3_600_000)  # measured time began at the first result, 2 h ago
    now = site.clock.now_ms()
    async with site.runtime.db.begin() as conn:  # uptally was not running for 25 minutes
        await gap_store.record_gap(site.runtime.db, conn, now - 3_600_000, now - 2_100_000, False)
    site.clock.advance(61_000)  # pages older than a minute are rebuilt
    index = await until(lambda: site.get("/", HTML), lambda a: "not monitored" in a.text)
    assert_valid(index.text)
    assert re.search(r"<title>\d{4}-\d\d-\d\d: [^<]*25 min not monitored", index.text)
    history = (await site.get("/history", HTML)).text
    assert_valid(history)
    entry = history.split("Not monitored: the monitoring service was not running", 1)[1]
    entry = entry.split('<div class="component">', 1)[0]
    assert "not monitored · neither up nor down" in entry
    assert "· 25 min</p>" in entry


# -- subscribing -------------------------------------------------------------------------------


async def test_the_page_links_to_the_subscribe_form_which_asks_for_e_mail_first(
    site: Site,
) -> None:
    index = (await site.get("/", HTML)).text
    assert '<a class="subscribe" href="/subscribe">Subscribe<span class="wide"> to updates' in index
    form = (await site.get("/subscribe", HTML)).text
    assert form.index('name="email"') < form.index('name="webhook"')
    assert '<label for="email">E-mail address</label>' in form
    assert '<label for="webhook">Webhook URL</label>' in form
    assert "(for developers)" in form
    assert "Or a webhook" not in form


@pytest.mark.parametrize(
    ("extra", "linked", "fields"),
    [
        ("", True, ["webhook"]),  # no mail server: webhooks only
        (SMTP, True, ["email", "webhook"]),
        (SMTP + "  subscribers: {webhook: false}\n", True, ["email"]),
        ("notifications: {subscribers: {webhook: false}}\n", False, []),
        (SMTP + "  subscribers: {enabled: false}\n", False, []),
    ],
)
async def test_the_link_shows_whenever_some_way_to_subscribe_is_on(
    db_url: str, clock: FakeClock, extra: str, linked: bool, fields: list[str]
) -> None:
    runtime = await start(db_url, clock, CONFIG + extra)
    try:
        async with serve_app(create_app(runtime)) as url, aiohttp.ClientSession() as http:
            async with http.get(url + "/", headers=HTML) as response:
                index = await response.text()
            async with http.get(url + "/subscribe", headers=HTML) as response:
                form = await response.text()
        assert ('href="/subscribe"' in index) is linked
        assert [f for f in ("email", "webhook") if f'name="{f}"' in form] == fields
        if fields == ["webhook"]:
            assert "<h2>By webhook</h2>" in form  # alone: no "or", no "for developers"
        page = await build_page(runtime, "https://status.acme.test")
    finally:
        await runtime.stop()
    assert page.subscribe is linked
    exported = render.index_html(page, render.Links(export_depth=0)).decode()
    assert ('href="https://status.acme.test/subscribe"' in exported) is linked


def test_a_static_export_without_the_site_url_links_to_no_form() -> None:
    html = render.index_html(model(subscribe=True), render.Links(export_depth=0)).decode()
    assert 'class="subscribe"' not in html


# -- not found ---------------------------------------------------------------------------------


async def test_browsers_get_an_html_404_page_and_the_api_keeps_json(site: Site) -> None:
    for path in ("/no-such-page", "/incidents/no-such-incident", "/maintenance/nope"):
        answer = await site.get(path, HTML)
        assert answer.status == 404, path
        assert answer.type.startswith("text/html"), path
        assert "Page not found" in answer.text
        assert "Acme" in answer.text
        assert_valid(answer.text)
    for path, headers in [
        ("/no-such-page", {"Accept": "*/*"}),
        ("/no-such-page", {"Accept": "application/json"}),
        ("/no-such-page", {"Accept": "text/html;q=0, application/json"}),
        ("/api/v1/nope", HTML),
        ("/api/v2/nope.json", HTML),
        ("/incidents/no-such-incident", {"Accept": "application/json"}),
    ]:
        async with site.http.get(site.url + path, headers=headers) as response:
            assert response.status == 404, path
            body = await response.json()
        assert body["error"]["code"] == "not_found", (path, headers)
        assert isinstance(body["error"]["message"], str)
    async with site.http.get(
        f"{site.url}/api/v1/incidents/{'0' * 26}", headers={**AUTH, **HTML}
    ) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


# -- favicon, title ----------------------------------------------------------------------------


async def test_the_page_has_a_favicon_served_by_uptally_itself(site: Site) -> None:
    index = (await site.get("/", HTML)).text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in index
    for path in ("/favicon.ico", "/static/favicon.svg"):
        async with site.http.get(site.url + path) as response:
            assert response.status == 200
            assert response.headers["content-type"] == "image/svg+xml"
            icon = ElementTree.fromstring(await response.read())
        assert icon.tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        ("Acme", "Acme status"),
        ("Demo status", "Demo status"),
        ("Status", "Status"),  # the default title
        ("Acme Status Page", "Acme Status Page"),
    ],
)
def test_the_title_says_status_once(title: str, shown: str) -> None:
    page = model(title)
    assert page.status_title == shown
    html = render.index_html(page, render.Links()).decode()
    assert f"<title>{title}</title>" in html
    assert f'<h1 class="sr-only">{shown}</h1>' in html
    assert f'title="{shown} (Atom)"' in html
    for feed in (feeds.atom(page), feeds.rss(page)):
        assert feedparser.parse(feed).feed.title == shown
    for text in (html, feeds.atom(page).decode(), feeds.rss(page).decode()):
        assert "status status" not in text.lower()


# -- what the monitors show --------------------------------------------------------------------


def component_status(index: str, name: str) -> str:
    found = re.search(
        rf'<div class="name">{name}</div>.*?<span class="status ([a-z_]+)">([^<]+)</span>',
        index,
        re.S,
    )
    assert found, name
    return f"{found[1]}: {found[2]}"


async def test_a_heartbeat_never_pinged_is_waiting_not_operational(site: Site) -> None:
    index = (await site.get("/")).text
    assert component_status(index, "Backups") == "waiting: Waiting for first ping"
    assert '<span class="state">Waiting for first ping</span>' in index
    # The fixture's open major incident on the API sets its status (not its monitors' "up").
    assert component_status(index, "Public API") == "partial_outage: Partial outage"
    async with site.http.get(site.url + "/ping/nightly-token-1") as response:
        assert response.status == 200
    index = await until(lambda: site.get("/"), lambda a: "Waiting for first ping" not in a.text)
    assert component_status(index.text, "Backups") == "operational: Operational"


async def test_response_times_wait_for_an_hour_then_have_labelled_axes(site: Site) -> None:
    index = (await site.get("/")).text
    assert "API health response time, last 24 hours: not enough data yet" in index
    assert "Nightly run response time" not in index  # a heartbeat has none
    site.clock.advance(3_660_000)  # into the next hour
    site.runtime.ingest.submit(result(site.clock, "api", 120.0))
    await site.runtime.ingest.drained()
    await site.runtime.ingest.flush()
    # The cache rebuilds on changes and once a minute: this hour's rollup changes nothing.
    page = await build_page(site.runtime, site.url)
    index = render.index_html(page, render.Links()).decode()
    assert "not enough data yet" not in index
    assert_valid(index)
    chart = index.split('<figure class="chart">', 1)[1].split("</figure>", 1)[0]
    assert re.findall(r"<span>([^<]+)</span>", chart) == [
        "200 ms",
        "100 ms",
        "0 ms",
        "03:00",  # 23 hours before this one, in the site's timezone (hourly averages)
        "15:00",
        "02:00",  # this hour
    ]
    assert 'aria-label="API health response time, last 24 hours: average 80 ms' in chart


def test_a_chart_of_one_hour_says_so_and_a_lone_point_is_still_drawn() -> None:
    hours = [f"{h:02d}:00" for h in range(24)]
    assert "not enough data yet" in svg.latency_chart([(h, None) for h in hours], "API")
    one = [(h, 30.0 if h == "23:00" else None) for h in hours]
    assert svg.latency_chart(one, "API") == '<p class="chart-empty">API: not enough data yet</p>'
    apart = [(h, 30.0 if h in ("03:00", "20:00") else None) for h in hours]
    chart = svg.latency_chart(apart, "API")
    assert chart.count("<polyline") == 2  # each as a dot
    assert "<span>50 ms</span><span>25 ms</span><span>0 ms</span>" in chart
    assert_valid(chart, fragment=True)
    small = svg.latency_chart([("00:00", 0.4), ("01:00", 1.1)], "API")
    assert "<span>2 ms</span><span>1 ms</span>" in small
    tiny = svg.latency_chart([("00:00", 0.4), ("01:00", 0.3)], "API")
    assert "<span>0.5 ms</span><span>0.25 ms</span>" in tiny
