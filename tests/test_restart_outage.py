"""A restart never splits an open outage; the time uptally was not running is "not monitored".

Real `serve` processes, killed (SIGKILL) and stopped (SIGTERM) while a monitor is down, away
longer than `2 x interval + timeout`, restarted on the same database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from
from tests.procs import Hub, free_port
from tests.receivers import poll_until
from uptally.clock import FakeClock, SystemClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store import monitoring_gaps as gap_store
from uptally.store import outbox as outbox_store
from uptally.store import results as result_store
from uptally.store.database import Database

TOKEN = "restart-admin-token-k7Qz"
START_S = 120.0  # a serve's start-up on a loaded 2-core machine can take tens of seconds
AWAY_S = 8.0  # longer than 2 x interval + timeout (5 s)


IN_PROCESS = """
monitors:
  - {id: db, kind: tcp, host: 127.0.0.1, port: 9, interval: 10s, timeout: 1s, confirm: 1}
"""


async def test_a_clean_stop_is_a_gap_not_monitored_and_the_outage_waits_for_a_check(
    db_url: str, clock: FakeClock
) -> None:
    def runtime() -> Runtime:
        config = config_from(IN_PROCESS)
        return Runtime(config, Database(db_url), clock=clock, metrics=Metrics(), run_probe=False)

    before = runtime()
    await before.start()
    try:
        down = Result("r1", "db", "local", clock.now_ms(), False, 1.0, "connect_refused", "")
        before.ingest.submit(down)
        await before.ingest.drained()
        outage = before.evaluator.open_outage("db")
        assert outage is not None
    finally:
        await before.stop()
    stopped = clock.now_ms()
    clock.advance(10 * 60_000)  # away far longer than 2 x interval + timeout (21 s)
    after = runtime()
    await after.start()
    try:
        async with after.db.connect() as conn:
            assert await gap_store.list_gaps(conn) == [
                gap_store.MonitoringGap(stopped, clock.now_ms(), True)
            ]
        clock.advance(20_000)  # the location has 21 s of running time left, not -579 s
        assert after.evaluator.tick(clock.now_ms()).events == []
        assert after.evaluator.open_outage("db") == outage
        clock.advance(2_000)  # ... and now it has stopped reporting: the outage ends with it
        [up] = after.evaluator.tick(clock.now_ms()).events
        assert (up.kind.value, up.data["end"]) == ("monitor.up", clock.now_ms() - 1_000)
    finally:
        await after.stop()


def config_text(port: int) -> str:
    return f"""
site: {{title: Restart}}
components: [{{id: api, name: API, monitors: [db]}}]
monitors:
  - {{id: db, kind: tcp, host: 127.0.0.1, port: {port}, interval: 2s, retry_interval: 1s,
     timeout: 1s, confirm: 1}}
incidents:
  automation: {{default: open_and_resolve}}
sla:
  policies: [{{id: std, target: 99.9, components: [api]}}]
