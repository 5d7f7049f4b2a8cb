"""A large batch through the API: one audited change per monitor, in order, in one chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.targets import HttpTarget, Response
from uptally import audit
from uptally.audit.log import AuditFilter, list_entries
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import managed as managed_store
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-Qw8Zr3Tk6Yp1Lm4Nx7Vb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT = 300


@pytest.fixture
async def hub(db_url: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str, Runtime, str]]:
    async with HttpTarget({"/a": Response(200, b"OK")}) as target:
        config = config_from("site: {title: Batch}\nsecurity: {allow_internal: [127.0.0.0/8]}\n")
        runtime = Runtime(config, Database(db_url), clock=SystemClock(), metrics=Metrics())
        await runtime.start()
        async with (
            serve_app(create_app(runtime, TOKEN)) as url,
            aiohttp.ClientSession(headers=AUTH) as session,
        ):
            yield session, url, runtime, target.url("/a")
        await runtime.stop()


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as response:
        return response.status, (await response.json() if response.status != 204 else None)


async def test_a_batch_stores_and_audits_each_monitor_in_order(
    hub: tuple[aiohttp.ClientSession, str, Runtime, str],
) -> None:
    session, base, runtime, target = hub
    first = {"id": "m000", "kind": "http", "url": target, "interval": "1h"}
    assert (await call(session, "POST", f"{base}/api/v1/monitors", first))[0] == 201
    assert (await call(session, "DELETE", f"{base}/api/v1/monitors/m000"))[0] == 204
    async with runtime.db.connect() as conn:
        seen = await managed_store.revision(conn)
    documents = [
        {"id": f"m{i:03d}", "kind": "http", "url": target, "interval": "1h"} for i in range(COUNT)
    ]
    status, made = await call(
        session, "POST", f"{base}/api/v1/monitors:batch", {"monitors": documents}
    )
    assert status == 201, made
    # m000 lives again: its row's third version; the others are new.
    assert [m["version"] for m in made["monitors"]] == [3] + [1] * (COUNT - 1)
    assert {m.id for m in runtime.config.monitors} == {d["id"] for d in documents}

    async with runtime.db.connect() as conn:
        rows = await managed_store.changed_since(conn, seen)
        entries = await list_entries(
            conn, AuditFilter(action="monitor.created", limit=1000, newest_first=False)
        )
        report = await audit.verify(conn)
    assert [r.id for r in rows] == [d["id"] for d in documents]
    assert [r.revision for r in rows] == list(range(seen + 1, seen + COUNT + 1))
    made_now = entries[1:]  # the first is m000's first life
    assert [e.target for e in made_now] == [f"monitor:{d['id']}" for d in documents]
    assert [e.seq for e in made_now] == list(range(made_now[0].seq, made_now[0].seq + COUNT))
    assert [e.details["version"] for e in made_now[:2]] == [3, 1]
    assert made_now[1].details["changes"]["/url"] == {"before": None, "after": target}
    assert report.ok, report.problem

    # A problem anywhere in a large batch is named at its index, and nothing is stored.
    more = [{**d, "id": f"n{i:03d}"} for i, d in enumerate(documents)]
    more[250] = {**more[250], "interval": "fast"}
    more[260] = {**more[260], "id": "m007"}
    status, refused = await call(
        session, "POST", f"{base}/api/v1/monitors:batch", {"monitors": more}
    )
    assert status == 422
    assert {d["path"] for d in refused["error"]["details"]} == {
        "/monitors/250/interval",
        "/monitors/260/id",
    }
    assert runtime.config.monitor("n000") is None
