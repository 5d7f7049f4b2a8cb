"""CORS: web pages of any origin (status widgets) read a public page's v2 documents, feeds and
badges, from the fast path and the routed one; never a private page or the admin API. Over
HTTP, and in Chromium from a page of another origin."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from tests.conftest import serve_app
from tests.test_statuspage_pages import BOOT, CONFIG, bearer
from uptally.clock import FakeClock
from uptally.config import load_config
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

ACAO = "Access-Control-Allow-Origin"
SHARED = [
    "/api/v2/summary.json",
    "/api/v2/status.json",
    "/api/v2/components.json",
    "/api/v2/incidents/unresolved.json",
    "/api/v2/scheduled-maintenances/upcoming.json",
    "/feed.atom",
    "/feed.rss",
    "/badge/api/status.svg",
    "/badge/api/uptime.svg?period=7d",
]


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession
    reader: str  # a token that reads the private page

    async def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, CIMultiDict[str]]:
        async with self.http.get(self.url + path, headers=headers, allow_redirects=False) as r:
            await r.read()
            return r.status, r.headers.copy()

    async def options(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, CIMultiDict[str]]:
        asked = {
            "Origin": "http://widget.example",
            "Access-Control-Request-Method": "GET",
            **(headers or {}),
        }
        async with self.http.options(self.url + path, headers=asked) as r:
            await r.read()
            return r.status, r.headers.copy()


@pytest.fixture
async def served(db_url: str, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Served]:
    path = tmp_path / "uptally.yaml"
    path.write_text(CONFIG)
    runtime = Runtime(
        load_config(path), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, BOOT)) as url, aiohttp.ClientSession() as http:
            body = {"name": "cors-reader", "scopes": ["read"]}
            async with http.post(url + "/api/v1/tokens", json=body, headers=bearer(BOOT)) as r:
                assert r.status == 201, await r.text()
                reader = (await r.json())["token"]
            yield Served(url, http, reader)
    finally:
        await runtime.stop()


async def test_public_documents_may_be_read_from_any_origin_on_both_paths(served: Served) -> None:
    for page in ("", "/customers"):
        for path in SHARED:
            # The first answer is routed (rendered then), the second comes from the fast path.
            for _ in range(2):
                status, headers = await served.get(page + path, {"Origin": "http://w.example"})
                assert status == 200, page + path
                assert headers[ACAO] == "*", page + path
            etag = headers["ETag"]
            status, headers = await served.get(page + path, {"If-None-Match": etag})
            assert (status, headers[ACAO]) == (304, "*"), page + path


async def test_the_html_pages_are_not_shared(served: Served) -> None:
    for path in ("/", "/", "/history", "/customers/"):
        status, headers = await served.get(path)
        assert status == 200
        assert ACAO not in headers, path


async def test_a_preflight_for_get_is_allowed_on_shared_documents(served: Served) -> None:
    for path in ("/api/v2/summary.json", "/customers/feed.rss", "/badge/web/status.svg"):
        status, headers = await served.options(
            path, {"Access-Control-Request-Headers": "x-widget, cache-control"}
        )
        assert status == 204, path
        assert headers[ACAO] == "*"
        assert "GET" in headers["Access-Control-Allow-Methods"]
        assert headers["Access-Control-Allow-Headers"] == "x-widget, cache-control"
        assert int(headers["Access-Control-Max-Age"]) > 0


async def test_private_pages_and_the_admin_api_are_never_shared(served: Served) -> None:
    token = bearer(served.reader)
    for shared in [*SHARED, "/"]:
        path = shared.replace("/badge/api/", "/badge/db/")  # the private page shows db only
        for headers in (None, token):
            status, answer = await served.get("/internal" + path, headers)
            assert status == (200 if headers else 401), path
            assert ACAO not in answer, path
        status, answer = await served.options("/internal" + path)
        assert status >= 400
        assert ACAO not in answer, path
    for path in ("/api/v1/monitors", "/api/v1/incidents", "/api/v1/tokens"):
        status, answer = await served.get(path, bearer(BOOT))
        assert status == 200, path
        assert ACAO not in answer, path
        status, answer = await served.options(
            path, {"Access-Control-Request-Headers": "authorization"}
        )
        assert status >= 400
        assert ACAO not in answer, path


WIDGET = """<!doctype html><meta charset="utf-8"><title>widget</title>
<p id="public"></p><p id="preflighted"></p><p id="private"></p><p id="admin"></p>
<script>
const U = "%(uptally)s";
async function read(url, init) {
  try {
    const answer = await fetch(url, init);
    const json = await answer.json();
    return "ok " + json.page.name + " " + json.status.indicator;
  } catch (error) {
    return "blocked " + error.name;
  }
}
(async () => {
  const show = async (id, url, init) => {
    document.getElementById(id).textContent = await read(url, init);
  };
  await show("public", U + "/api/v2/summary.json");
  await show("preflighted", U + "/customers/api/v2/summary.json", {headers: {"X-Widget": "1"}});
  await show("private", U + "/internal/api/v2/summary.json",
             {headers: {Authorization: "Bearer %(reader)s"}});
  await show("admin", U + "/api/v1/monitors", {headers: {Authorization: "Bearer %(boot)s"}});
  document.body.dataset.done = "yes";
})();
</script>"""


@contextlib.asynccontextmanager
async def other_origin(html: str) -> AsyncIterator[str]:
    """A tiny web site of its own on another port of 127.0.0.1 (another origin)."""

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_a_widget_on_another_origin_reads_the_summary_in_chromium(
    served: Served,
    browser: Any,
) -> None:
    html = WIDGET % {"uptally": served.url, "reader": served.reader, "boot": BOOT}
    async with other_origin(html) as widget:
        assert widget.split(":")[2] != served.url.split(":")[2]  # another port: another origin
        page = await browser.new_page()
        try:
            await page.goto(widget)
            await page.wait_for_selector("body[data-done=yes]", timeout=20_000)
            shown = {
                name: await page.text_content(f"#{name}")
                for name in ("public", "preflighted", "private", "admin")
            }
        finally:
            await page.close()
    assert shown == {
        "public": "ok Acme none",
        "preflighted": "ok Acme for customers none",
        "private": "blocked TypeError",  # the browser refuses to hand it over
        "admin": "blocked TypeError",
    }
