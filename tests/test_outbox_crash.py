"""Kill `uptally serve` in the middle of dispatching: nothing is lost, and what is sent twice
carries the same delivery id."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.procs import Hub
from tests.receivers import poll_until

pytestmark = pytest.mark.slow

TOKEN = "crash-admin-token"
EVENTS = 30


class Receiver:
    """Records each request on arrival; the 10th one on /slow never gets an answer (the hub is
    killed while it waits), so it is in flight when the process dies."""

    def __init__(self) -> None:
        self.arrived: list[tuple[str, str, str]] = []  # (path, delivery id, event id)
        self.hang = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.arrived.append((request.path, request.headers["X-Uptally-Delivery"], body["id"]))
        if request.path == "/slow":
            if sum(1 for p, _, _ in self.arrived if p == "/slow") == 10:
                self.hang.set()
                await self.release.wait()  # until the test ends
            await asyncio.sleep(0.02)
        return web.Response(text="ok")


async def test_killing_the_process_mid_dispatch_loses_nothing_and_repeats_delivery_ids(
    tmp_path: Path,
) -> None:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{path}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = tmp_path / "uptally.yaml"
    config.write_text(
        f"""
site: {{title: Crash}}
components: [{{id: api}}]
probe: {{enabled: false}}
notifications:
  lease: 1s
  retry: {{first: 50ms, max: 200ms}}
  channels:
    - {{id: slow, url: "webhook+http://127.0.0.1:{port}/slow", events: ["incident.*"]}}
    - {{id: fast, url: "webhook+http://127.0.0.1:{port}/fast", events: ["incident.*"]}}
"""
    )
    hub = Hub(config, tmp_path / "data", {"UPTALLY_ADMIN_TOKEN": TOKEN})
    created: list[str] = []
    try:
        await hub.start()
        async with aiohttp.ClientSession() as http:
            for n in range(EVENTS):
                async with http.post(
                    f"{hub.url}/api/v1/incidents",
                    json={"title": f"incident {n}", "message": "m", "components": ["api"]},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as response:
                    assert response.status == 201
                    created.append((await response.json())["id"])
        async with asyncio.timeout(20):
            await receiver.hang.wait()
        await hub.kill()  # SIGKILL while /slow's 10th delivery is in flight
        in_flight = next(d for p, d, _ in reversed(receiver.arrived) if p == "/slow")
        await hub.start()

        def everything_arrived() -> bool:
            return all(
                len({e for p, _, e in receiver.arrived if p == path}) == EVENTS
                for path in ("/slow", "/fast")
            )

        await poll_until(everything_arrived, timeout=30)
        assert await hub.stop() == 0
    finally:
        if hub.process is not None and hub.process.returncode is None:
            await hub.kill()
        receiver.release.set()
        await runner.cleanup()
    for path in ("/slow", "/fast"):
        ids: dict[str, set[str]] = defaultdict(set)
        for arrived_path, delivery, event in receiver.arrived:
            if arrived_path == path:
                ids[event].add(delivery)
        assert all(len(deliveries) == 1 for deliveries in ids.values())  # one id per event
        assert len(ids) == EVENTS
    repeated = [d for p, d, _ in receiver.arrived if p == "/slow" and d == in_flight]
    assert len(repeated) == 2  # the one in flight was sent again, with the same delivery id
    incidents_per_event = {e for _, _, e in receiver.arrived}
    assert len(incidents_per_event) == EVENTS
    assert len(created) == EVENTS
