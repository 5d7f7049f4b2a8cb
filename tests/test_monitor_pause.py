"""Pausing and resuming a monitor: a real Runtime checking a real HTTP service on 127.0.0.1,
the admin API over a real socket, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import config_from, serve_app
from tests.test_evaluator import result as ev_result
from tests.test_sla_ledger import JANUARY, M, at
from tests.test_sla_ledger import outage as ledger_outage
from uptally.clock import SystemClock
from uptally.config.schema import Component
from uptally.evaluator import Evaluator, MonitorState, Rules
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.sla.ledger import availability
from uptally.store import monitor_pauses as pause_store
from uptally.store import results as result_store
from uptally.store.audit import AuditFilter, list_entries
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBE_TOKEN = "pause-probe-Qm4Xw8Zr1Lt6Vb3Nk9Hs2Ye"
INTERVAL_S = 0.5


class Target:
    """A real HTTP service that counts the checks it gets and can be made to fail."""

    def __init__(self) -> None:
        self.healthy = True
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.json_response({}, status=200 if self.healthy else 503)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    service = Target()
    app = web.Application()
    app.router.add_get("/health", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield service, f"http://127.0.0.1:{port}/health"
    await runner.cleanup()


def config_text(url: str) -> str:
    return f"""
locations: [{{name: eu, token_env: PAUSE_TEST_PROBE_TOKEN}}]
monitors:
  - {{id: api, kind: http, url: "{url}", interval: {int(INTERVAL_S * 1000)}ms,
     retry_interval: {int(INTERVAL_S * 1000)}ms, timeout: 1s, confirm: 1}}
  - {{id: edge, kind: http, url: "{url}", locations: [eu], interval: 30s}}
  - {{id: backup, kind: heartbeat, period: 1s, grace: 1s}}
components:
  - {{id: api, name: API, monitors: [api]}}
sla:
  policies:
    - {{id: gold, target: 99.9, components: [api]}}