"""


@asynccontextmanager
async def listening(port: int) -> AsyncIterator[None]:
    """The monitored target comes up: something accepts connections on `port`."""

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


async def events(db: Database) -> list[outbox_store.StoredEvent]:
    async with db.connect() as conn:
        return await outbox_store.list_events(conn, limit=10_000)


def kinds(found: list[outbox_store.StoredEvent], prefix: str) -> list[str]:
    return [e.kind for e in found if e.kind.startswith(prefix)]


async def checks_after(db: Database, moment: int) -> int:
    async with db.connect() as conn:
        stored = await result_store.list_results(conn, "db", limit=10_000)
    return sum(1 for r in stored if r.at > moment and not r.ok)


async def away_and_back(hub: Hub, db: Database, kill: bool) -> tuple[int, int, int]:
    """Stop the hub (SIGKILL or SIGTERM), stay away, restart it and let it check a few times
    (longer than 2 x interval + timeout); returns when the stop began and ended and when the
    restart began."""
    stopping = SystemClock().now_ms()
    if kill:
        await hub.kill()
    else:
        assert await hub.stop() == 0, "".join(hub.output)
    stopped = SystemClock().now_ms()
    await asyncio.sleep(AWAY_S)  # the point of the test: uptally is not running meanwhile
    restarted = SystemClock().now_ms()
    await hub.start(timeout=START_S)

    async def checked_enough() -> bool:
        return await checks_after(db, restarted) >= 7  # > 5 s of failing checks

    await poll_until(checked_enough, timeout=60, every=0.2)
    return stopping, stopped, restarted


async def sla_row(hub: Hub) -> dict[str, Any]:
    period = datetime.now(UTC).strftime("%Y-%m")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{hub.url}/api/v1/sla/report?period={period}",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        [row] = (await response.json())["rows"]
        return dict(row)


@pytest.mark.slow
async def test_an_outage_open_across_restarts_stays_one_outage_and_the_gaps_are_not_monitored(
    db_url: str, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens: the target is down
    config = tmp_path / "uptally.yaml"
    config.write_text(config_text(port))
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url.replace("+asyncpg", "")
    hub = Hub(config, tmp_path, env)  # on SQLite, tmp_path/uptally.db is db_url's file
    db = Database(db_url)
    try:
        await hub.start(timeout=START_S)

        async def incident_opened() -> bool:
            return "incident.created" in kinds(await events(db), "incident.")

        await poll_until(incident_opened, timeout=60, every=0.2)
        [down] = [e for e in await events(db) if e.kind == "monitor.down"]

        killed = await away_and_back(hub, db, kill=True)
        stopped = await away_and_back(hub, db, kill=False)

        found = await events(db)
        assert kinds(found, "monitor.") == ["monitor.down"]  # no false up, no second down
        assert kinds(found, "incident.") == ["incident.created"]  # never resolved, reopened
        async with db.connect() as conn:
            gaps = await gap_store.list_gaps(conn)
        assert [g.clean for g in gaps] == [False, True]
        # A gap begins at the last sign of life: the clean stop itself, or the last alive
        # mark (written every 2 s) before the kill; it ends when the restarted serve is started
        # and monitors again.
        assert killed[0] - 3 * gap_store.ALIVE_EVERY_MS <= gaps[0].start <= killed[0]
        assert stopped[0] <= gaps[1].start <= stopped[1]
        for gap, (_, gone, back) in zip(gaps, [killed, stopped], strict=True):
            assert gap.end - gap.start >= back - gone >= AWAY_S * 1000
            assert back <= gap.end <= back + START_S * 1000
        row = await sla_row(hub)
        # Not monitored: the gaps, from when the monitor's measured time began (its first
        # result: the first gap may begin before, at the first start's alive mark).
        measured_from = datetime.fromisoformat(row["measured_from"]).timestamp() * 1000
        not_monitored = sum(g.end - max(g.start, measured_from) for g in gaps)
        assert row["not_monitored_minutes"] == pytest.approx(not_monitored / 60_000, abs=0.002)
        [outage] = row["outages"]
        assert outage["id"] == down.data["outage"]
        assert outage["end"] is None
        # Down all along, but the gaps inside the outage are neither downtime nor uptime.
        monitored = row["measured_minutes"] - row["not_monitored_minutes"]
        assert row["downtime_minutes"] == pytest.approx(monitored, abs=0.002)
        assert row["uptime_percent"] == 0.0

        async with listening(port):  # the target comes back: the same outage closes, once

            async def recovered() -> bool:
                return "monitor.up" in kinds(await events(db), "monitor.")

            await poll_until(recovered, timeout=60, every=0.2)
            async with asyncio.timeout(60):
                while "incident.resolved" not in kinds(await events(db), "incident."):
                    await asyncio.sleep(0.2)
        found = await events(db)
        assert kinds(found, "monitor.") == ["monitor.down", "monitor.up"]
        [up] = [e for e in found if e.kind == "monitor.up"]
        assert up.data["outage"] == down.data["outage"]
        assert up.data["end"] > stopped[2]  # closed by a check after the restart
        assert kinds(found, "incident.").count("incident.resolved") == 1
        assert "incident.reopened" not in kinds(found, "incident.")
        assert await hub.stop() == 0
    finally:
        if hub.process is not None and hub.process.returncode is None:
            hub.process.kill()
            await hub.process.wait()
        await db.close()
