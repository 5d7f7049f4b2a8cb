"""The writer on real SQLite and PostgreSQL: results, outages, events and state together."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.conftest import config_from
from uptally.clock import FakeClock
from uptally.evaluator import MonitorState
from uptally.ingest import Work
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store import outages as outage_store
from uptally.store import outbox as outbox_store
from uptally.store import results as result_store
from uptally.store.database import Database
from uptally.store.tables import location_states, results, rollups

CONFIG = """
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 2}
  - {id: db, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}
"""

_ids = iter(range(10**9))


def result(clock: FakeClock, ok: bool, monitor: str = "api", at: int | None = None) -> Result:
    return Result(
        f"t{next(_ids):010d}",
        monitor,
        "local",
        clock.now_ms() if at is None else at,
        ok,
        5.0 if ok else 10_000.0,
        None if ok else "timeout",
        "" if ok else "timed out after 10s",
    )


async def started(db_url: str, clock: FakeClock) -> Runtime:
    runtime = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    return runtime


async def test_an_outage_and_its_events_are_written_with_the_results(
    db_url: str, clock: FakeClock
) -> None:
    runtime = await started(db_url, clock)
    try:
        for ok in (True, False, False):
            runtime.ingest.submit(result(clock, ok))
            clock.advance(10_000)
        await runtime.ingest.drained()
        async with runtime.db.connect() as conn:
            stored = await result_store.list_results(conn, "api")
            [outage] = await outage_store.list_outages(conn, monitors=["api"])
            events = await outbox_store.list_events(conn)
        assert [r.ok for r in stored] == [False, False, True]
        assert outage.outage.end is None
        assert outage.outage.start == stored[1].at  # the first failing check
        assert [(e.kind, e.subject, e.at) for e in events] == [
            ("monitor.down", "api", stored[1].at)
        ]
        runtime.ingest.submit(result(clock, True))
        await runtime.ingest.drained()
        async with runtime.db.connect() as conn:
            [closed] = await outage_store.list_outages(conn, monitors=["api"])
            events = await outbox_store.list_events(conn)
        assert closed.outage.id == outage.outage.id
        assert closed.outage.end == clock.now_ms()
        assert [e.kind for e in events] == ["monitor.down", "monitor.up"]
        assert events[1].data["duration_ms"] == 20_000
    finally:
        await runtime.stop()


async def test_a_restart_continues_the_same_open_outage(db_url: str, clock: FakeClock) -> None:
    first = await started(db_url, clock)
    for ok in (True, False, False):
        first.ingest.submit(result(clock, ok))
        clock.advance(10_000)
    await first.ingest.drained()
    [open_outage] = list(first.evaluator.location_snapshots("api"))
    await first.stop()

    second = await started(db_url, clock)
    try:
        status = second.evaluator.status("api")
        assert status is not None
        assert status.state is MonitorState.DOWN
        assert open_outage.state.value == "down"
        second.ingest.submit(result(clock, False))
        clock.advance(10_000)
        second.ingest.submit(result(clock, True))
        await second.ingest.drained()
        async with second.db.connect() as conn:
            outages = await outage_store.list_outages(conn, monitors=["api"])
            events = await outbox_store.list_events(conn)
        assert len(outages) == 1  # the same outage, closed; not a second one
        assert outages[0].outage.end == clock.now_ms()
        assert [e.kind for e in events] == ["monitor.down", "monitor.up"]
    finally:
        await second.stop()


async def test_replayed_results_are_stored_and_counted_once(db_url: str, clock: FakeClock) -> None:
    runtime = await started(db_url, clock)
    try:
        batch = []
        for ok in (True, False, False, True):
            batch.append(result(clock, ok))
            clock.advance(10_000)
        await runtime.ingest.submit_work(Work(results=list(batch)))
        again = await runtime.ingest.submit_work(Work(results=list(batch)))
        assert again.accepted == []
        await runtime.ingest.flush()
        async with runtime.db.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(results))).scalar()
            outages = await outage_store.list_outages(conn, monitors=["api"])
            events = await outbox_store.list_events(conn)
            [rollup] = (await conn.execute(select(rollups))).all()
        assert count == 4
        assert len(outages) == 1
        assert [e.kind for e in events] == ["monitor.down", "monitor.up"]
        assert rollup._mapping["count"] == 4
        assert rollup._mapping["failures"] == 2
    finally:
        await runtime.stop()


async def test_late_results_from_a_replay_rebuild_the_location_from_its_stored_history(
    db_url: str,
    clock: FakeClock,
) -> None:
    runtime = await started(db_url, clock)
    try:
        start = clock.now_ms()
        on_time = [
            result(clock, True, at=start),
            result(clock, False, at=start + 60_000),
            result(clock, True, at=start + 120_000),
        ]
        await runtime.ingest.submit_work(Work(results=on_time))
        late = [result(clock, False, at=start + 90_000)]  # completes the confirmation
        await runtime.ingest.submit_work(Work(results=late))
        async with runtime.db.connect() as conn:
            [outage] = await outage_store.list_outages(conn, monitors=["api"])
        assert (outage.outage.start, outage.outage.end) == (start + 60_000, start + 120_000)
    finally:
        await runtime.stop()


async def test_hourly_rollups_add_up_across_batches_and_restarts(
    db_url: str, clock: FakeClock
) -> None:
    runtime = await started(db_url, clock)
    for ok in (True, True, False):
        runtime.ingest.submit(result(clock, ok, monitor="db"))
        await runtime.ingest.drained()
        clock.advance(1000)
    await runtime.stop()
    runtime = await started(db_url, clock)
    try:
        runtime.ingest.submit(result(clock, True, monitor="db"))
        await runtime.ingest.drained()
        await runtime.ingest.flush()
        async with runtime.db.connect() as conn:
            [row] = (await conn.execute(select(rollups).where(rollups.c.monitor == "db"))).all()
            states = (await conn.execute(select(location_states))).all()
        assert row._mapping["count"] == 4
        assert row._mapping["failures"] == 1
        assert row._mapping["latency_max"] == 10_000.0
        assert {s.monitor for s in states} == {"db"}
    finally:
        await runtime.stop()


async def test_stop_writes_every_buffered_result(db_url: str, clock: FakeClock) -> None:
    runtime = await started(db_url, clock)
    for _ in range(2500):
        runtime.ingest.submit(result(clock, True))
        clock.advance(1)
    await runtime.stop()
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(results))).scalar()
        assert count == 2500
    finally:
        await db.close()


async def test_after_a_crash_rollups_are_recomputed_from_the_raw_results(
    db_url: str, clock: FakeClock
) -> None:
    runtime = await started(db_url, clock)
    for ok in (True, False, True):
        runtime.ingest.submit(result(clock, ok, monitor="db"))
        clock.advance(1000)
    await runtime.ingest.drained()
    # a crash: nothing is flushed, no clean-shutdown marker is written
    for task in runtime._tasks:
        task.cancel()
    # let the cancelled tasks give their connections back (a dead process's locks are gone)
    await asyncio.gather(*runtime._tasks, return_exceptions=True)
    await runtime.db.close()
    runtime = await started(db_url, clock)
    try:
        async with runtime.db.connect() as conn:
            [row] = (await conn.execute(select(rollups).where(rollups.c.monitor == "db"))).all()
        assert (row._mapping["count"], row._mapping["failures"]) == (3, 1)
    finally:
        await runtime.stop()
