"""A restart keeps a failing monitor on its quick re-check (retry_interval), not its interval."""

from __future__ import annotations

import asyncio

from tests.conftest import config_from
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.scheduler import Plan, grid_at_or_after
from uptally.store import results as result_store
from uptally.store.database import Database

HOUR, RETRY = 3_600_000.0, 2_000.0


def _due(plan: Plan, now: float) -> list[str]:
    return [entry.key for entry, _ in plan.pop_due(now)]


def test_a_monitor_that_failed_before_a_restart_is_retried_from_that_failure() -> None:
    plan = Plan()
    plan.upsert("db", HOUR, RETRY, now=10_000.0, failed_at=9_500.0)
    assert _due(plan, 11_499.0) == []
    [(entry, due)] = plan.pop_due(11_500.0)  # the failure + retry_interval
    assert (entry.key, entry.failing, due) == ("db", True, 11_500.0)
    # Once it succeeds it returns to its grid, as any recovered monitor does.
    assert plan.completed(entry, True, due, 11_600.0) == grid_at_or_after(entry, 13_600.0)


def test_a_failure_older_than_the_retry_interval_is_retried_at_once() -> None:
    plan = Plan()
    plan.upsert("db", HOUR, RETRY, now=100_000.0, failed_at=1_000.0)
    assert _due(plan, 100_000.0) == ["db"]


def test_a_monitor_already_scheduled_keeps_its_schedule() -> None:
    plan = Plan()
    plan.upsert("db", HOUR, RETRY, now=0.0)
    plan.upsert("db", HOUR / 2, RETRY, now=10.0, failed_at=5.0)  # new timings, not a restart
    [(entry, due)] = plan.pop_due(HOUR)
    assert not entry.failing
    assert due == grid_at_or_after(entry, 10.0)


CONFIG = """
monitors:
  - {id: db, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h, retry_interval: 2s, confirm: 3}
"""


async def test_a_restart_keeps_the_quick_recheck_of_a_failing_monitor(
    db_url: str, clock: FakeClock
) -> None:
    before = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await before.start()
    try:
        failed = Result(
            "r-before", "db", "local", clock.now_ms(), False, 1.0, "connect_refused", ""
        )
        before.ingest.submit(failed)
        await before.ingest.drained()
    finally:
        await before.stop()
    clock.advance(1_000)  # stopped for a second: the re-check is due a second later
    after = Runtime(config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics())
    await after.start()
    try:
        # Without the failure kept, the next check would wait for its place on the hour's grid.
        async with asyncio.timeout(15):
            while True:
                async with after.db.connect() as conn:
                    stored = await result_store.list_results(conn, "db")
                if len(stored) >= 2:
                    break
                await asyncio.sleep(0.05)
        assert not stored[0].ok
    finally:
        await after.stop()
