"""Config reloads (API and SIGHUP) apply a new config whole or refuse it whole, audit-logged."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import serve_app
from tests.procs import serving
from uptally.clock import FakeClock
from uptally.config import load_config
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "reload-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRST = "monitors: [{id: a, kind: heartbeat, period: 1h}]\n"
SECOND = "monitors: [{id: a, kind: heartbeat, period: 2h}, {id: b, kind: heartbeat, period: 1h}]\n"


@pytest.fixture
async def setup(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Runtime, Path, aiohttp.ClientSession, str]]:
    path = tmp_path / "uptally.yaml"
    path.write_text(FIRST)
    runtime = Runtime(
        load_config(path), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    runtime.config_path = path
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as s:
            yield runtime, path, s, url
    finally:
        await runtime.stop()


async def _post(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.post(url + "/api/v1/config/reload", headers=AUTH) as response:
        return response.status, await response.json()


async def _monitor_ids(session: aiohttp.ClientSession, url: str) -> list[str]:
    async with session.get(url + "/api/v1/monitors", headers=AUTH) as response:
        return [m["id"] for m in (await response.json())["monitors"]]


async def test_a_reload_applies_the_new_config_and_is_audit_logged(
    setup: tuple[Runtime, Path, aiohttp.ClientSession, str],
) -> None:
    runtime, path, session, url = setup
    path.write_text(SECOND)
    status, body = await _post(session, url)
    assert status == 200, body
    assert body["changes"]["monitors"] == {"added": ["b"], "changed": ["a"]}
    assert await _monitor_ids(session, url) == ["a", "b"]
    assert runtime.heartbeats.token("b") is not None
    async with session.get(url + "/api/v1/audit?action=config.*&order=asc", headers=AUTH) as r:
        entries = (await r.json())["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("config.loaded", "system"),
        ("config.reloaded", "bootstrap-token"),
    ]


async def test_a_bad_or_restart_only_config_is_refused_whole(
    setup: tuple[Runtime, Path, aiohttp.ClientSession, str],
) -> None:
    runtime, path, session, url = setup
    path.write_text(SECOND + "components: [{id: c, monitors: [ghost]}]\n")
    status, body = await _post(session, url)
    assert (status, body["error"]["code"]) == (422, "invalid_config")
    assert "unknown monitor 'ghost'" in body["error"]["message"]
    path.write_text(SECOND + "security: {max_body: 1KiB}\n")
    status, body = await _post(session, url)
    assert status == 409
    assert "security can change only with a restart" in body["error"]["message"]
    assert await _monitor_ids(session, url) == ["a"]
    assert runtime.config.monitor("b") is None


@pytest.mark.slow
async def test_sighup_reloads_a_running_serve(tmp_path: Path) -> None:
    config = tmp_path / "uptally.yaml"
    config.write_text(FIRST)
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    async with (
        serving(config, tmp_path / "data", env=env) as (url, process),
        aiohttp.ClientSession() as session,
    ):
        assert await _monitor_ids(session, url) == ["a"]
        config.write_text(SECOND)
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(20):
            while await _monitor_ids(session, url) != ["a", "b"]:
                await asyncio.sleep(0.05)  # polling for the outcome, bounded by the timeout
    assert "config reloaded" in process.output  # type: ignore[attr-defined]
