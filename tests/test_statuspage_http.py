"""The public status page over real HTTP: HTML, caching, badges, feeds and the static export."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree import ElementTree

import aiohttp
import feedparser
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.statuspage.build import build_page
from uptally.statuspage.cache import PageCache
from uptally.statuspage.site import StatusSite
from uptally.store.database import Database
from uptally.web.app import create_app

CONFIG = """
site: {title: Acme, timezone: Europe/Berlin, url: "https://status.acme.test"}
monitors:
  - {id: api, name: API health, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: web, name: Website, group: Platform, monitors: [web]}
"""
_ids = iter(range(10**9))


def result(clock: FakeClock, monitor: str, ok: bool) -> Result:
    return Result(
        f"r{next(_ids)}",
        monitor,
        "local",
        clock.now_ms(),
        ok,
        42.0,
        None if ok else "timeout",
        "" if ok else "timed out",
    )


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    for ok in (True, True):
        rt.ingest.submit(result(clock, "api", ok))
        rt.ingest.submit(result(clock, "web", ok))
        clock.advance(60_000)
    await rt.ingest.drained()
    await rt.ingest.flush()  # hourly rollups (latency) are written every minute
    yield rt
    await rt.stop()


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    async with serve_app(create_app(runtime)) as url:
        yield url


async def test_the_page_shows_groups_components_statuses_and_90_day_bars(base: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(base + "/") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        html = await response.text()
    assert "All Systems Operational" in html
    assert html.count('class="day ') == 2 * 90
    for name in ("Public API", "Website", ">Platform<"):
        assert name in html
    assert '<meta http-equiv="refresh" content="60">' in html
    assert re.search(r"<title>\d{4}-\d{2}-\d{2}: no downtime</title>", html)
    assert 'lang="en"' in html
    assert 'href="#main"' in html


async def test_pages_carry_etags_and_answer_304_until_something_changes(
    runtime: Runtime, base: str, clock: FakeClock
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/api/v2/status.json") as response:
            etag = response.headers["ETag"]
            assert response.headers["Cache-Control"].startswith("public, max-age=30")
            assert "Last-Modified" in response.headers
            assert (await response.json())["status"]["indicator"] == "none"
        async with http.get(
            base + "/api/v2/status.json", headers={"If-None-Match": etag}
        ) as response:
            assert response.status == 304
        runtime.ingest.submit(result(clock, "api", False))  # the API goes down
        await runtime.ingest.drained()
        # Visitors keep getting the cached bytes while the page is rebuilt in the background.
        async with asyncio.timeout(10):
            while True:
                async with http.get(
                    base + "/api/v2/status.json", headers={"If-None-Match": etag}
                ) as response:
                    if response.status == 200:
                        body = await response.json()
                        break
                    assert response.status == 304
                await asyncio.sleep(0.02)
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}


async def test_visitors_never_wait_for_a_rebuild() -> None:
    versions = iter(range(1, 100))
    release = asyncio.Event()
    release.set()

    async def build() -> Any:
        await release.wait()
        return SimpleNamespace(generated_at=0, version=next(versions))

    async def render(model: Any) -> tuple[bytes, str]:
        return f"version {model.version}".encode(), "text/plain"

    cache = PageCache(build)
    first = await cache.get("index", render, "public")
    assert first is not None
    assert first.body == b"version 1"
    release.clear()
    cache.touch()
    assert cache.peek("index") is first  # stale, served at once; a rebuild has started
    await asyncio.sleep(0.01)
    assert cache.peek("index") is first  # still building
    assert cache.builds == 1
    release.set()
    async with asyncio.timeout(5):
        while (current := cache.peek("index")) is first:
            await asyncio.sleep(0.001)
    assert current is not None
    assert current.body == b"version 2"  # re-rendered by the rebuild, swapped in at once
    assert cache.builds == 2
    assert cache.peek("badge") is None  # never rendered: the full path renders it


async def test_a_rush_of_visitors_is_served_from_one_build(runtime: Runtime) -> None:
    app = create_app(runtime)
    site: StatusSite = app.api.state.status_site
    async with serve_app(app) as base, aiohttp.ClientSession() as http:
        for _ in range(30):
            async with http.get(base + "/") as response:
                assert response.status == 200
    assert site.cache.builds == 1


async def test_badges_are_svg_for_components_and_monitors(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path, text in [
            ("/badge/api/status.svg", "status: operational"),
            ("/badge/api/uptime.svg?period=24h", "uptime 24h: 100%"),
            ("/badge/web/latency.svg", "response time: 42 ms"),
        ]:
            async with http.get(base + path) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/svg+xml"
                assert "public" in response.headers["Cache-Control"]
                svg = await response.text()
            assert ElementTree.fromstring(svg).get("aria-label") == text
        async with http.get(base + "/badge/nope/status.svg") as response:
            assert response.status == 404
        async with http.get(base + "/badge/api/uptime.svg?period=5y") as response:
            assert response.status == 422


async def test_feeds_are_valid_atom_and_rss(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path, version in [("/feed.atom", "atom10"), ("/feed.rss", "rss20")]:
            async with http.get(base + path) as response:
                body = await response.read()
            feed = feedparser.parse(body)
            assert not feed.bozo, feed.bozo_exception
            assert feed.version == version
            assert feed.feed.title == "Acme status"


async def test_history_pages_and_unknown_incidents(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/history") as response:
            assert response.status == 200
            assert "Incident and maintenance history" in await response.text()
        async with http.get(base + "/incidents/nope") as response:
            assert response.status == 404


async def test_the_static_export_has_every_page_with_relative_links(
    runtime: Runtime, tmp_path: Path
) -> None:
    site = StatusSite(runtime)
    written = await site.export(tmp_path / "site")
    files = {str(p.relative_to(tmp_path / "site")) for p in written}
    assert {
        "index.html",
        "history.html",
        "feed.atom",
        "feed.rss",
        "api/v2/summary.json",
        "api/v2/scheduled-maintenances/upcoming.json",
        "badge/api/status.svg",
        "static/local-times.js",
        "static/favicon.svg",
    } <= files
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="history.html"' in index
    assert 'src="static/local-times.js"' in index
    assert '<link rel="icon" href="static/favicon.svg"' in index
    assert 'href="/' not in index  # nothing absolute: it works under any path


@pytest.mark.slow
async def test_serve_keeps_a_static_copy_current(tmp_path: Path) -> None:
    from tests.procs import Hub

    config = tmp_path / "c.yaml"
    config.write_text("""
