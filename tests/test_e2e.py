"""End to end: `uptally serve` as a real process watching a real HTTP service go down and up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.procs import serving

pytestmark = pytest.mark.slow

TOKEN = "e2e-admin-token-k7Qz"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Target:
    """A real HTTP service on 127.0.0.1 that can be made to fail."""

    def __init__(self) -> None:
        self.healthy = True
        self.seen_agents: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_agents.add(request.headers.get("User-Agent", ""))
        if self.healthy:
            return web.json_response({"status": "UP"})
        return web.json_response({"status": "DOWN"}, status=503)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    service = Target()
    app = web.Application()
    app.router.add_get("/health", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield service, f"http://127.0.0.1:{port}/health"
    await runner.cleanup()


def write_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "uptally.yaml"
    config.write_text(f"""
site: {{title: E2E}}
monitors:
  - id: api
    kind: http
    url: {url}
    interval: 1s
    retry_interval: 300ms
    timeout: 2s
    confirm: 2
    expect: ['status == 200', 'json.status == "UP"']
components:
  - {{id: api, name: API, monitors: [api]}}
""")
    return config


async def poll(
    fetch: Callable[[], Any], predicate: Callable[[Any], bool], timeout: float = 20
) -> Any:
    """Poll until predicate(value) holds, with a deadline (no fixed sleeps)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if predicate(value):
                return value
            await asyncio.sleep(0.1)


async def test_serve_detects_an_outage_records_it_and_keeps_it_across_a_restart(
    tmp_path: Path,
    target: tuple[Target, str],
    db_url: str,
) -> None:
    service, url = target
    config = write_config(tmp_path, url)
    data = tmp_path / "data"
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url  # otherwise SQLite in the data directory
    async with aiohttp.ClientSession() as http:

        async def monitor(base: str) -> dict[str, Any]:
            async with http.get(f"{base}/api/v1/monitors/api", headers=AUTH) as response:
                return await response.json()  # type: ignore[no-any-return]

        async def outages(base: str) -> list[dict[str, Any]]:
            async with http.get(f"{base}/api/v1/outages?monitor=api", headers=AUTH) as response:
                return (await response.json())["outages"]  # type: ignore[no-any-return]

        async with serving(config, data, env) as (base, _):
            await poll(lambda: monitor(base), lambda m: m["state"] == "up")
            service.healthy = False
            down = await poll(lambda: monitor(base), lambda m: m["state"] == "down")
            assert down["locations"]["local"]["last_result"]["error"] == "status"
            # the live state is in memory; the outage row commits with the same batch
            [outage] = await poll(lambda: outages(base), lambda rows: len(rows) == 1)
            assert outage["end"] is None
            first_failure = outage["start"]
            async with http.get(f"{base}/api/v2/status.json") as response:
                assert (await response.json())["status"]["indicator"] == "critical"
        assert any(
            agent.startswith("uptally/") and "(+location=local)" in agent
            for agent in service.seen_agents
        )

        # restarted while the target is still down: the same outage stays open
        async with serving(config, data, env) as (base, _):
            assert (await monitor(base))["state"] == "down"
            service.healthy = True
            await poll(lambda: monitor(base), lambda m: m["state"] == "up")
            [closed] = await poll(
                lambda: outages(base), lambda rows: len(rows) == 1 and rows[0]["end"] is not None
            )
            assert closed["id"] == outage["id"]
            assert closed["start"] == first_failure
            assert closed["end"] is not None
            async with http.get(f"{base}/metrics") as response:
                assert "uptally_checks_total" in await response.text()
