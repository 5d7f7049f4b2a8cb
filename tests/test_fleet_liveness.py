"""Agent liveness across a hub restart: silence counts from the hub's own start (issue 12)."""

from __future__ import annotations

import pytest

from tests.conftest import config_from
from uptally.clock import FakeClock
from uptally.fleet import Report
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import outbox as outbox_store
from uptally.store.database import Database

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
    monkeypatch.setenv("LIVENESS_EU", "eu-secret")
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
    monkeypatch.setenv("LIVENESS_EU", "eu-secret")
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
