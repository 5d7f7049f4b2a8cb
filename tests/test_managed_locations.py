"""Probe locations managed at runtime: made through the admin API with a generated token that
a real agent process connects with at once, rotated, and deleted once no monitor runs there."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from tests.conftest import config_from, serve_app
from tests.procs import start_agent
from tests.targets import HttpTarget, Response
from uptally.audit.log import AuditFilter, list_entries
from uptally.clock import SystemClock
from uptally.ids import weak_token
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.store.tables import results
from uptally.web.app import create_app

TOKEN = "adm-Lc4Wq9Rz2Xt7Mv1Hs6Kp"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FILE = """
site: {title: Locations}
locations:
  - {name: filed, token_env: UPTALLY_TEST_UNSET_PROBE_TOKEN}
monitors:
  - {id: filed, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h}
"""


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, body: Any = None, token: str = TOKEN
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers=headers
        ) as response:
            return response.status, (await response.json() if response.status != 204 else None)


@pytest.fixture
async def target() -> AsyncIterator[HttpTarget]:
    async with HttpTarget({"/": Response(200, b"OK")}) as server:
        yield server


@pytest.fixture
async def hub(db_url: str) -> AsyncIterator[tuple[Client, Runtime]]:
    runtime = Runtime(config_from(FILE), Database(db_url), clock=SystemClock(), metrics=Metrics())
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield Client(session, url), runtime
    await runtime.stop()


async def results_from(runtime: Runtime, location: str) -> int:
    async with runtime.db.connect() as conn:
        query = select(func.count()).select_from(results).where(results.c.location == location)
        return int((await conn.execute(query)).scalar_one())


async def test_an_agent_connects_with_the_token_of_a_location_made_through_the_api(
    hub: tuple[Client, Runtime], target: HttpTarget, tmp_path: Path
) -> None:
    api, runtime = hub
    status, made = await api.call("POST", "/api/v1/locations", {"name": "eu", "canaries": []})
    assert status == 201, made
    token = made["token"]
    assert weak_token(token) is None
    assert len(token) >= 43
    assert (made["source"], made["token_source"], made["version"]) == ("api", "generated", 1)
    assert "token_hash" not in made["config"]
    status, shown = await api.call("GET", "/api/v1/locations/eu")
    assert status == 200
    assert "token" not in shown
    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="location:eu"))
    assert [e.action for e in entries] == ["location.created"]
    assert token not in str(entries[0].details)
    assert hashlib.sha256(token.encode()).hexdigest() not in str(entries[0].details)

    monitor = {
        "id": "shop",
        "kind": "http",
        "url": target.url("/"),
        "interval": "1s",
        "locations": ["eu"],
    }
    assert (await api.call("POST", "/api/v1/monitors", monitor))[0] == 201
    agent = await start_agent(api.base, "eu", token, tmp_path / "queue")
    try:
        async with asyncio.timeout(30):
            while await results_from(runtime, "eu") == 0:
                await asyncio.sleep(0.1)
        status, probes = await api.call("GET", "/api/v1/probes")
        assert status == 200, probes
        assert {p["name"]: p["state"] for p in probes["probes"]}["eu"] == "up"

        # A wrong token is refused; a rotated token stops the old one at once.
        assert (await api.call("GET", "/api/v1/probes/assignments", token=token[::-1]))[0] == 401
        assert (await api.call("GET", "/api/v1/probes/assignments", token=token))[0] == 200
        status, rotated = await api.call("POST", "/api/v1/locations/eu/token")
        assert status == 200, rotated
        assert rotated["token"] != token
        assert (await api.call("GET", "/api/v1/probes/assignments", token=token))[0] == 401
        new = rotated["token"]
        assert (await api.call("GET", "/api/v1/probes/assignments", token=new))[0] == 200
    finally:
        agent.terminate()
        await agent.wait()

    status, refused = await api.call("DELETE", "/api/v1/locations/eu")
    assert (status, refused["error"]["code"]) == (409, "in_use")
    assert "monitors/shop" in refused["error"]["message"]
    assert (await api.call("DELETE", "/api/v1/monitors/shop"))[0] == 204
    assert (await api.call("DELETE", "/api/v1/locations/eu"))[0] == 204
    assert (await api.call("GET", "/api/v1/probes/assignments", token=new))[0] == 401
    assert (await api.call("GET", "/api/v1/locations/eu"))[0] == 404


async def test_tokens_are_not_given_and_file_locations_are_read_only(
    hub: tuple[Client, Runtime],
) -> None:
    api, _ = hub
    for body, key in [
        ({"name": "us", "token_env": "US_TOKEN"}, "/token_env"),
        ({"name": "us", "token_hash": "ab" * 32}, "/token_hash"),
    ]:
        status, refused = await api.call("POST", "/api/v1/locations", body)
        assert status == 422, refused
        assert refused["error"]["details"][0]["path"] == key
    status, refused = await api.call("POST", "/api/v1/locations", {"name": "local"})
    assert status == 422
    assert refused["error"]["details"][0]["path"] == "/name"
    status, refused = await api.call("POST", "/api/v1/locations", {"name": "filed"})
    assert status == 422
    assert "already exists" in refused["error"]["details"][0]["message"]
    status, refused = await api.call("PATCH", "/api/v1/locations/filed", {"canaries": []})
    assert (status, refused["error"]["code"]) == (409, "provisioned")

    status, _made = await api.call("POST", "/api/v1/locations", {"name": "us"})
    assert status == 201
    status, changed = await api.call("PUT", "/api/v1/locations/us", {"canaries": []})
    assert (status, changed["version"], changed["token_source"]) == (200, 2, "generated")
    status, changed = await api.call("PATCH", "/api/v1/locations/us", {"canaries": None})
    assert (status, changed["token_source"], changed["canaries"]) == (200, "generated", None)
    status, listed = await api.call("GET", "/api/v1/locations")
    assert [(x["name"], x["source"], x["token_source"]) for x in listed["locations"]] == [
        ("filed", "config", "env"),
        ("us", "api", "generated"),
    ]
