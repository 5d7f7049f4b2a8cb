"""Check now (`POST /api/v1/monitors/{id}/check`) and test before save (`POST …/monitors/test`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from tests.conftest import config_from, serve_app
from tests.procs import Hub, start_agent
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.store.tables import results as results_table
from uptally.web.app import create_app

TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EU_TOKEN = "eu-probe-3Jd8Qm1Xc5Vb7Nt2Lk9Pw4"  # probe tokens need 128 bits (ids.weak_token)


class Target:
    """An HTTP service on 127.0.0.1 that counts its requests."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="ok")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    service = Target()
    app = web.Application()
    app.router.add_get("/", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    service.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield service
    await runner.cleanup()


def config_text(port: int, allow_internal: bool = True) -> str:
    security = 'security: {allow_internal: ["127.0.0.0/8"]}\n' if allow_internal else ""
    return f"""
site: {{title: Now}}
{security}monitors:
  - {{id: web, kind: http, url: "http://127.0.0.1:{port}/", interval: 1h}}
  - {{id: dormant, kind: http, url: "http://127.0.0.1:{port}/", enabled: false}}
  - {{id: held, kind: http, url: "http://127.0.0.1:{port}/"}}
  - {{id: job, kind: heartbeat, period: 1h}}
"""


Http = tuple[aiohttp.ClientSession, str, Runtime]


async def _served(text: str, db_url: str) -> AsyncIterator[Http]:
    runtime = Runtime(config_from(text), Database(db_url), metrics=Metrics(), run_probe=False)
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as s:
            yield s, url, runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def http(target: Target, db_url: str) -> AsyncIterator[Http]:
    async for served in _served(config_text(target.port), db_url):
        yield served


async def post(http: Http, path: str, body: Any = None) -> tuple[int, Any]:
    session, base, _ = http
    async with session.post(f"{base}{path}", json=body, headers=AUTH) as response:
        return response.status, await response.json()


async def get(http: Http, path: str) -> Any:
    session, base, _ = http
    async with session.get(f"{base}{path}", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def stored(runtime: Runtime) -> int:
    async with runtime.db.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(results_table))).scalar())


# -- check now ---------------------------------------------------------------------------------


async def test_check_now_runs_the_monitor_locally_and_stores_the_result(
    http: Http, target: Target
) -> None:
    status, body = await post(http, "/api/v1/monitors/web/check")
    assert status == 200, body
    [result] = body["results"]
    assert result["location"] == "local"
    assert result["monitor"] == "web"
    assert result["ok"] is True
    assert result["error"] is None
    assert result["latency_ms"] > 0
    assert target.hits == 1
    listed = await get(http, "/api/v1/monitors/web/results")
    assert result["id"] in [r["id"] for r in listed["results"]]
    status_now = await get(http, "/api/v1/monitors/web")
    assert status_now["state"] == "up"  # evaluated like any other result
    audit = await get(http, "/api/v1/audit?action=monitor.checked")
    [entry] = audit["entries"]
    assert entry["target"] == "monitor:web"
    assert entry["actor"]


async def test_check_now_refuses_what_cannot_be_checked_now(http: Http) -> None:
    status, body = await post(http, "/api/v1/monitors/nope/check")
    assert status == 404, body
    status, body = await post(http, "/api/v1/monitors/job/check")
    assert (status, body["error"]["message"]) == (
        409,
        "a heartbeat monitor is checked by its pings",
    )
    status, body = await post(http, "/api/v1/monitors/dormant/check")
    assert status == 409
    assert "disabled" in body["error"]["message"]
    _, _, runtime = http
    status, body = await post(http, "/api/v1/monitors/held/pause")
    assert status == 200, body
    status, body = await post(http, "/api/v1/monitors/held/check")
    assert status == 409
    assert "paused" in body["error"]["message"]
    status, body = await post(http, "/api/v1/monitors/web/check?wait=61")
    assert status == 422, body
    assert await stored(runtime) == 0


# -- test before save --------------------------------------------------------------------------


async def test_a_monitor_body_runs_once_and_nothing_is_kept(http: Http, target: Target) -> None:
    _, _, runtime = http
    audit_before = await get(http, "/api/v1/audit")
    url = f"http://127.0.0.1:{target.port}/"
    body = {"kind": "http", "url": url, "locations": ["eu"], "expect": ["status == 200"]}
    status, answer = await post(http, "/api/v1/monitors/test", body)
    assert status == 200, answer
    result = answer["result"]
    assert result["ok"] is True
    assert result["error"] is None
    assert result["latency_ms"] > 0
    assert {step["name"] for step in result["steps"]} >= {"connect", "ttfb"}
    assert target.hits == 1
    failing = {**body, "expect": ['body contains "maintenance"']}
    status, answer = await post(http, "/api/v1/monitors/test", failing)
    assert status == 200, answer
    assert answer["result"]["ok"] is False
    assert answer["result"]["error"] == "assertion"
    assert "maintenance" in answer["result"]["message"]
    assert await stored(runtime) == 0
    assert await get(http, "/api/v1/audit") == audit_before
    assert runtime.config.monitor("test") is None


