"""Heartbeat monitors: pings over real HTTP, deadlines with an injected clock."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from tests.conftest import config_from, serve_app
from uptally import heartbeats
from uptally.clock import FakeClock
from uptally.config.schema import HeartbeatMonitor
from uptally.evaluator import MonitorState
from uptally.heartbeats import deadline
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import outbox as outbox_store
from uptally.store.database import Database
from uptally.store.heartbeats import HeartbeatRow
from uptally.store.tables import pings
from uptally.web.app import create_app

MINUTE = 60_000
HOUR = 60 * MINUTE

CONFIG = """
site: {title: Beats, timezone: Europe/Berlin}
monitors:
  - {id: backup, kind: heartbeat, period: 24h, grace: 1h, token: backup-token-123}
  - {id: nightly, kind: heartbeat, schedule: "0 3 * * *", grace: 30m}
  - {id: generated, kind: heartbeat, period: 5m}
"""


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def base(runtime: Runtime) -> AsyncIterator[str]:
    async with serve_app(create_app(runtime)) as url:
        yield url


def state(runtime: Runtime, monitor: str) -> MonitorState:
    status = runtime.evaluator.status(monitor)
    assert status is not None
    return status.state


async def test_a_ping_answers_ok_after_it_is_stored(runtime: Runtime, base: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/ping/backup-token-123", data=b"backup done: 42 GB") as response,
    ):
        assert response.status == 200
        assert await response.text() == "OK"
    async with runtime.db.connect() as conn:
        [row] = (await conn.execute(select(pings))).all()
    assert (row.monitor, row.kind, row.method, row.body) == (
        "backup",
        "success",
        "POST",
        "backup done: 42 GB",
    )
    assert state(runtime, "backup") is MonitorState.UP


async def test_an_unknown_token_answers_404_not_found(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/ping/nope", "/ping/nope/start", "/ping/backup-token-123/nonsense"):
            async with http.get(base + path) as response:
                assert response.status == 404
                assert await response.text() == "not found"


async def test_only_the_first_100_kb_of_a_body_are_kept(runtime: Runtime, base: str) -> None:
    """As Healthchecks: a longer body is cut to `heartbeats.max_body`, an absurd one refused."""
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/ping/backup-token-123", data=io.BytesIO(b"x" * 500_000)
        ) as response:
            assert response.status == 200
            assert response.headers["Ping-Body-Limit"] == "100000"
        async with http.post(
            f"{base}/ping/backup-token-123", data=io.BytesIO(b"x" * 3_000_000)
        ) as response:
            assert response.status == 413
    async with runtime.db.connect() as conn:
        [row] = (await conn.execute(select(pings))).all()
    assert len(row.body) == 100_000


async def test_fail_and_non_zero_exit_codes_are_down_at_once(
    runtime: Runtime, base: str, clock: FakeClock
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/ping/backup-token-123") as response:
            assert response.status == 200
        clock.advance(MINUTE)
        async with http.get(f"{base}/ping/backup-token-123/fail") as response:
            assert response.status == 200
        assert state(runtime, "backup") is MonitorState.DOWN
        clock.advance(MINUTE)
        async with http.get(f"{base}/ping/backup-token-123/0") as response:
            assert response.status == 200
        assert state(runtime, "backup") is MonitorState.UP
        clock.advance(MINUTE)
        async with http.get(f"{base}/ping/backup-token-123/3") as response:
            assert response.status == 200
    assert state(runtime, "backup") is MonitorState.DOWN
    snapshot = runtime.evaluator.location_snapshots("backup")[0]
    assert snapshot.last is not None
    assert snapshot.last.message == "the job exited with code 3"


async def test_silence_past_period_and_grace_is_down_from_the_deadline(
    runtime: Runtime, clock: FakeClock
) -> None:
    token = runtime.heartbeats.token("backup")
    assert token is not None
    from uptally.heartbeats import PingInput

    assert await runtime.heartbeats.ping(token, PingInput("success"))
    pinged = clock.now_ms()
    clock.advance(24 * HOUR + HOUR - 1)
    runtime.heartbeats.sweep()
    await runtime.ingest.drained()
    assert state(runtime, "backup") is MonitorState.UP
    clock.advance(2)
    runtime.heartbeats.sweep()
    runtime.heartbeats.sweep()  # reported once, not twice
    await runtime.ingest.drained()
    assert state(runtime, "backup") is MonitorState.DOWN
    status = runtime.evaluator.status("backup")
    assert status is not None
    assert status.since == pinged + 25 * HOUR
    async with runtime.db.connect() as conn:
        events = await outbox_store.list_events(conn)
    mine = [e for e in events if e.subject == "backup"]
    assert [e.kind for e in mine] == ["monitor.down"]
    assert "no ping within 1d + 1h grace" in mine[0].data["reason"]
    assert await runtime.heartbeats.ping(token, PingInput("success"))
    assert state(runtime, "backup") is MonitorState.UP


async def test_a_started_job_that_does_not_finish_within_grace_is_down(
    runtime: Runtime, clock: FakeClock
) -> None:
    from uptally.heartbeats import PingInput

    assert await runtime.heartbeats.ping("backup-token-123", PingInput("success"))
    clock.advance(HOUR)
    assert await runtime.heartbeats.ping("backup-token-123", PingInput("start"))
    clock.advance(HOUR + 1)
    runtime.heartbeats.sweep()
    await runtime.ingest.drained()
    assert state(runtime, "backup") is MonitorState.DOWN
    snapshot = runtime.evaluator.location_snapshots("backup")[0]
    assert snapshot.last is not None
    assert "did not finish within 1h" in snapshot.last.message


async def test_a_never_pinged_monitor_goes_down_after_its_first_period(
    runtime: Runtime, clock: FakeClock
) -> None:
    clock.advance(5 * MINUTE + 5 * MINUTE + 1)  # period 5m, default grace = period
    runtime.heartbeats.sweep()
    await runtime.ingest.drained()
    assert state(runtime, "generated") is MonitorState.DOWN


async def test_generated_tokens_survive_a_restart(db_url: str, clock: FakeClock) -> None:
    tokens = []
    for _ in range(2):
        rt = Runtime(
            config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
        )
        await rt.start()
        tokens.append(rt.heartbeats.token("generated"))
        await rt.stop()
    assert tokens[0] is not None
    assert tokens[0] == tokens[1]


def test_a_cron_deadline_is_the_next_scheduled_time_in_the_site_timezone_plus_grace() -> None:
    monitor = HeartbeatMonitor(id="nightly", kind="heartbeat", schedule="0 3 * * *", grace="30m")
    # 2026-03-28 03:05 Europe/Berlin (UTC+1) = 02:05Z; the next run is 2026-03-29 03:00, which is
    # after the switch to summer time (UTC+2): 01:00Z.
    last = 1_774_663_500_000
    row = HeartbeatRow("nightly", "t", 0, last, "success", None)
    due, why = deadline(monitor, row, "Europe/Berlin")
    assert due == 1_774_746_000_000 + 30 * MINUTE
    assert "2026-03-29T03:00:00+02:00" in why


# It holds SQLite's write lock; a hung PostgreSQL is test_database_hung.py.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_ping_that_cannot_be_stored_in_time_answers_503_not_ok(
    runtime: Runtime, base: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heartbeats, "DURABLE_TIMEOUT_S", 0.3)
    blocker = sqlite3.connect(
        db_url.split(":///", 1)[1], timeout=30, isolation_level=None, check_same_thread=False
    )
    # Off the event loop: a write the runtime has in progress must be able to finish first.
    await asyncio.to_thread(blocker.execute, "BEGIN IMMEDIATE")  # now the writer's commit waits
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            statuses = []
            for path in ("/ping/backup-token-123", "/ping/backup-token-123/start"):
                async with http.get(base + path) as response:
                    statuses.append((response.status, await response.text()))
        assert [s for s, _ in statuses] == [503, 503]
        assert "could not be stored" in statuses[0][1]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await runtime.ingest.drained()
    async with runtime.db.connect() as conn:
        kinds = [row.kind for row in (await conn.execute(select(pings))).all()]
    # The first was already being written and lands late (the job's retry adds a second
    # success: harmless); the second was taken back, and the watchdog ignores its /start.
    assert kinds == ["success"]
    row = runtime.heartbeats.row("backup")
    assert row is not None
    assert row.started_at is None
