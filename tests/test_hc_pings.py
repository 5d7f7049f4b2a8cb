"""Healthchecks' ping protocol against a real `uptally serve`: the cron wrapper of Healthchecks'
docs run by a real shell with curl, and the PyPI ping clients runchecked and pyhealthchecks."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from pyhealthchecks.pyhealthchecks import HealthChecks

from tests.conftest import config_from
from tests.procs import serving
from uptally.clock import FakeClock
from uptally.config.loader import ConfigError, load_config
from uptally.heartbeats import PingInput
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import heartbeats as heartbeat_store
from uptally.store.database import Database
from uptally.web import monitor_reads

ADMIN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
PING_KEY = "pk-Qe4Zr9Tb2Wm7Xc5Vn8Ls3Jd"
BACKUP, REPORT, EDGE = (
    "5b7a3f52-8c1d-4e0a-9f6b-2d4c8e1a7b30",
    "0f6e2a91-3b7c-4d58-a1e4-9c2b7d5f8e06",
    "c3d9e7a1-6f2b-4a85-b0c7-1e8d4f2a9b53",
)
CONFIG = f"""
heartbeats: {{ping_key_env: HC_PING_KEY}}
monitors:
  - {{id: backup, kind: heartbeat, period: 1d, grace: 1h, uuid: {BACKUP}}}
  - {{id: cleanup, kind: heartbeat, period: 1d, slug: cleanup}}
  - {{id: report, kind: heartbeat, period: 1d, uuid: {REPORT}}}
  - {{id: dump, kind: heartbeat, period: 1d, slug: db-dump}}
  - {{id: edge, kind: heartbeat, period: 1d, uuid: {EDGE}}}
"""
AUTH = {"Authorization": f"Bearer {ADMIN}"}


in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop `hub` runs in


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One server for the module (each test uses its own monitors or their own pings)."""
    directory = tmp_path_factory.mktemp("hc")
    config = directory / "uptally.yaml"
    config.write_text(CONFIG)
    env = {"UPTALLY_ADMIN_TOKEN": ADMIN, "HC_PING_KEY": PING_KEY}
    async with serving(config, directory / "data", env=env) as (url, _):
        yield url


async def _get(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _state_becomes(http: aiohttp.ClientSession, base: str, monitor: str, want: str) -> None:
    async with asyncio.timeout(10):
        while (await _get(http, f"{base}/api/v1/monitors/{monitor}"))["state"] != want:
            await asyncio.sleep(0.05)


async def _pings(http: aiohttp.ClientSession, base: str, monitor: str) -> list[dict[str, Any]]:
    pings: list[dict[str, Any]] = (await _get(http, f"{base}/api/v1/monitors/{monitor}/pings"))[
        "pings"
    ]
    return pings


async def _cron(command: str, url: str) -> None:
    """A crontab line as Healthchecks' docs write it: the job, then curl with its exit status."""
    line = f"{command}; curl -fsS -m 10 --retry 5 -o /dev/null {url}/$?"
    process = await asyncio.create_subprocess_exec("sh", "-c", line)
    assert await process.wait() == 0


@in_module_loop
async def test_the_cron_wrapper_of_healthchecks_docs_by_uuid_and_by_slug(hub: str) -> None:
    async with aiohttp.ClientSession() as http:
        for monitor, url in (
            ("backup", f"{hub}/ping/{BACKUP}"),
            ("cleanup", f"{hub}/ping/{PING_KEY}/cleanup"),
        ):
            await _cron("true", url)
            await _state_becomes(http, hub, monitor, "up")
            await _cron("(exit 3)", url)
            await _state_becomes(http, hub, monitor, "down")
            await _cron("true", url)
            await _state_becomes(http, hub, monitor, "up")
            pings = await _pings(http, hub, monitor)
            assert [(p["kind"], p["exit_status"]) for p in pings] == [
                ("success", 0),
                ("fail", 3),
                ("success", 0),
            ]
            assert all(p["user_agent"].startswith("curl/") for p in pings)


@in_module_loop
async def test_runchecked_posts_the_job_output_and_reports_failure(hub: str) -> None:
    script = """
import sys
from runchecked import HealthCheckedContext
with HealthCheckedContext(sys.argv[1], enable_tty_output=False) as context:
    context.run(["sh", "-c", sys.argv[2]])
"""
    async with aiohttp.ClientSession() as http:
        for job, want in (("echo dumped 42 tables", "up"), ("echo disk full; exit 1", "down")):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, f"{hub}/ping/{REPORT}", job, env=dict(os.environ)
            )
            assert await process.wait() == 0
            await _state_becomes(http, hub, "report", want)
        failed, done = await _pings(http, hub, "report")
    assert (done["kind"], done["method"]) == ("success", "POST")
    assert "dumped 42 tables" in done["body"]
    assert failed["kind"] == "fail"
    assert "disk full" in failed["body"]
    assert "Exit 1" in failed["body"]


