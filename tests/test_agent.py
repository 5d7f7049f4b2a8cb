"""The agent in-process against a real hub: queueing while the hub is away, replay, refresh."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import config_from, serve_app
from tests.procs import run_cli
from tests.targets import TcpTarget, reply_with
from uptally.checks.base import CheckFailed
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.probe.agent import (
    FROM_AGENT,
    FROM_DEFAULTS,
    FROM_HUB,
    Agent,
    AgentSettings,
    HubError,
)
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.store.tables import results
from uptally.web.app import create_app

CONFIG = """
locations: [{name: eu, token_env: AGENT_TEST_TOKEN}]
monitors:
  - {id: closed, kind: tcp, host: 127.0.0.1, port: 9, locations: [eu], interval: 200ms,
     retry_interval: 100ms, timeout: 1s}
"""


PROBE_TOKEN = "agent-probe-3Fh8Lq1Zr6Vm0Ts9Wc5Yb2"  # probe tokens need 128 bits


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("AGENT_TEST_TOKEN", PROBE_TOKEN)
    runtime = Runtime(
        config_from(CONFIG),
        Database(f"sqlite+aiosqlite:///{tmp_path}/hub.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    yield runtime
    await runtime.stop()


async def stored(runtime: Runtime) -> int:
    async with runtime.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(results))).scalar() or 0)


async def eventually(predicate: object, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


async def test_an_agent_queues_while_the_hub_is_away_and_replays_when_it_returns(
    hub: Runtime, tmp_path: Path
) -> None:
    app = create_app(hub)
    server = serve_app(app)
    url = await server.__aenter__()
    agent = Agent(
        AgentSettings(
            url,
            PROBE_TOKEN,
            "eu",
            tmp_path / "queue",
            canary_interval_s=0.2,
        )
    )
    await agent.start()
    try:
        await eventually(lambda: _true_after(stored(hub), lambda n: n > 0))
        await server.__aexit__()  # the hub goes away; the agent keeps checking and queueing
        await eventually(lambda: _true(agent.queue.depth() > 5))
        before = await stored(hub)
        server = serve_app(app)
        url2 = await server.__aenter__()
        agent.hub = url2  # same hub, new port (a fixed port would need the test to reserve one)
        await eventually(lambda: _true(agent.queue.depth() == 0 and agent.connected))
        assert await stored(hub) > before
    finally:
        await agent.stop()
        await server.__aexit__()


async def test_an_agent_picks_up_changed_assignments(hub: Runtime, tmp_path: Path) -> None:
    async with serve_app(create_app(hub)) as url:
        agent = Agent(AgentSettings(url, PROBE_TOKEN, "eu", tmp_path / "queue"))
        assert await agent.refresh_assignments() is True
        assert agent.runner.scheduler.scheduled() == ["closed"]
        assert await agent.refresh_assignments() is False  # 304: nothing changed
        hub.fleet.configure(config_from(CONFIG.replace("port: 9,", "port: 10,")))
        assert await agent.refresh_assignments() is True
        assert agent.runner.monitor("closed").port == 10  # type: ignore[union-attr]
        assert (tmp_path / "queue" / "assignments.json").exists()
        await asyncio.to_thread(agent.queue.close)


async def _true(value: bool) -> bool:
    return value


async def _true_after(awaitable: object, check: object) -> bool:
    return bool(check(await awaitable))  # type: ignore[misc,operator]


class SkewedClock(SystemClock):
    """The agent's clock, off the hub's by `offset_ms`."""

    def __init__(self, offset_ms: int) -> None:
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


async def test_a_skewed_clock_is_logged_once_per_change_not_per_batch(
    hub: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SkewedClock(60_000)
    async with serve_app(create_app(hub)) as url:
        agent = Agent(
            AgentSettings(url, PROBE_TOKEN, "eu", tmp_path / "queue"),
            clock=clock,
        )
        try:
            with caplog.at_level(logging.INFO, logger="uptally.probe.agent"):
                for _ in range(20):
                    await agent.send_once()
                clock.offset_ms = 90_000  # it drifts further: news
                for _ in range(5):
                    await agent.send_once()
                clock.offset_ms = 0  # NTP fixed it
                for _ in range(5):
                    await agent.send_once()
        finally:
            await asyncio.to_thread(agent.queue.close)
    said = [r.getMessage() for r in caplog.records if "clock" in r.getMessage()]
    assert len(said) == 3, said
    found = [re.search(r"clock is ([+-][\d.]+)s off the hub's", m) for m in said[:2]]
    off = [float(m[1]) if m else 0.0 for m in found]
    assert 50 < off[0] <= 60  # less the time a request takes
    assert 80 < off[1] <= 90
    assert said[2] == "this probe's clock is in line with the hub's again"


async def test_a_clock_refused_by_the_hub_is_logged_once_until_it_is_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENT_TEST_TOKEN", PROBE_TOKEN)
    config = config_from(CONFIG + "probe: {clock_skew: reject, max_clock_skew: 2s}\n")
    hub = Runtime(
        config,
        Database(f"sqlite+aiosqlite:///{tmp_path}/hub.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await hub.start()
    clock = SkewedClock(60_000)
    try:
        async with serve_app(create_app(hub)) as url:
            agent = Agent(
                AgentSettings(url, PROBE_TOKEN, "eu", tmp_path / "queue"),
                clock=clock,
            )
            try:
                with caplog.at_level(logging.INFO, logger="uptally.probe.agent"):
                    for _ in range(5):  # what the sender does on each retry
                        with pytest.raises(HubError) as refused:
                            await agent.send_once()
                        agent._send_failed(refused.value)
                    clock.offset_ms = 0
                    await agent.send_once()
            finally:
                await asyncio.to_thread(agent.queue.close)
    finally:
        await hub.stop()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("the hub refuses this probe's results (they stay queued): ")
    assert "off the hub's" in said[0]
    assert said[1] == "the hub takes this probe's results again"


async def test_with_no_canary_configured_losing_the_hub_does_not_make_failures_degraded(
    hub: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The location configures no canaries: the agent uses its defaults (here two local ports,
    # so that the test does not depend on the internet), never the hub.
    async with TcpTarget(reply_with(b"")) as one, TcpTarget(reply_with(b"")) as two:
        defaults = (f"tcp://{one.address}", f"tcp://{two.address}")
        server = serve_app(create_app(hub))
        url = await server.__aenter__()
        settings = AgentSettings(url, PROBE_TOKEN, "eu", tmp_path / "queue")
        settings.default_canaries = defaults
        agent = Agent(settings)
        try:
            assert await agent.refresh_assignments() is True
            assert agent.canary_plan() == (list(defaults), FROM_DEFAULTS)
            await server.__aexit__()  # the hub goes away
            with caplog.at_level(logging.INFO, logger="uptally.probe.agent"):
                for _ in range(3):  # what the sender does on each retry
                    with pytest.raises(CheckFailed) as missed:
                        await agent.send_once()
                    agent._send_failed(missed.value)
            assert await agent.check_canaries() is False
            agent._checked(_failure())
            assert agent._buffer[-1].degraded is False
            assert agent.hub_unreachable_since is not None
            registry = agent.metrics.registry
            assert registry.get_sample_value("uptally_agent_hub_reachable") == 0
            assert registry.get_sample_value("uptally_agent_network_ok") == 1
            assert "unreachable since" in agent.hub_status()
            said = [r.getMessage() for r in caplog.records]
            assert len(said) == 1, said  # once, not per retry
            assert said[0].startswith(f"hub {url} unreachable since ")
        finally:
            await asyncio.to_thread(agent.queue.close)


async def test_default_canaries_that_never_answer_are_said_once_and_flag_nothing(
    hub: Runtime, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = AgentSettings("http://127.0.0.1:9", PROBE_TOKEN, "eu", tmp_path / "queue")
    settings.default_canaries = ("tcp://127.0.0.1:9", "tcp://127.0.0.1:7")  # nothing there
    agent = Agent(settings)
    try:
        with caplog.at_level(logging.WARNING, logger="uptally.probe.agent"):
            for _ in range(5):
                assert await agent.check_canaries() is False
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1, said
        assert said[0].startswith("none of the default canaries (tcp://127.0.0.1:9, ")
    finally:
        await asyncio.to_thread(agent.queue.close)


async def test_canaries_given_to_the_agent_override_the_hubs(hub: Runtime, tmp_path: Path) -> None:
    hub.fleet.configure(
        config_from(
            CONFIG.replace(
                "AGENT_TEST_TOKEN}", "AGENT_TEST_TOKEN, canaries: ['tcp://127.0.0.1:9']}"
            )
        )
    )
    async with serve_app(create_app(hub)) as url:
        agent = Agent(AgentSettings(url, PROBE_TOKEN, "eu", tmp_path / "queue"))
        await agent.refresh_assignments()
        assert agent.canary_plan() == (["tcp://127.0.0.1:9"], FROM_HUB)
        assert await agent.check_canaries() is True  # configured: its silence counts
        agent.settings.canaries = []
        assert agent.canary_plan() == ([], FROM_AGENT)
        assert await agent.check_canaries() is False  # no canaries: the check is off
        await asyncio.to_thread(agent.queue.close)


def _failure() -> Result:
    return Result("r1", "closed", "eu", 1, False, None, "connect_refused", "refused")


@pytest.mark.parametrize(
    ("option", "said"),
    [
        (["--canary", "bogus"], "a canary is http(s)://host/…, tcp://host:port"),
        (["--metrics-listen", "nope"], "--metrics-listen is HOST:PORT"),
    ],
)
async def test_a_bad_canary_or_metrics_address_is_refused_with_exit_2(
    tmp_path: Path, option: list[str], said: str
) -> None:
    code, output = await run_cli(
        "probe", "--hub", "http://127.0.0.1:9", "--location", "eu", "--token", "t",
        "--queue-dir", str(tmp_path / "queue"), *option,
    )  # fmt: skip
    assert (code, said in output) == (2, True), output
    assert not (tmp_path / "queue").exists()  # nothing started