async def test_an_invalid_body_answers_422_with_json_pointers(http: Http) -> None:
    body = {"kind": "http", "url": "http://127.0.0.1:9/", "expect": ["status =="], "colour": 1}
    status, answer = await post(http, "/api/v1/monitors/test", body)
    assert status == 422, answer
    details = {d["path"]: d["message"] for d in answer["error"]["details"]}
    assert "/expect/0" in details
    assert details["/colour"] == "unknown key 'colour'"  # the config loader's words
    status, answer = await post(http, "/api/v1/monitors/test", {"kind": "smtp"})
    assert status == 422
    assert answer["error"]["details"][0]["path"] == "/kind"
    assert "unknown kind 'smtp'" in answer["error"]["details"][0]["message"]
    status, answer = await post(http, "/api/v1/monitors/test", {"kind": "tcp", "id": "bad id"})
    paths = {d["path"] for d in answer["error"]["details"]}
    assert status == 422
    assert paths == {"/id", "/host", "/port"}
    status, answer = await post(http, "/api/v1/monitors/test", {"url": "http://127.0.0.1:9/"})
    assert status == 422
    assert answer["error"]["details"] == [
        {"path": "/kind", "message": "missing required key 'kind'"}
    ]
    status, answer = await post(http, "/api/v1/monitors/test", ["not", "a", "monitor"])
    assert status == 422
    assert answer["error"]["details"]


async def test_the_ssrf_guard_refuses_internal_targets_unless_allowed(
    target: Target, db_url: str
) -> None:
    async for served in _served(config_text(target.port, allow_internal=False), db_url):
        url = f"http://127.0.0.1:{target.port}/"
        status, answer = await post(served, "/api/v1/monitors/test", {"kind": "http", "url": url})
        assert status == 422, answer
        message = answer["error"]["message"]
        assert "SSRF guard" in message
        assert "127.0.0.1 is not a public address" in message
        assert "security.allow_internal" in message
        tcp = {"kind": "tcp", "host": "localhost", "port": target.port}
        status, answer = await post(served, "/api/v1/monitors/test", tcp)
        assert status == 422
        assert "not a public address" in answer["error"]["message"]
        assert target.hits == 0


# -- check now with a remote agent (real processes) --------------------------------------------


@pytest.mark.slow
async def test_check_now_asks_the_agent_and_waits_for_its_result(
    tmp_path: Path, target: Target
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(f"""
site: {{title: Fleet}}
locations:
  - {{name: eu, token_env: NOW_EU, canaries: []}}
monitors:
  - id: api
    kind: http
    url: http://127.0.0.1:{target.port}/
    interval: 1h
    locations: [local, eu]
""")
    hub = Hub(config, tmp_path / "data", {"NOW_EU": EU_TOKEN, "UPTALLY_ADMIN_TOKEN": TOKEN})
    await hub.start()
    agent = await start_agent(hub.url, "eu", EU_TOKEN, tmp_path / "q-eu", log=tmp_path / "a.log")
    try:
        async with aiohttp.ClientSession() as session:
            served: Http = (session, hub.url, None)  # type: ignore[assignment]
            await _agent_seen(served, "eu")
            started = time.monotonic()
            status, body = await post(served, "/api/v1/monitors/api/check")
            elapsed = time.monotonic() - started
            assert status == 200, body
            by_location = {r["location"]: r for r in body["results"]}
            assert set(by_location) == {"local", "eu"}
            assert all(r["ok"] is True for r in by_location.values()), body
            assert elapsed < 5, f"check now took {elapsed:.1f} s"
            listed = await get(served, "/api/v1/monitors/api/results?location=eu")
            assert by_location["eu"]["id"] in [r["id"] for r in listed["results"]]

            agent.terminate()
            await agent.wait()
            status, body = await post(served, "/api/v1/monitors/api/check?wait=0.5")
            assert status == 200, body
            by_location = {r["location"]: r for r in body["results"]}
            assert by_location["local"]["ok"] is True
            assert by_location["eu"] == {
                "id": None,
                "monitor": "api",
                "location": "eu",
                "at": None,
                "ok": None,
                "latency_ms": None,
                "error": "timeout",
                "message": "the probe did not report within 0.5 s",
            }

            # An agent's waiting long poll does not hold up the hub's shutdown.
            agent = await start_agent(hub.url, "eu", EU_TOKEN, tmp_path / "q-eu")
            await _agent_polling(hub, agent)
            started = time.monotonic()
            assert await hub.stop() == 0
            assert time.monotonic() - started < 4
    finally:
        if agent.returncode is None:
            agent.terminate()
            await agent.wait()
        if hub.process is not None and hub.process.returncode is None:
            assert await hub.stop() == 0


async def _agent_polling(hub: Hub, agent: asyncio.subprocess.Process) -> None:
    """Until the agent keeps a request for run requests waiting at the hub."""
    async with aiohttp.ClientSession() as session:
        served: Http = (session, hub.url, None)  # type: ignore[assignment]
        await _agent_seen(served, "eu")
        # A check now answered proves that its long poll is in place.
        status, body = await post(served, "/api/v1/monitors/api/check")
        assert status == 200, body
        assert all(r["ok"] for r in body["results"]), body
    assert agent.returncode is None


async def _agent_seen(http: Http, location: str) -> None:
    """Until the hub has heard from the location's agent (with a deadline)."""
    async with asyncio.timeout(30):
        while True:
            probes = await get(http, "/api/v1/probes")
            if any(p["name"] == location and p["state"] == "up" for p in probes["probes"]):
                return
            await asyncio.sleep(0.1)