site: {title: Exported}
probe: {enabled: false}
monitors: [{id: job, kind: heartbeat, period: 1h, token: export-job-token}]
components: [{id: jobs, name: Jobs, monitors: [job]}]
""")
    out = tmp_path / "public"
    hub = Hub(config, tmp_path / "data", {}, ("--export-dir", str(out)))
    await hub.start()
    try:
        index = out / "index.html"
        await _until(lambda: index.exists() and "Jobs" in index.read_text())  # written last
        before = (out / "api/v2/components.json").read_text()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{hub.url}/ping/export-job-token/fail") as response,
        ):
            assert response.status == 200
        await _until(lambda: (out / "api/v2/components.json").read_text() != before)
        assert '"status":"major_outage"' in (out / "api/v2/components.json").read_text()
    finally:
        assert await hub.stop() == 0


async def _until(condition: object, timeout: float = 20) -> None:
    import asyncio

    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("public_policy", [False, True])
async def test_uptime_follows_the_public_sla_policy_when_the_site_asks(
    db_url: str, clock: FakeClock, public_policy: bool
) -> None:
    # An outage of 10 minutes inside an SLA exclusion: verified downtime on the page, but the
    # public policy does not count it.
    text = CONFIG + (
        """
sla:
  policies: [{id: scale, target: 99.9}]
  exclusions:
    - {start: 2026-01-01T01:00, end: 2026-01-01T03:00, reason: provider outage, component: api}
"""
        + ("  public_policy: scale\n" if public_policy else "")
    )
    rt = Runtime(
        config_from(text), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    try:
        for ok in [True] + [False] * 10 + [True] * 5:
            rt.ingest.submit(result(clock, "api", ok))
            rt.ingest.submit(result(clock, "web", True))
            clock.advance(60_000)
        await rt.ingest.drained()
        await rt.ingest.flush()
        model = await build_page(rt, "https://status.acme.test")
    finally:
        await rt.stop()
    [platform] = model.groups
    api, web = platform.components
    assert api.cells[-1].major_ms == 10 * 60_000  # the bar shows what happened either way
    assert web.uptime["24h"] == 100.0
    if public_policy:
        assert api.uptime["24h"] == 100.0
    else:
        assert api.uptime["24h"] == pytest.approx(100 * (1 - 10 / 16))