"""


Http = tuple[aiohttp.ClientSession, str]


class Node:
    """A Runtime on a database, started and stopped like `uptally serve` would (twice for a
    restart), with the admin API on a real socket."""

    def __init__(self, db_url: str, url: str) -> None:
        self.db_url = db_url
        self.url = url
        self.runtime: Runtime | None = None

    async def start(self) -> Runtime:
        self.runtime = Runtime(
            config_from(config_text(self.url)),
            Database(self.db_url),
            clock=SystemClock(),
            metrics=Metrics(),
        )
        await self.runtime.start()
        return self.runtime

    async def stop(self) -> None:
        if self.runtime is not None and self.runtime.started:
            await self.runtime.stop()


@pytest.fixture
async def node(
    db_url: str, target: tuple[Target, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Node]:
    monkeypatch.setenv("PAUSE_TEST_PROBE_TOKEN", PROBE_TOKEN)
    made = Node(db_url, target[1])
    await made.start()
    yield made
    await made.stop()


async def call(http: Http, method: str, path: str) -> tuple[int, Any]:
    session, base = http
    async with session.request(method, base + path, headers=AUTH) as response:
        return response.status, await response.json()


async def poll(fetch: Callable[[], Awaitable[Any]], holds: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(15):
        while True:
            value = await fetch()
            if holds(value):
                return value
            await asyncio.sleep(0.05)


async def state_is(http: Http, state: str) -> None:
    await poll(lambda: call(http, "GET", "/api/v1/monitors/api"), lambda r: r[1]["state"] == state)


async def component_status(http: Http) -> str:
    session, base = http
    async with session.get(f"{base}/api/v2/components.json") as response:
        [component] = (await response.json())["components"]
    return str(component["status"])


async def results_after(runtime: Runtime, monitor: str, since: int) -> list[Any]:
    async with runtime.db.connect() as conn:
        rows = await result_store.list_results(conn, monitor, since=since, limit=1000)
    return [r for r in rows if r.at >= since]


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_pausing_stops_checks_and_resuming_starts_them_again(
    node: Node, target: tuple[Target, str]
) -> None:
    service, _ = target
    runtime = node.runtime
    assert runtime is not None
    async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as s:
        http = (s, base)
        await state_is(http, "up")

        status, paused = await call(http, "POST", "/api/v1/monitors/api/pause")
        assert status == 200, paused
        assert paused["state"] == "paused"
        returned_at = now_ms()
        hits = service.hits
        # one interval for a check in flight at the pause, then nothing (a window observed)
        await asyncio.sleep(3 * INTERVAL_S)
        assert service.hits <= hits + 1
        assert await results_after(runtime, "api", returned_at + int(INTERVAL_S * 1000)) == []
        assert (await call(http, "GET", "/api/v1/monitors/api"))[1]["state"] == "paused"
        _, listed = await call(http, "GET", "/api/v1/monitors?state=paused")
        assert [m["id"] for m in listed["monitors"]] == ["api"]
        assert runtime.state_counts()["paused"] == 1

        status, resumed = await call(http, "POST", "/api/v1/monitors/api/resume")
        assert status == 200, resumed
        resumed_at = now_ms()
        assert resumed["state"] != "paused"
        fresh = await poll(lambda: results_after(runtime, "api", resumed_at), bool)
        assert fresh[0].ok
        await state_is(http, "up")


async def test_pause_and_resume_answer_409_when_already_so_and_404_for_no_monitor(
    node: Node,
) -> None:
    runtime = node.runtime
    assert runtime is not None
    async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as s:
        http = (s, base)
        status, body = await call(http, "POST", "/api/v1/monitors/api/resume")
        assert (status, body["error"]["code"]) == (409, "conflict")
        assert (await call(http, "POST", "/api/v1/monitors/api/pause"))[0] == 200
        status, body = await call(http, "POST", "/api/v1/monitors/api/pause")
        assert (status, body["error"]["code"]) == (409, "conflict")
        assert "already paused" in body["error"]["message"]
        status, body = await call(http, "POST", "/api/v1/monitors/nope/pause")
        assert (status, body["error"]["code"]) == (404, "not_found")
        assert (await call(http, "POST", "/api/v1/monitors/nope/resume"))[0] == 404
        assert (await call(http, "POST", "/api/v1/monitors/api/resume"))[0] == 200
        async with s.post(base + "/api/v1/monitors/api/pause") as response:
            assert response.status == 401  # no token

    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="monitor:api", newest_first=False))
        pauses = await pause_store.list_pauses(conn, monitors=["api"])
    assert [e.action for e in entries] == ["monitor.paused", "monitor.resumed"]
    assert all(e.actor for e in entries)
    [pause] = pauses
    assert pause.end is not None
    assert pause.paused_by == entries[0].actor
    assert f'"start":{pause.start}' in entries[1].details


async def test_a_pause_survives_a_restart(node: Node, target: tuple[Target, str]) -> None:
    service, _ = target
    runtime = node.runtime
    assert runtime is not None
    await runtime.pause("api", "tester")
    await node.stop()

    runtime = await node.start()
    started_at = now_ms()
    hits = service.hits
    assert runtime.monitor_state("api").value == "paused"
    await asyncio.sleep(3 * INTERVAL_S)  # a window observed: no checks while paused
    assert service.hits == hits
    assert await results_after(runtime, "api", started_at) == []

    await runtime.resume("api", "tester")
    await poll(lambda: results_after(runtime, "api", started_at), bool)


async def test_paused_monitors_leave_the_agents_assignments(node: Node) -> None:
    runtime = node.runtime
    assert runtime is not None
    probe_auth = {"Authorization": f"Bearer {PROBE_TOKEN}"}
    async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as s:

        async def assigned() -> list[str]:
            async with s.get(f"{base}/api/v1/probes/assignments", headers=probe_auth) as response:
                assert response.status == 200
                return [m["id"] for m in (await response.json())["monitors"]]

        assert await assigned() == ["edge"]
        assert (await call((s, base), "POST", "/api/v1/monitors/edge/pause"))[0] == 200
        assert await assigned() == []
        assert (await call((s, base), "POST", "/api/v1/monitors/edge/resume"))[0] == 200
        assert await assigned() == ["edge"]


async def test_a_paused_heartbeat_does_not_go_down_for_silence(node: Node) -> None:
    runtime = node.runtime
    assert runtime is not None
    await runtime.pause("backup", "tester")
    paused_at = now_ms()
    await asyncio.sleep(2.5)  # past period + grace of silence, observed
    assert runtime.monitor_state("backup").value == "paused"
    assert await results_after(runtime, "backup", 0) == []
    resumed = await runtime.resume("backup", "tester")
    assert resumed.end is not None
    # counted afresh from the resume: down after period + grace of silence from there
    [late] = await poll(lambda: results_after(runtime, "backup", paused_at), bool)
    assert late.error == "late"
    assert late.at == resumed.end + 2000
    await poll(
        lambda: asyncio.sleep(0, runtime.monitor_state("backup").value), lambda s: s == "down"
    )


async def test_paused_time_is_not_monitored_and_not_downtime_in_the_sla_report(
    node: Node, target: tuple[Target, str]
) -> None:
    service, _ = target
    runtime = node.runtime
    assert runtime is not None
    async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as s:
        http = (s, base)
        await state_is(http, "up")
        service.healthy = False
        await state_is(http, "down")
        assert await component_status(http) == "major_outage"
        assert (await call(http, "POST", "/api/v1/monitors/api/pause"))[0] == 200
        # not shown as down while paused: its component is judged without it
        await poll(lambda: component_status(http), lambda status: status == "operational")
        async with s.get(f"{base}/") as response:
            assert "Paused (not monitored)" in await response.text()
        await asyncio.sleep(1)  # the target stays down for a while of the pause
        assert (await call(http, "POST", "/api/v1/monitors/api/resume"))[0] == 200
        resumed_at = now_ms()
        # the outage open at the pause goes on: the first result after the resume says so
        failed = await poll(lambda: results_after(runtime, "api", resumed_at), bool)
        assert not failed[0].ok
        service.healthy = True
        # the state is live in memory; the outage row commits with the same batch
        _, outages = await poll(
            lambda: call(http, "GET", "/api/v1/outages?monitor=api"),
            lambda r: [o["end"] is not None for o in r[1]["outages"]] == [True],
        )
        [outage] = outages["outages"]

        async with runtime.db.connect() as conn:
            [pause] = await pause_store.list_pauses(conn, monitors=["api"])
        assert pause.end is not None
        paused_ms = pause.end - pause.start
        start = int(datetime.fromisoformat(outage["start"]).timestamp() * 1000)
        end = int(datetime.fromisoformat(outage["end"]).timestamp() * 1000)
        assert start < pause.start < pause.end < end

        month = datetime.fromtimestamp(pause.start / 1000, UTC).strftime("%Y-%m")
        status, report = await call(http, "GET", f"/api/v1/sla/report?period={month}")
        assert status == 200, report
        [row] = report["rows"]
        assert row["not_monitored_minutes"] == round(paused_ms / 60_000, 3)
        assert row["downtime_minutes"] == round((end - start - paused_ms) / 60_000, 3)


# -- the pure cores: evaluator and ledger ------------------------------------------------------


def test_the_evaluator_holds_an_outage_open_across_a_pause_and_rejects_results_inside_it() -> None:
    s = 1000
    evaluator = Evaluator()
    evaluator.set_rules("api", Rules(1, ("local",), "all", 25 * s))
    feed = [ev_result(0, True), ev_result(10, False)]
    evaluator.evaluate(feed, now=10 * s)
    assert evaluator.status("api").state is MonitorState.DOWN  # type: ignore[union-attr]
    evaluator.pause_monitor("api", 15 * s)
    # an hour of silence while paused is not staleness: the outage stays open
    assert evaluator.tick(3600 * s).outages == {}
    assert evaluator.open_outage("api") is not None
    inside = evaluator.evaluate([ev_result(100, True)], now=100 * s)
    assert [reason for _, reason in inside.rejected] == ["monitor paused"]
    evaluator.resume_monitor("api", 3600 * s)
    # after the resume the next result decides: a success ends the outage there
    after = evaluator.evaluate([ev_result(3605, True)], now=3605 * s)
    [ended] = after.outages.values()
    assert (ended.start, ended.end) == (10 * s, 3605 * s)
    assert evaluator.status("api").state is MonitorState.UP  # type: ignore[union-attr]


def test_paused_time_of_one_monitor_hides_its_outages_but_the_other_still_counts() -> None:
    both = Component(id="api", monitors=["a", "b"])
    outages = [ledger_outage(at(600), at(720), "a")]
    found = availability(both, outages, [], *JANUARY, pauses={"a": [(at(630), at(660))]})
    assert (found.full_ms, found.not_monitored_ms) == (90 * M, 0)  # "b" still monitored
    alone = Component(id="api", monitors=["a"])
    found = availability(alone, outages, [], *JANUARY, pauses={"a": [(at(630), at(660))]})
    assert (found.full_ms, found.not_monitored_ms) == (90 * M, 30 * M)
    # both paused together: that time is not monitored for the component
    found = availability(
        both, [], [], *JANUARY, pauses={"a": [(at(0), at(60))], "b": [(at(30), at(90))]}
    )
    assert found.not_monitored_ms == 30 * M
