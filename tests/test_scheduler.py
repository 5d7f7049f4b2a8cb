"""The scheduler: the pure plan with injected time, and the driver on a real event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import config_from
from uptally.config.schema import monitor_document
from uptally.probe.agent import Agent, AgentSettings
from uptally.scheduler import Plan, Scheduler, spread_offset

MINUTE = 60_000.0


def test_first_runs_are_spread_over_the_interval_instead_of_bursting() -> None:
    plan = Plan()
    for i in range(6000):
        plan.upsert(f"monitor-{i}", MINUTE, 10_000, now=0)
    due = plan.pop_due(MINUTE)
    assert len(due) == 6000
    per_second = Counter(int(at // 1000) for _, at in due)
    assert len(per_second) == 60
    assert max(per_second.values()) < 2 * 6000 / 60  # no second gets twice its share


def test_spread_offsets_are_stable_across_restarts() -> None:
    # Another process with another string-hash seed (what a restart is) gets the same phases.
    keys = ["api", "web", "db/eu", "monitor-4711"]
    code = (
        "import json, sys; from uptally.scheduler import spread_offset; "
        f"print(json.dumps([spread_offset(k, {MINUTE}) for k in {keys!r}]))"
    )
    mine = [spread_offset(key, MINUTE) for key in keys]
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, check=True, timeout=60
        )
        assert json.loads(out.stdout) == mine
    assert all(0 <= offset < MINUTE for offset in mine)
    assert len(set(mine)) == len(keys)  # different monitors, different phases


def test_runs_stay_on_their_grid_over_hours_whatever_checks_take() -> None:
    plan = Plan()
    plan.upsert("api", MINUTE, 10_000, now=0)
    [(entry, first)] = plan.pop_due(MINUTE)
    rng = random.Random(7)
    due = first
    for _ in range(24 * 60):
        took = rng.uniform(0, 30_000)
        plan.completed(entry, True, due, now=due + took)
        [(entry, next_due)] = plan.pop_due(due + MINUTE)
        assert next_due == due + MINUTE
        due = next_due
    assert due == first + 24 * 60 * MINUTE  # a day later, not a millisecond of drift


def test_a_failing_monitor_is_retried_at_the_retry_interval_then_returns_to_its_grid() -> None:
    plan = Plan()
    plan.upsert("api", MINUTE, 10_000, now=0)
    [(entry, due)] = plan.pop_due(MINUTE)
    assert plan.completed(entry, False, due, now=due + 500) == due + 10_500
    [(entry, retry_due)] = plan.pop_due(due + 10_500)
    assert plan.completed(entry, False, retry_due, now=retry_due + 100) == retry_due + 10_100
    [(entry, retry_due)] = plan.pop_due(retry_due + 10_100)
    next_due = plan.completed(entry, True, retry_due, now=retry_due + 100)
    assert next_due is not None
    assert (next_due - entry.offset) % MINUTE == 0  # back on its own grid
    assert next_due >= retry_due + 100 + 10_000


def test_a_monitor_made_while_running_runs_within_its_window_then_on_its_grid() -> None:
    plan = Plan()
    now = 123_456.0
    plan.upsert("new", MINUTE, 10_000, now=now, start_within=1000)
    [(entry, due)] = plan.pop_due(now + 1000)  # within the second, not at its grid slot
    assert now <= due < now + 1000
    following = plan.completed(entry, True, due, now=due + 50)
    assert following is not None
    assert (following - entry.offset) % MINUTE == 0  # back on its own grid
    assert following >= due + MINUTE / 2  # and not twice in a row


def test_many_made_at_once_are_spread_over_their_window() -> None:
    plan = Plan()
    for i in range(10_000):
        plan.upsert(f"m{i}", MINUTE, 10_000, now=0, start_within=10_000)
    due = plan.pop_due(10_000)
    assert len(due) == 10_000
    per_second = Counter(int(at // 1000) for _, at in due)
    assert len(per_second) == 10
    assert max(per_second.values()) < 2 * 1000


def test_a_failing_monitor_is_never_retried_later_than_its_interval() -> None:
    plan = Plan()
    plan.upsert("fast", 1000.0, 10_000.0, now=0)  # interval 1 s, the default retry of 10 s
    [(entry, due)] = plan.pop_due(1000)
    assert plan.completed(entry, False, due, now=due + 20) == due + 1020
    [(entry, retry_due)] = plan.pop_due(due + 1020)
    assert plan.completed(entry, False, retry_due, now=retry_due + 20) == retry_due + 1020
    [(entry, retry_due)] = plan.pop_due(retry_due + 1020)
    recovered = plan.completed(entry, True, retry_due, now=retry_due + 20)
    assert recovered is not None
    assert retry_due + 1020 <= recovered < retry_due + 2020  # the next slot of its 1 s grid
    assert (recovered - entry.offset) % 1000 == 0


async def test_an_agent_retries_by_the_same_rule(tmp_path: Path) -> None:
    config = config_from(
        """
