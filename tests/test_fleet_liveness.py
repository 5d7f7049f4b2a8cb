"""Agent liveness across a hub restart: silence counts from the hub's own start (issue 12)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from
from tests.procs import Hub
from uptally.clock import FakeClock, SystemClock
from uptally.fleet import Report
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import outbox as outbox_store
from uptally.store.database import Database

ADMIN_TOKEN = "fleet-admin-token-k7Qz"

CONFIG = """
locations: [{name: eu, token_env: LIVENESS_EU}]
monitors: []
probe: {offline_after: 2m}
"""
LIMIT = 120_000


def hub(db_url: str, clock: FakeClock) -> Runtime:
    return Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )


async def kinds(runtime: Runtime) -> list[str]:
    await runtime.ingest.drained()
    async with runtime.db.connect() as conn:
        return [e.kind for e in await outbox_store.list_events(conn) if e.subject == "eu"]


async def test_a_hub_down_longer_than_the_offline_limit_does_not_mark_its_agents_offline(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVENESS_EU", "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb")
    first = hub(db_url, clock)
    await first.start()
    await first.ingest.submit_work(first.fleet.contact("eu", Report(), 0))
    await first.stop()

    clock.advance(10 * 60_000)  # the hub is away far longer than probe.offline_after
    second = hub(db_url, clock)
    await second.start()
    try:
        second.fleet.sweep()
        clock.advance(LIMIT)  # the agent has had exactly the limit to reach the new hub
        second.fleet.sweep()
        assert [p.state for p in second.fleet.statuses()] == ["up"]
        assert await kinds(second) == ["probe.online"]

        clock.advance(1)  # ... and did not: now it is offline, as of now
        second.fleet.sweep()
        [row] = second.fleet.statuses()
        assert (row.state, row.since) == ("offline", clock.now_ms())
        assert await kinds(second) == ["probe.online", "probe.offline"]
    finally:
        await second.stop()


async def test_an_agent_that_comes_back_after_a_hub_restart_is_never_offline(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVENESS_EU", "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb")
    first = hub(db_url, clock)
    await first.start()
    await first.ingest.submit_work(first.fleet.contact("eu", Report(), 0))
    await first.stop()

    clock.advance(10 * 60_000)
    second = hub(db_url, clock)
    await second.start()
    try:
        second.fleet.sweep()  # the watcher's first look, right at start
        clock.advance(30_000)  # the agent's backoff brings it back within the limit
        await second.ingest.submit_work(second.fleet.contact("eu", Report(), 0))
        clock.advance(LIMIT)
        second.fleet.sweep()
        assert [p.state for p in second.fleet.statuses()] == ["up"]
        assert await kinds(second) == ["probe.online"]
    finally:
        await second.stop()


@pytest.mark.slow
async def test_a_real_hub_restart_gives_its_agents_the_offline_limit_to_come_back(
    tmp_path: Path,
) -> None:
    limit_s = 8  # well beyond a loaded machine's start-up time, so the check discriminates
    config = tmp_path / "hub.yaml"
    config.write_text(
        "locations: [{name: eu, token_env: LIVENESS_EU}]\nmonitors: []\n"
        f"probe: {{offline_after: {limit_s}s}}\n"
    )
    hub = Hub(
        config,
        tmp_path / "data",
        {"LIVENESS_EU": "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb", "UPTALLY_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    await hub.start()
    try:
        async with aiohttp.ClientSession() as http:
            body = {"location": "eu", "sent_at": SystemClock().now_ms(), "results": []}
            async with http.post(
                f"{hub.url}/api/v1/probes/results",
                json=body,
                headers={"Authorization": "Bearer eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb"},
            ) as response:
                assert response.status == 200, await response.text()
            assert await hub.stop() == 0
            await asyncio.sleep(limit_s + 0.5)  # the hub stays away longer than the limit
            restarted = SystemClock().now_ms()
            await hub.start()

            async def eu() -> dict[str, Any]:
                async with http.get(
                    f"{hub.url}/api/v1/probes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
                ) as response:
                    probes = (await response.json())["probes"]
                return next(p for p in probes if p["name"] == "eu")

            async with asyncio.timeout(30):  # the agent never comes back: offline, in time
                while (row := await eu())["state"] != "offline":
                    await asyncio.sleep(0.2)
        offline_at = datetime.fromisoformat(row["since"]).timestamp() * 1000
        assert offline_at >= restarted + limit_s * 1000
    finally:
        if hub.process is not None and hub.process.returncode is None:
            assert await hub.stop() == 0, "".join(hub.output)
    with sqlite3.connect(tmp_path / "data" / "uptally.db") as db:
        kinds = [r[0] for r in db.execute("SELECT kind FROM outbox ORDER BY seq")]
    assert [k for k in kinds if k.startswith("probe.")] == ["probe.online", "probe.offline"]
