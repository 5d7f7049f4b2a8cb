"""The status page in a real headless Chromium: light and dark, with and without JS, desktop
and phone; components, statuses, the 90 day cells, incidents, contrast and keyboard use; the
subscribe form and the 404 page alike."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

pytestmark = pytest.mark.slow

CONFIG = """
site: {title: Acme Cloud, timezone: Europe/Berlin}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: db, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}
  - {id: nightly, kind: heartbeat, period: 1d, grace: 1h}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: web, name: Website, group: Platform, monitors: [web]}
  - {id: db, name: Database, monitors: [db]}
  - {id: backup, name: Backups, monitors: [nightly]}
"""


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[str]:
    runtime = Runtime(
        config_from(CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/u.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    now = runtime.clock.now_ms()
    for n, (monitor, ok) in enumerate([("api", True), ("web", True), ("db", True), ("db", False)]):
        runtime.ingest.submit(
            Result(
                f"b{n}",
                monitor,
                "local",
                now + n,
                ok,
                25.0,
                None if ok else "timeout",
                "" if ok else "timed out",
            )
        )
    await runtime.ingest.drained()
    async with serve_app(create_app(runtime, "browser-admin")) as url:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            incident = {
                "title": "Database unreachable",
                "status": "identified",
                "impact": "major",
                "components": ["db"],
                "message": "The primary failed over; we are on it.",
            }
            headers = {"Authorization": "Bearer browser-admin"}
            async with http.post(url + "/api/v1/incidents", json=incident, headers=headers) as r:
                assert r.status == 201, await r.text()
        yield url
    await runtime.stop()


def _save(folder: Path, name: str, image: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(image)


CONTRAST = """
(picked) => {
  const rgb = (c) => c.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const channel = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    while (el) {
      const c = getComputedStyle(el).backgroundColor;
      if (c && !c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return c;
      el = el.parentElement;
    }
    return "rgb(255, 255, 255)";
  };
  return [...document.querySelectorAll(picked)].map((el) => {
    const a = lum(rgb(getComputedStyle(el).color));
    const b = lum(rgb(background(el)));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    return { text: el.textContent.trim().slice(0, 30), ratio };
  });
}
"""

PAGE_TEXT = (
    ".status, .banner, .name, .legend, .meta, nav a, .state, .chart-empty, .y-axis, .x-axis, .prose"
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
@pytest.mark.parametrize("javascript", [True, False])
async def test_the_page_reads_well_in_every_mode(
    site: str, browser: Any, tmp_path: Path, scheme: str, width: int, height: int, javascript: bool
) -> None:
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=scheme,
        java_script_enabled=javascript,
        timezone_id="America/New_York",
        locale="en-US",
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = await page.goto(site + "/")
    assert response is not None
    assert response.status == 200
    assert await page.locator(".banner").inner_text() == "Partial System Outage"
    notice = page.locator("article.notice").first
    assert "Database unreachable" in await notice.inner_text()
    assert "The primary failed over" in await notice.inner_text()
    names = await page.locator(".component .name").all_inner_texts()
    assert names == ["Public API", "Website", "Database", "Backups"]
    statuses = await page.locator(".component .status").all_inner_texts()
    assert statuses == ["Operational", "Operational", "Major outage", "Waiting for first ping"]
    assert await page.locator("svg.bar rect.day").count() == 4 * 90
    assert await page.locator("svg.bar rect.day.major").count() == 1
    labels = await page.locator("svg[role=img]").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert all(labels)
    assert "90 days" in labels[0]
    zone = await page.locator("[data-zone]").inner_text()
    assert zone == ("America/New_York (your timezone)" if javascript else "Europe/Berlin")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(v) for v in background.removeprefix("rgb(").rstrip(")").split(",")[:3]]
    assert (sum(channels) < 150) == (scheme == "dark")
    await page.locator("details").evaluate_all("els => els.forEach(e => e.open = true)")
    for item in await page.evaluate(CONTRAST, PAGE_TEXT):
        assert item["ratio"] >= 4.5, item
    if width < 500:
        overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, "the page scrolls sideways on a phone"
    folder = Path(os.environ.get("UPTALLY_SCREENSHOTS", str(tmp_path)))
    name = f"status-{scheme}-{width}-{'js' if javascript else 'nojs'}.png"
    image = await page.screenshot(full_page=True)
    assert len(image) > 10_000
    _save(folder, name, image)
    assert errors == []
    await context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_subscribe_form_and_the_404_page_read_well(
    site: str, browser: Any, tmp_path: Path, scheme: str
) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme)
    page = await context.new_page()
    folder = Path(os.environ.get("UPTALLY_SCREENSHOTS", str(tmp_path)))
    for path, status in [("/subscribe", 200), ("/no-such-page", 404)]:
        response = await page.goto(site + path)
        assert response is not None
        assert response.status == status
        assert await page.locator("h1").inner_text() in ("Get Acme Cloud updates", "Page not found")
        for item in await page.evaluate(CONTRAST, "h1, h2, label, legend, p, button, a"):
            assert item["ratio"] >= 4.5, (path, item)
        overflow = await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
        assert not overflow, f"{path} scrolls sideways on a phone"
        name = f"{path.strip('/')}-{scheme}.png"
        _save(folder, name, await page.screenshot(full_page=True))
    await context.close()


async def test_the_page_can_be_used_with_the_keyboard(site: str, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(site + "/")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    summary = page.locator("details summary").first
    await summary.focus()
    await page.keyboard.press("Enter")
    assert await page.locator("details").first.get_attribute("open") is not None
    await page.close()


PRIVATE_CONFIG = """
site: {title: Acme Cloud, timezone: Europe/Berlin}
monitors: [{id: db, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}]
components: [{id: db, name: Database, monitors: [db]}]
status_pages:
  - {id: ops, path: /ops, title: Acme operations, components: [db], private: true}
"""


@pytest.fixture
async def private_page(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The URL of a private page and a token for it."""
    runtime = Runtime(
        config_from(PRIVATE_CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/u.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, "browser-admin")) as url:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            body = {"name": "ops screen", "scopes": ["page:ops"]}
            headers = {"Authorization": "Bearer browser-admin"}
            async with http.post(url + "/api/v1/tokens", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()
                token = (await r.json())["token"]
        yield url + "/ops", token
    await runtime.stop()


async def test_a_private_page_opens_in_a_browser_with_basic_credentials(
    private_page: tuple[str, str], browser: Any
) -> None:
    url, token = private_page
    # The browser sends the credentials only when challenged (Playwright's default), as a
    # person's browser does after asking for them.
    signed_in = await browser.new_context(
        java_script_enabled=False, http_credentials={"username": "ops", "password": token}
    )
    page = await signed_in.new_page()
    response = await page.goto(url)  # /ops: 401 with a Basic challenge, 308 to /ops/, 200
    assert response is not None
    assert response.status == 200
    assert page.url == url + "/"
    assert await page.title() == "Acme operations"
    assert await page.locator(".component .name").all_inner_texts() == ["Database"]
    await signed_in.close()
    in_url = await browser.new_context(java_script_enabled=False)
    page = await in_url.new_page()
    response = await page.goto(url.replace("http://", f"http://screen:{token}@") + "/")
    assert response is not None
    assert response.status == 200
    assert await page.title() == "Acme operations"
    await in_url.close()