locations: [{name: eu, token_env: SCHEDULER_TEST_TOKEN}]
monitors:
  - {id: fast, kind: tcp, host: 127.0.0.1, port: 9, locations: [eu], interval: 1s}
"""
    )
    [monitor] = config.monitors
    agent = Agent(AgentSettings("http://127.0.0.1:9", "t", "eu", tmp_path))
    agent._apply_assignment({"version": "1", "monitors": [monitor_document(monitor)]})
    plan = agent.runner.scheduler.plan
    [(entry, due)] = plan.pop_due(float("inf"))
    assert plan.completed(entry, False, due, now=due + 20) == due + 1020


def test_a_check_that_overruns_its_interval_skips_the_missed_slots() -> None:
    plan = Plan()
    plan.upsert("api", 1000.0, 1000.0, now=0)
    [(entry, due)] = plan.pop_due(1000)
    next_due = plan.completed(entry, True, due, now=due + 3500)
    assert next_due == due + 4000


def test_removed_monitors_are_not_run_and_changed_ones_take_new_settings() -> None:
    plan = Plan()
    plan.upsert("a", MINUTE, 10_000, now=0)
    plan.upsert("b", MINUTE, 10_000, now=0)
    plan.remove("a")
    assert [entry.key for entry, _ in plan.pop_due(MINUTE)] == ["b"]
    plan.upsert("c", MINUTE, 10_000, now=0)
    [(running, due)] = plan.pop_due(MINUTE)
    plan.upsert("c", 5000.0, 1000.0, now=due)  # changed while running
    assert plan.pop_due(due + MINUTE) == []  # the running one is not scheduled twice
    next_due = plan.completed(running, True, due, now=due + 10)
    assert next_due is not None
    assert next_due - due <= 5000


async def test_the_driver_never_runs_more_than_the_concurrency_cap() -> None:
    running = 0
    peak = 0
    release = asyncio.Event()
    started = 0

    async def check(_key: str) -> bool:
        nonlocal running, peak, started
        running += 1
        started += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return True

    scheduler = Scheduler(check, concurrency=3)
    task = asyncio.create_task(scheduler.run())
    for i in range(10):
        scheduler.upsert(f"m{i}", 100.0, 100.0)
    async with asyncio.timeout(5):
        while started < 3:
            await asyncio.sleep(0.01)
    assert running == 3
    release.set()
    async with asyncio.timeout(5):
        while started < 10:
            await asyncio.sleep(0.01)
    assert peak == 3
    await scheduler.stop()
    task.cancel()


async def test_the_driver_retries_a_failing_monitor_sooner_than_its_interval() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    enough = asyncio.Event()

    async def check(_key: str) -> bool:
        calls.append(loop.time())
        if len(calls) >= 4:
            enough.set()
        return False

    scheduler = Scheduler(check, concurrency=10)
    task = asyncio.create_task(scheduler.run())
    scheduler.upsert("flaky", 5_000.0, 50.0)  # interval 5 s, retry 50 ms
    async with asyncio.timeout(30):
        await enough.wait()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap < 2.5 for gap in gaps)  # retries, not the 5 s interval
    await scheduler.stop()
    task.cancel()


async def test_stop_waits_for_running_checks_to_report() -> None:
    finished = []
    started = asyncio.Event()

    async def check(key: str) -> bool:
        started.set()
        await asyncio.sleep(0.2)
        finished.append(key)
        return True

    scheduler = Scheduler(check, concurrency=10)
    task = asyncio.create_task(scheduler.run())
    scheduler.upsert("slow", 100.0, 100.0)
    async with asyncio.timeout(5):
        await started.wait()
    await scheduler.stop(drain_timeout=5)
    assert finished == ["slow"]
    task.cancel()
