"""Console test support: a served runtime with one user per role, signing in over HTTP or in
Debian's Chromium, and an axe-core accessibility check in the same browser.

Use: `from tests.console_support import *` style imports of what a test needs; the fixtures
`console` (a running console: url, runtime, users) and `browser` (Chromium) are here too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.accounts import passwords, users
from uptally.accounts.roles import Role
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import accounts as store
from uptally.store.database import Database
from uptally.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct-horse-battery-staple-7"
ADMIN_TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
CONFIG = """
site: {title: Acme Cloud, timezone: Europe/Berlin}
security: {allow_internal: ["127.0.0.0/8"]}
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/", confirm: 1, tags: [prod]}
  - {id: db, name: Database, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}
  - {id: nightly, kind: heartbeat, period: 1d, grace: 1h}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: db, name: Database, monitors: [db]}
"""


def email_of(role: Role) -> str:
    return f"{role.value}@example.com"


@dataclass
class Console:
    url: str
    runtime: Runtime

    def login(self) -> str:
        return self.url + "/console/login"


@functools.cache
def _password_hash() -> str:
    """PASSWORD's argon2id hash, made once per test session (each costs ~0.1-0.8 s of CPU)."""
    return passwords.hash_password(PASSWORD)


async def make_users(runtime: Runtime) -> None:
    """One user per role, `<role>@example.com` with PASSWORD."""
    now = runtime.clock.now_ms()
    hashed = _password_hash()
    async with runtime.db.begin() as conn:
        for role in Role:
            user = await users.create(
                conn, email_of(role), role, None, "test", now, runtime.config.console
            )
            await store.update_user(conn, user.id, password_hash=hashed, password_changed_at=now)


@contextlib.asynccontextmanager
async def running_console(
    tmp_path: Path, text: str = CONFIG, probe: bool = False
) -> AsyncIterator[Console]:
    """A console served on 127.0.0.1 with the config `text` (SQLite) and one user per role."""
    runtime = Runtime(
        config_from(text),
        Database(f"sqlite+aiosqlite:///{tmp_path}/u.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=probe,
    )
    await runtime.start()
    try:
        await make_users(runtime)
        async with serve_app(create_app(runtime, ADMIN_TOKEN)) as url:
            yield Console(url, runtime)
    finally:
        await runtime.stop()


@pytest.fixture
async def console(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Console]:
    """A running console (SQLite, no probe unless the test's module sets CONSOLE_PROBE)."""
    text = getattr(request.module, "CONSOLE_CONFIG", CONFIG)
    async with running_console(
        tmp_path, text, getattr(request.module, "CONSOLE_PROBE", False)
    ) as served:
        yield served


_CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_in(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF field on the page"
    return match[1]


async def signed_in_session(
    url: str, email: str, password: str = PASSWORD
) -> aiohttp.ClientSession:
    """An HTTP client with a console session (its cookie jar holds the session cookie)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(
        url + "/console/login",
        data={"email": email, "password": password, "next": "/console/"},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()
    return http


async def page_csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return csrf_in(await response.text())


def browser_or_skip() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("UPTALLY_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is required (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    browser_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def browser_sign_in(browser: Any, url: str, role: Role, **context: Any) -> Any:
    """A new browser context signed in as the role's user; returns the page (at /console/)."""
    ctx = await browser.new_context(**context)
    page = await ctx.new_page()
    await page.goto(url + "/console/login")
    await page.fill("#email", email_of(role))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(url + "/console/")
    return page


async def assert_accessible(page: Any) -> None:
    """axe-core (shipped in the axe-playwright-python wheel) finds no serious or critical
    violation on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: " + "; ".join(bad)
