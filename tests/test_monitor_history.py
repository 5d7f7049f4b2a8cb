"""A monitor's history survives its edits and its deletion: configuration changes listed from the
audit log (API and file), marked on the status page without what or who, results and outages
of a deleted monitor still answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import serve_app
from uptally.clock import FakeClock
from uptally.config import load_config
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-Pq8Zt3Lw6Xk1Rv9Nc4Hy"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FILE = """
site: {title: History}
monitors:
  - {id: filed, kind: heartbeat, period: 1h}
components:
  - {id: platform, monitors: [filed]}
"""


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers=AUTH
        ) as response:
            if response.status == 204:
                return 204, None
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def hub(db_url: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Api, Runtime]]:
    path = tmp_path / "uptally.yaml"
    path.write_text(FILE)
    runtime = Runtime(
        load_config(path), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    runtime.config_path = path
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as s:
            yield Api(s, url), runtime
    finally:
        await runtime.stop()


async def test_the_changes_of_a_monitor_are_listed_newest_first_and_outlive_its_deletion(
    hub: tuple[Api, Runtime],
) -> None:
    api, _ = hub
    body = {"id": "backup", "kind": "heartbeat", "period": "1h"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    status, _ = await api.call("PATCH", "/api/v1/monitors/backup", {"period": "2h"})
    assert status == 200
    assert (await api.call("DELETE", "/api/v1/monitors/backup"))[0] == 204

    status, listed = await api.call("GET", "/api/v1/monitors/backup/changes")
    assert status == 200
    changes = listed["changes"]
    assert [c["action"] for c in changes] == [
        "monitor.deleted",
        "monitor.updated",
        "monitor.created",
    ]
    assert {c["source"] for c in changes} == {"api"}
    assert {c["actor"] for c in changes} == {"bootstrap-token"}
    assert changes[1]["changes"]["/period"] == {"before": "3600000ms", "after": "7200000ms"}
    assert changes[0]["at"].endswith("Z")

    status, error = await api.call("GET", "/api/v1/monitors/never-was/changes")
    assert status == 404
    assert error["error"]["message"] == "no monitor 'never-was'"


async def test_a_file_reload_that_changes_a_monitor_is_one_of_its_changes(
    hub: tuple[Api, Runtime], tmp_path: Path
) -> None:
    api, _ = hub
    (tmp_path / "uptally.yaml").write_text(FILE.replace("period: 1h", "period: 3h"))
    assert (await api.call("POST", "/api/v1/config/reload"))[0] == 200

    status, listed = await api.call("GET", "/api/v1/monitors/filed/changes")
    assert status == 200
    actions = [(c["action"], c["source"], c["changes"]) for c in listed["changes"]]
    # Newest first: the reload that changed it, then the first load that brought it.
    assert actions == [("config.reloaded", "config", None), ("config.loaded", "config", None)]


async def test_a_deleted_monitor_keeps_its_results_and_outages_and_is_listed_as_deleted(
    hub: tuple[Api, Runtime], clock: FakeClock
) -> None:
    api, _ = hub
    body = {"id": "nightly", "kind": "heartbeat", "period": "1d"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    start = clock.now_ms() - 3_600_000
    outage = {
        "monitor": "nightly",
        "start": _iso(start),
        "end": _iso(start + 600_000),
        "reason": "backfilled",
    }
    status, made = await api.call("POST", "/api/v1/outages", outage)
    assert status == 201, made
    assert made["monitor_deleted"] is False
    assert (await api.call("DELETE", "/api/v1/monitors/nightly"))[0] == 204

    status, outages = await api.call("GET", "/api/v1/outages?monitor=nightly")
    assert status == 200
    assert [(o["id"], o["monitor_deleted"]) for o in outages["outages"]] == [(made["id"], True)]
    status, results = await api.call("GET", "/api/v1/monitors/nightly/results")
    assert (status, results) == (200, {"results": []})
    status, error = await api.call("GET", "/api/v1/monitors/nightly")
    assert (status, error["error"]["code"]) == (404, "deleted")

    status, deleted = await api.call("GET", "/api/v1/monitors?deleted=true")
    assert status == 200
    (tombstone,) = deleted["monitors"]
    assert tombstone["id"] == "nightly"
    assert tombstone["kind"] == "heartbeat"
    assert tombstone["deleted_by"] == "bootstrap-token"
    assert tombstone["deleted_at"] == _iso(clock.now_ms())

    # Made again, it is no longer a tombstone; a monitor that never was still answers 404.
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    assert (await api.call("GET", "/api/v1/monitors?deleted=true"))[1] == {"monitors": []}
    assert (await api.call("GET", "/api/v1/outages?monitor=never-was"))[0] == 404
    assert (await api.call("GET", "/api/v1/monitors/never-was/results"))[0] == 404


async def test_the_status_page_marks_the_day_a_monitor_was_reconfigured_but_not_how_or_by_whom(
    hub: tuple[Api, Runtime],
) -> None:
    api, _ = hub
    body = {"id": "checkout", "kind": "heartbeat", "period": "1h", "name": "Checkout"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    component = {"id": "shop", "name": "Shop", "monitors": ["checkout"]}
    assert (await api.call("POST", "/api/v1/components", component))[0] == 201
    assert (await api.call("PATCH", "/api/v1/monitors/checkout", {"period": "45m"}))[0] == 200

    page = ""

    async def marked() -> bool:
        nonlocal page
        async with api.session.get(api.base + "/") as response:
            page = await response.text()
        return "configuration changed at" in page

    await eventually(marked)
    assert page.count(' changed"') == 1  # one day of the shop's bar, none of the platform's
    assert "a monitor of this component was reconfigured" in page
    assert "configuration changes</summary>" in page
    assert "45m" not in page
    assert "2700000" not in page
    assert "bootstrap-token" not in page


def _iso(ms: int) -> str:
    from uptally.clock import iso

    found = iso(ms)
    assert found is not None
    return found


async def test_ids_and_locations_no_database_can_hold_answer_404_and_422_not_an_error(
    hub: tuple[Api, Runtime],
) -> None:
    api, _ = hub
    body = {"id": "gone", "kind": "heartbeat", "period": "1h"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    assert (await api.call("DELETE", "/api/v1/monitors/gone"))[0] == 204
    status, error = await api.call("GET", "/api/v1/monitors/gone/results?location=a%00b")
    assert status == 422, error
    for path in ("/api/v1/monitors/a%00b/changes", "/api/v1/outages?monitor=a%00b"):
        assert (await api.call("GET", path))[0] == 404, path
