"""Every admin endpoint with a time window honours `since` and `until`, alone and together."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

import uptally.web
from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock, iso
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "time-window-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOUR = 3_600_000
MINUTE = 60_000
CONFIG = """
site: {title: Acme, url: "https://status.acme.test"}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: API, monitors: [api]}
incidents:
  commitments: {first_post: 10m, update_every: 10m}
"""


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def session(runtime: Runtime) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as http:
        yield http, url


async def call(
    session: tuple[aiohttp.ClientSession, str], method: str, path: str, body: Any = None
) -> Any:
    http, base = session
    async with http.request(method, base + path, json=body, headers=AUTH) as response:
        payload = await response.json()
        assert response.status in (200, 201), (method, path, payload)
        return payload


def _hours(prefix: str, names: list[str]) -> set[int]:
    return {int(name.removeprefix(prefix)) for name in names if name.startswith(prefix)}


# Each endpoint: its path and how to read back which hour's rows it answered with.
Reader = Callable[[Any], set[int]]
ENDPOINTS: dict[str, tuple[str, Reader]] = {
    "results": (
        "/api/v1/monitors/api/results?limit=1000",
        lambda body: _hours("r", [r["id"] for r in body["results"]]),
    ),
    "outages": (
        "/api/v1/outages",
        lambda body: _hours("o", [o["reason"] for o in body["outages"]]),
    ),
    "audit": (
        "/api/v1/audit?action=outage.recorded",
        lambda body: _hours("o", [e["details"]["reason"] for e in body["entries"]]),
    ),
    "maintenance": (
        "/api/v1/maintenance",
        lambda body: _hours("m", [w["title"] for w in body["maintenance"]]),
    ),
    "sla exclusions": (
        "/api/v1/sla/exclusions",
        lambda body: _hours("x", [x["reason"] for x in body["exclusions"]]),
    ),
    "incidents": (
        "/api/v1/incidents?status=all",
        lambda body: _hours("i", [i["title"] for i in body["incidents"]]),
    ),
    "commitments": (  # only counts: of the first posts due in the window, how many were met
        "/api/v1/commitments",
        lambda body: {body["summary"].get("first_post", {}).get("met", 0)},
    ),
}


async def _store_rows_at_hours_1_2_3(
    session: tuple[aiohttp.ClientSession, str], runtime: Runtime, clock: FakeClock
) -> int:
    """Rows of every kind around 01:00, 02:00 and 03:00 (each lasting 10 to 30 minutes)."""
    start = clock.now_ms()
    for hour in (1, 2, 3):
        clock.now = at = start + hour * HOUR
        runtime.ingest.submit(Result(f"r{hour}", "api", "local", at, True, 5.0, None, ""))
        await runtime.ingest.drained()
        made = await call(
            session, "POST", "/api/v1/incidents", {"title": f"i{hour}", "message": "Looking."}
        )
        await call(
            session,
            "POST",
            "/api/v1/maintenance",
            {
                "title": f"m{hour}",
                "components": ["api"],
                "start": iso(at + 20 * MINUTE),
                "end": iso(at + 30 * MINUTE),
            },
        )
        clock.advance(5 * MINUTE)  # the first post (due +10 min) is met
        await call(
            session,
            "POST",
            f"/api/v1/incidents/{made['id']}/updates",
            {"status": "resolved", "message": "Fixed."},
        )
        clock.advance(10 * MINUTE)  # outages and exclusions are recorded once they are over
        span = {"start": iso(at), "end": iso(at + 10 * MINUTE)}
        await call(
            session, "POST", "/api/v1/outages", {"monitor": "api", **span, "reason": f"o{hour}"}
        )
        await call(session, "POST", "/api/v1/sla/exclusions", {**span, "reason": f"x{hour}"})
    clock.now = start + 4 * HOUR
    return start


async def test_since_and_until_bound_every_time_window_alone_and_together(
    session: tuple[aiohttp.ClientSession, str], runtime: Runtime, clock: FakeClock
) -> None:
    start = await _store_rows_at_hours_1_2_3(session, runtime, clock)
    since = iso(start + HOUR + 30 * MINUTE)  # 01:30
    until = iso(start + 2 * HOUR + 30 * MINUTE)  # 02:30
    cases = {
        "": {1, 2, 3},
        f"since={since}": {2, 3},
        f"until={until}": {1, 2},
        f"since={since}&until={until}": {2},
        "since=2026-01-01T00:00:00Z&until=2030-01-01T00:00:00Z": {1, 2, 3},
        "since=2026-01-01T00:00:00Z": {1, 2, 3},
        "until=2026-01-01T00:00:00Z": set(),
        f"since={until}&until={since}": set(),  # an empty window, not an error
    }
    wrong = []
    for name, (path, read) in ENDPOINTS.items():
        join = "&" if "?" in path else "?"
        for query, hours in cases.items():
            got = read(await call(session, "GET", path + (join + query if query else "")))
            expected = {len(hours)} if name == "commitments" else hours
            if got != expected:
                wrong.append(f"{name} ?{query}: {sorted(got)}, not {sorted(expected)}")
    assert not wrong, "\n".join(wrong)


def test_every_query_parameter_reads_its_own_name() -> None:
    """The root of the since/until mix-up: a parameter must never take another one's alias."""
    checked = 0
    for module in pkgutil.iter_modules(uptally.web.__path__):
        router = getattr(importlib.import_module(f"uptally.web.{module.name}"), "router", None)
        for route in router.routes if isinstance(router, APIRouter) else []:
            if isinstance(route, APIRoute):
                for param in route.dependant.query_params:
                    assert param.alias == param.name, (route.path, param.name, param.alias)
                    checked += 1
    assert checked > 20
