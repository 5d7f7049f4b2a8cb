"""Real processes: a hub and two probe agents on 127.0.0.1, a target, a hub crash, a canary cut."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.procs import Hub, start_agent

ADMIN_TOKEN = "fleet-admin-token-k7Qz"

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EU_TOKEN = "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb"  # probe tokens need 128 bits (ids.weak_token)
US_TOKEN = "us-probe-6Hd0Pj5Tc3Qw9Ue2Xa7Mk4"


class Target:
    """An HTTP service that can fail for some locations (it reads them from the User-Agent)."""

    def __init__(self) -> None:
        self.failing_for: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        location = request.headers.get("User-Agent", "").split("+location=")[-1].rstrip(")")
        if "*" in self.failing_for or location in self.failing_for:
            return web.Response(status=503, text="down")
        return web.Response(text="ok")


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, int]]:
    service = Target()
    app = web.Application()
    app.router.add_get("/", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield service, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


class Canary:
    """A TCP port that can be closed and opened again."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0

    async def open(self) -> None:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


async def poll(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float = 30
) -> Any:
    """Poll until `ok(value)`, with a deadline (no fixed sleeps as synchronisation)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if ok(value):
                return value
            await asyncio.sleep(0.1)


async def test_consensus_a_hub_crash_replayed_once_and_a_canary_cut(
    tmp_path: Path, target: tuple[Target, int]
) -> None:
    service, port = target
    canary = Canary()
    await canary.open()
    config = tmp_path / "hub.yaml"
    config.write_text(f"""
site: {{title: Fleet}}
locations:
  - {{name: eu, token_env: E2E_EU, canaries: ["tcp://127.0.0.1:{canary.port}"]}}
  - {{name: us, token_env: E2E_US, canaries: ["tcp://127.0.0.1:{canary.port}"]}}
monitors:
  - id: api
    kind: http
    url: http://127.0.0.1:{port}/
    interval: 1s
    retry_interval: 300ms
    timeout: 1s
    confirm: 2
    locations: [eu, us]
""")
    hub = Hub(
        config,
        tmp_path / "data",
        {"E2E_EU": EU_TOKEN, "E2E_US": US_TOKEN, "UPTALLY_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    await hub.start()
    agents = [
        await start_agent(hub.url, "eu", EU_TOKEN, tmp_path / "q-eu"),
        await start_agent(hub.url, "us", US_TOKEN, tmp_path / "q-us"),
    ]
    try:
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> Any:
                try:
                    async with http.get(hub.url + path, headers=ADMIN) as response:
                        return await response.json()
                except aiohttp.ClientError:
                    return None

            def state(monitor: Any) -> str | None:
                return monitor["state"] if monitor else None

            def probe_states(body: Any) -> dict[str, str]:
                return {p["name"]: p["state"] for p in body["probes"]} if body else {}

            # 1. A failure seen from one location only: degraded, recorded, never verified.
            await poll(lambda: get("/api/v1/monitors/api"), lambda m: state(m) == "up")
            service.failing_for = {"eu"}
            monitor = await poll(
                lambda: get("/api/v1/monitors/api"), lambda m: state(m) == "degraded"
            )
            assert (monitor["locations"]["eu"]["state"], monitor["locations"]["us"]["state"]) == (
                "down",
                "up",
            )
            service.failing_for = set()
            await poll(lambda: get("/api/v1/monitors/api"), lambda m: state(m) == "up")
            [unverified] = (await get("/api/v1/outages?monitor=api"))["outages"]
            assert (unverified["verified"], set(unverified["locations"])) == (False, {"eu"})

            # 2. The hub is killed; the target goes down and recovers while it is away. The
            #    agents keep checking, queue, and replay when it is back at the same address.
            await hub.kill()
            service.failing_for = {"*"}
            await asyncio.sleep(3.0)  # the outage happens while nobody can tell the hub
            service.failing_for = set()
            await asyncio.sleep(1.0)
            await hub.start()
            restarted_at = (await get("/api/v1/probes"))["probes"][0]["since"]

            def replayed(body: Any) -> bool:
                agents = [p for p in body["probes"] if p["name"] != "local"] if body else []
                return bool(agents) and all(
                    p["last_contact"] > restarted_at and p["queue_depth"] == 0 for p in agents
                )

            await poll(lambda: get("/api/v1/probes"), replayed)
            # An agent reports an empty queue once its batch is accepted, which can be a
            # moment before the writer has evaluated it: wait for both locations' replays.
            body = await poll(
                lambda: get("/api/v1/outages?monitor=api&verified=true"),
                lambda b: (
                    bool(b)
                    and any(o["end"] and set(o["locations"]) == {"eu", "us"} for o in b["outages"])
                ),
            )
            [verified] = body["outages"]
            assert set(verified["locations"]) == {"eu", "us"}
            assert 2.0 <= verified["duration_s"] <= 4.5  # it ended while the hub was down

            # 3. Both agents lose their canaries: their failures stop counting.
            await canary.close()
            await poll(
                lambda: get("/api/v1/probes"),
                lambda b: (
                    probe_states(b).get("eu") == "degraded"
                    and probe_states(b).get("us") == "degraded"
                ),
            )
            service.failing_for = {"*"}
            await asyncio.sleep(2.0)
            assert state(await get("/api/v1/monitors/api")) != "down"
            service.failing_for = set()
            await canary.open()
            await poll(lambda: get("/api/v1/probes"), lambda b: probe_states(b).get("eu") == "up")
    finally:
        await canary.close()  # opened again at the end of the test
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
            await agent.wait()
        assert await hub.stop() == 0, "".join(hub.output)

    with sqlite3.connect(tmp_path / "data" / "uptally.db") as db:
        total, distinct = db.execute("SELECT count(*), count(DISTINCT id) FROM results").fetchone()
        rolled = db.execute("SELECT sum(count) FROM rollups").fetchone()[0]
        degraded = db.execute("SELECT count(*) FROM results WHERE degraded").fetchone()[0]
        events = [row[0] for row in db.execute("SELECT kind FROM outbox ORDER BY seq")]
    assert total == distinct
    assert rolled == total  # every result counted exactly once, replays included
    assert degraded > 0
    assert events.count("monitor.down") == 1
    assert "probe.degraded" in events
