"""Web safety: security headers everywhere, request size limits, the SSRF guard, safe Markdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.markdown import render
from uptally.metrics import Metrics
from uptally.netguard import UnsafeTarget, check_host, check_url
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "safety-admin-token"
CONFIG = """
monitors:
  - {id: beat, kind: heartbeat, period: 1h, token: beat-token-1234}
security: {max_body: 2KiB}
"""


@pytest.fixture
async def base(tmp_path: object, clock: FakeClock) -> AsyncIterator[str]:
    runtime = Runtime(
        config_from(CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db"),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url:
        yield url
    await runtime.stop()


async def test_every_response_carries_the_security_headers(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for path in (
            "/",
            "/",  # again: now from the cache's fast path
            "/api/v2/summary.json",
            "/api/v2/summary.json",
            "/api/v1/monitors",
            "/nowhere",
            "/ping/beat-token-1234",
        ):
            async with session.get(base + path) as response:
                headers = response.headers
                assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
                assert "script-src 'self'" in headers["Content-Security-Policy"]
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Referrer-Policy"] == "no-referrer"
                assert headers["X-Frame-Options"] == "DENY"
        async with session.get(base + "/docs") as response:
            assert (
                "script-src 'self' 'unsafe-inline';" in response.headers["Content-Security-Policy"]
            )


async def test_an_oversized_api_body_is_refused_with_413_json(base: str) -> None:
    big = {
        "component": "x",
        "start": "2025-01-01T00:00:00Z",
        "end": "2025-01-01T01:00:00Z",
        "reason": "x" * 4000,
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/api/v1/outages", json=big, headers=headers) as response:
            assert response.status == 413
            body = await response.json()
        assert body["error"]["code"] == "too_large"
        assert response.headers["X-Content-Type-Options"] == "nosniff"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b" " * 1000

        json_headers = {**headers, "Content-Type": "application/json"}
        async with session.post(
            base + "/api/v1/outages", data=chunks(), headers=json_headers
        ) as response:
            assert response.status == 413

        async def small() -> AsyncIterator[bytes]:
            yield b'{"component": "nope", "start": "2025-01-01T00:00:00Z",'
            yield b' "end": "2025-01-01T01:00:00Z"}'

        async with session.post(
            base + "/api/v1/outages", data=small(), headers=json_headers
        ) as response:
            assert response.status == 404  # read in full and handled: no such component
            assert (await response.json())["error"]["message"] == "no component 'nope'"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "10.1.2.3",
        "192.168.0.10",
        "172.16.5.5",
        "169.254.169.254",
        "::1",
        "[::1]",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "fd00::1",
        "64:ff9b::a00:1",
    ],
)
async def test_the_ssrf_guard_refuses_private_and_local_targets(host: str) -> None:
    with pytest.raises(UnsafeTarget):
        await check_host(host)


async def test_the_ssrf_guard_lets_public_addresses_through() -> None:
    assert await check_host("93.184.216.34") == ["93.184.216.34"]
    assert await check_host("2606:4700::1111") == ["2606:4700::1111"]
    assert await check_url("https://1.1.1.1:8443/health") == ["1.1.1.1"]
    for url in ("http://127.0.0.1/", "ftp://1.1.1.1/", "https:///nohost", "http://[::1]:80/"):
        with pytest.raises(UnsafeTarget):
            await check_url(url)
    with pytest.raises(UnsafeTarget, match="cannot resolve"):
        await check_host("no-such-host.invalid")


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[data](data:text/html;base64,PHNjcmlwdD4=)",
        '<a href="https://x.example" onclick="steal()">x</a>',
        "![pixel](https://tracker.example/p.png)",
        "<iframe src=https://evil.example></iframe>",
        '[x](https://ok.example "t") <style>body{}</style>',
    ],
)
def test_markdown_is_rendered_without_active_content(source: str) -> None:
    for tag, attrs in elements(render(source)):
        assert tag not in {"script", "img", "iframe", "style", "object"}
        assert not any(name.startswith("on") for name in attrs)
        href = attrs.get("href")
        assert href is None or href.startswith(("https://", "http://", "mailto:"))


def test_markdown_keeps_ordinary_formatting_and_safe_links() -> None:
    html = render("**Resolved.** See [the report](https://status.example/r/1).\n\n- one\n- `two`")
    assert "<strong>Resolved.</strong>" in html
    assert 'href="https://status.example/r/1"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "<li><code>two</code></li>" in html