@in_module_loop
async def test_pyhealthchecks_pings_runs_paired_by_rid_and_log_changes_nothing(hub: str) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    base = f"{hub}/ping/{PING_KEY}/db-dump"
    async with aiohttp.ClientSession() as http:
        client = HealthChecks(ping_url=base, session=http)
        # Two runs overlap: each end is paired with its own start.
        for url in (
            f"{base}/start?rid={first}",
            f"{base}/start?rid={second}",
            f"{base}?rid={second}",
            f"{base}/log",
            f"{base}/1?rid={first}",
        ):
            client.update_url(url)
            assert await client.update_connection() is True
            await asyncio.sleep(0.02)  # the runs have lengths to tell apart (not a wait for state)
        await _state_becomes(http, hub, "dump", "down")
        pings = await _pings(http, hub, "dump")
        client.update_url(f"{base}/log")  # a log ping records, and judges nothing
        assert await client.update_connection() is True
        assert (await _get(http, f"{hub}/api/v1/monitors/dump"))["state"] == "down"
    ended_first, log, ended_second, _, started_first = pings
    assert [p["kind"] for p in pings] == ["fail", "log", "success", "start", "start"]
    assert (ended_first["rid"], ended_second["rid"]) == (first, second)
    assert log["duration_s"] is None
    assert started_first["duration_s"] is None
    assert ended_first["duration_s"] > ended_second["duration_s"] >= 0


@in_module_loop
async def test_answers_as_healthchecks_does(hub: str) -> None:
    async def ping(path: str, method: str = "GET") -> tuple[int, str]:
        async with http.request(method, hub + path) as response:
            return response.status, await response.text()

    async with aiohttp.ClientSession() as http:
        assert await ping(f"/ping/{EDGE}", "HEAD") == (200, "")
        assert await ping(f"/ping/{EDGE.upper()}/") == (200, "OK")
        assert await ping(f"/ping/{uuid.uuid4()}") == (404, "not found")
        assert await ping(f"/ping/{EDGE}/256") == (400, "invalid url format")
        assert await ping(f"/ping/{EDGE}?rid=nope") == (400, "invalid uuid format")
        assert await ping(f"/ping/{PING_KEY}/DB-dump") == (400, "invalid url format")
        assert await ping("/ping/wrong-key-wrong-key-wrong/db-dump") == (404, "not found")
        assert await ping(f"/ping/{PING_KEY}/nightly") == (404, "not found")
        assert await ping("/ping/wrong-key-wrong-key-wrong/nightly?create=1") == (404, "not found")
        # ?create=1 makes the monitor with Healthchecks' defaults, once.
        assert await ping(f"/ping/{PING_KEY}/nightly/start?create=1") == (201, "Created")
        assert await ping(f"/ping/{PING_KEY}/nightly?create=1", "POST") == (200, "OK")
        made = await _get(http, f"{hub}/api/v1/monitors/nightly")
        pings = await _pings(http, hub, "nightly")
    assert made["source"] == "api"
    assert made["state"] == "up"
    assert {k: made["config"][k] for k in ("slug", "period", "grace")} == {
        "slug": "nightly",
        "period": "86400000ms",
        "grace": "3600000ms",
    }
    assert [p["kind"] for p in pings] == ["success", "start"]
    assert pings[0]["duration_s"] is not None


def test_uuids_and_slugs_name_one_monitor_each() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from(
            f"""
monitors:
  - {{id: a, kind: heartbeat, period: 1d, uuid: {BACKUP}, slug: job}}
  - {{id: b, kind: heartbeat, period: 1d, uuid: {BACKUP.upper()}, slug: job}}
  - {{id: c, kind: heartbeat, period: 1d, slug: Not-A-Slug}}
"""
        )
    message = str(caught.value)
    assert "test.yaml:4: monitors[1].uuid: uuid already used by monitors[0]" in message
    assert "test.yaml:4: monitors[1].slug: slug already used by monitors[0]" in message
    assert "test.yaml:5: monitors[2].slug" in message


def test_a_weak_ping_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "uptally.yaml"
    config.write_text("heartbeats:\n  ping_key_env: HC_PING_KEY\n")
    assert load_config(config, {"HC_PING_KEY": PING_KEY}).heartbeats.ping_key_env == "HC_PING_KEY"
    with pytest.raises(ConfigError, match=r"uptally.yaml:2: heartbeats.ping_key_env: the ping key"):
        load_config(config, {"HC_PING_KEY": "password"})


async def test_a_run_started_before_a_restart_keeps_its_duration(
    db_url: str, clock: FakeClock
) -> None:
    """The start's rid is stored with the heartbeat: the end after a restart still pairs."""
    rid = str(uuid.uuid4())

    def runtime() -> Runtime:
        config = config_from(CONFIG)
        return Runtime(config, Database(db_url), clock=clock, metrics=Metrics(), run_probe=False)

    first = runtime()
    await first.start()
    await first.heartbeats.record("backup", PingInput("start", rid=rid))
    await first.stop()
    clock.advance(90_000)
    second = runtime()
    await second.start()
    try:
        await second.heartbeats.record("backup", PingInput("exit", 0, rid=rid))
        clock.advance(1000)
        await second.heartbeats.record("backup", PingInput("log", body=b"note"))
        row = second.heartbeats.row("backup")
        assert row is not None
        assert (row.last_ping_at, row.last_kind) == (clock.now_ms() - 1000, "exit")
        log, end, start = await monitor_reads.pings_of(second, "backup")
    finally:
        await second.stop()
    assert (end.kind, end.rid, end.duration_ms) == ("exit", rid, 90_000)
    assert (log.kind, log.body, log.duration_ms, start.duration_ms) == ("log", "note", None, None)
    # a crash repair from the stored pings does not take a log ping for an end
    repaired = heartbeat_store.repaired(row, {"log": clock.now_ms()})
    assert repaired.last_ping_at == row.last_ping_at
