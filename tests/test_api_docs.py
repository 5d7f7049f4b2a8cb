"""`/docs` works offline: Swagger UI comes from uptally itself, never from another host."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.console_support import CHROMIUM
from tests.console_support import CHROMIUM_ARGS as ARGS
from tests.console_support import browser_or_skip as _browser_or_skip
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.fixture
async def base(tmp_path: Path, clock: FakeClock) -> AsyncIterator[str]:
    runtime = Runtime(
        config_from("monitors: [{id: beat, kind: heartbeat, period: 1h}]\n"),
        Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db"),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, "docs-token")) as url:
        yield url
    await runtime.stop()


async def test_the_docs_page_loads_everything_from_uptally(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/docs") as response:
            assert response.status == 200
            html = await response.text()
            policy = response.headers["Content-Security-Policy"]
        assert not re.search(r"https?://", html), "the page names another host"
        assert not re.search(r"https?://", policy)
        parser = _References()
        parser.feed(html)
        wanted = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
        assert {Path(url).suffix for url in parser.urls} == set(wanted)
        for url in parser.urls:
            assert url.startswith("/"), url
            async with session.get(base + url) as response:
                assert response.status == 200, url
                assert wanted[Path(url).suffix] in response.headers["Content-Type"]
        assert "url: '/openapi.json'" in html
        async with session.get(base + "/openapi.json") as response:
            assert response.status == 200
            assert "/docs" not in (await response.json())["paths"]


@pytest.mark.slow
async def test_swagger_ui_shows_the_api_without_the_internet(base: str) -> None:
    _browser_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            elsewhere: list[str] = []
            page.on(
                "request",
                lambda request: (
                    None if request.url.startswith(base) else elsewhere.append(request.url)
                ),
            )
            await page.goto(base + "/docs")
            await page.wait_for_selector(".opblock", timeout=30_000)
            assert await page.locator(".opblock").count() > 10
            assert elsewhere == []
        finally:
            await browser.close()
