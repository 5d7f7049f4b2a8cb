"""The hub's side of remote probes over real HTTP: tokens, assignments, ingestion, liveness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import outbox as outbox_store
from uptally.store import probes as probe_store
from uptally.store import results as result_store
from uptally.store.database import Database
from uptally.web.app import create_app

ADMIN = {"Authorization": "Bearer admin-token"}
EU = {"Authorization": "Bearer eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb"}
US = {"Authorization": "Bearer us-probe-6Hd0Pj5Tc3Qw9Ue2Xa7Mk4"}

CONFIG = """
site: {title: Fleet}
locations:
  - {name: eu, token_env: TEST_EU_TOKEN, canaries: ["tcp://127.0.0.1:9"]}
  - {name: us, token_env: TEST_US_TOKEN}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", locations: [eu, us], confirm: 1,
     interval: 10s}
  - {id: eu-only, kind: tcp, host: 127.0.0.1, port: 9, locations: [eu], interval: 10s}
  - {id: hub-only, kind: tcp, host: 127.0.0.1, port: 9}
"""


@pytest.fixture
async def runtime(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("TEST_EU_TOKEN", "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb")
    monkeypatch.setenv("TEST_US_TOKEN", "us-probe-6Hd0Pj5Tc3Qw9Ue2Xa7Mk4")
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with (
        serve_app(create_app(runtime, "admin-token")) as url,
        aiohttp.ClientSession() as session,
    ):
        yield session, url


def batch(
    clock: FakeClock, location: str, results: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {"location": location, "sent_at": clock.now_ms(), "results": results, **extra}


def item(n: int, at: int, ok: bool, monitor: str = "api") -> dict[str, Any]:
    return {
        "id": f"{monitor}-{n}",
        "monitor": monitor,
        "at": at,
        "ok": ok,
        "latency_ms": 3.0,
        "error": None if ok else "timeout",
        "message": "" if ok else "timed out",
    }


async def post(
    http: tuple[aiohttp.ClientSession, str], body: Any, headers: dict[str, str]
) -> tuple[int, Any]:
    session, base = http
    async with session.post(
        f"{base}/api/v1/probes/results", json=body, headers=headers
    ) as response:
        return response.status, await response.json()


async def test_a_wrong_or_missing_token_gets_401(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    for headers in ({}, {"Authorization": "Bearer nope"}, ADMIN):
        async with session.get(f"{base}/api/v1/probes/assignments", headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"


async def test_an_agent_sees_only_its_own_assignments_and_gets_304_while_they_hold(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = http
    async with session.get(f"{base}/api/v1/probes/assignments", headers=EU) as response:
        assert response.status == 200
        body = await response.json()
        etag = response.headers["ETag"]
    assert body["location"] == "eu"
    assert sorted(m["id"] for m in body["monitors"]) == ["api", "eu-only"]
    assert body["canaries"] == ["tcp://127.0.0.1:9"]
    async with session.get(
        f"{base}/api/v1/probes/assignments", headers={**EU, "If-None-Match": etag}
    ) as response:
        assert response.status == 304
    async with session.get(f"{base}/api/v1/probes/assignments", headers=US) as response:
        assert [m["id"] for m in (await response.json())["monitors"]] == ["api"]


async def test_results_are_ingested_once_and_decide_per_location_state(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    now = clock.now_ms()
    status, body = await post(
        http, batch(clock, "eu", [item(1, now, True), item(2, now + 1000, False)]), EU
    )
    assert (status, body["accepted"], body["duplicates"]) == (200, 2, 0)
    status, body = await post(
        http, batch(clock, "eu", [item(1, now, True), item(2, now + 1000, False)]), EU
    )
    assert (status, body["accepted"], body["duplicates"]) == (200, 0, 2)
    await post(
        http,
        batch(
            clock,
            "us",
            [
                {**item(1, now, True), "id": "us-1"},
                {**item(2, now + 1000, True), "id": "us-2"},
            ],
        ),
        US,
    )
    session, base = http
    async with session.get(f"{base}/api/v1/monitors/api", headers=ADMIN) as response:
        monitor = await response.json()
    assert monitor["state"] == "degraded"  # consensus all: eu sees it down, us does not
    assert monitor["locations"]["eu"]["state"] == "down"
    assert monitor["locations"]["us"]["state"] == "up"
    async with runtime.db.connect() as conn:
        stored = await result_store.list_results(conn, "api")
    assert sorted(r.id for r in stored) == ["api-1", "api-2", "us-1", "us-2"]


async def test_a_token_cannot_push_for_another_location(
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    status, body = await post(http, batch(clock, "us", [item(1, clock.now_ms(), True)]), EU)
    assert status == 403
    assert body["error"]["code"] == "forbidden"


async def test_results_for_unassigned_monitors_are_refused_with_403_and_counted(
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    now = clock.now_ms()
    results = [
        item(1, now, True),
        item(2, now, True, monitor="hub-only"),
        item(3, now, True, monitor="eu-only"),
    ]
    status, body = await post(http, batch(clock, "us", results), US)
    assert status == 403
    assert sorted(body["rejected"]) == ["eu-only-3", "hub-only-2"]
    session, base = http
    async with session.get(f"{base}/api/v1/probes", headers=ADMIN) as response:
        probes = {p["name"]: p for p in (await response.json())["probes"]}
    assert probes["us"]["rejected_total"] == 2
    async with session.get(f"{base}/metrics") as response:
        assert (
            'uptally_probe_results_total{location="us",outcome="unassigned"} 2.0'
            in await response.text()
        )


async def test_a_skewed_probe_clock_is_corrected_and_said(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    agent_now = clock.now_ms() + 60_000  # the agent's clock runs a minute fast
    body = {"location": "eu", "sent_at": agent_now, "results": [item(1, agent_now - 5000, True)]}
    status, answer = await post(http, body, EU)
    assert (status, answer["corrected"], answer["clock_offset_ms"]) == (200, True, -60_000)
    async with runtime.db.connect() as conn:
        [stored] = await result_store.list_results(conn, "api")
    assert stored.at == clock.now_ms() - 5000


async def test_a_skewed_probe_clock_can_be_refused(
    db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EU_TOKEN", "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb")
    config = config_from(CONFIG + "probe: {clock_skew: reject, max_clock_skew: 2s}\n")
    runtime = Runtime(config, Database(db_url), clock=clock, metrics=Metrics(), run_probe=False)
    await runtime.start()
    try:
        async with (
            serve_app(create_app(runtime, "admin-token")) as url,
            aiohttp.ClientSession() as session,
        ):
            body = {
                "location": "eu",
                "sent_at": clock.now_ms() - 10_000,
                "results": [item(1, 0, True)],
            }
            async with session.post(
                f"{url}/api/v1/probes/results", json=body, headers=EU
            ) as response:
                assert response.status == 422
                error = (await response.json())["error"]
        assert error["code"] == "clock_skew"
        assert "+10.0s off" in error["message"]
    finally:
        await runtime.stop()


async def test_reports_keep_probe_health_drops_and_raise_events(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    report = {
        "version": "9.9",
        "queue_depth": 12,
        "degraded": True,
        "canaries": [{"target": "tcp://127.0.0.1:9", "ok": False, "error": "connect_refused"}],
        "dropped": [
            {
                "monitor": "api",
                "first_at": clock.now_ms() - 60_000,
                "last_at": clock.now_ms() - 50_000,
                "count": 40,
                "failures": 3,
            }
        ],
    }
    status, _ = await post(http, batch(clock, "eu", [], agent=report), EU)
    assert status == 200
    session, base = http
    async with session.get(f"{base}/api/v1/probes", headers=ADMIN) as response:
        probes = {p["name"]: p for p in (await response.json())["probes"]}
    eu = probes["eu"]
    assert (eu["state"], eu["version"], eu["queue_depth"], eu["dropped_total"]) == (
        "degraded",
        "9.9",
        12,
        40,
    )
    assert eu["canaries"] == [
        {"target": "tcp://127.0.0.1:9", "ok": False, "error": "connect_refused"}
    ]
    assert probes["us"]["state"] == "never"
    clock.advance(runtime.config.probe.offline_after + 1)
    runtime.fleet.sweep()
    await runtime.ingest.drained()
    async with runtime.db.connect() as conn:
        events = await outbox_store.list_events(conn)
        gaps = await probe_store.list_gaps(conn, "eu")
    assert [(e.kind, e.subject) for e in events] == [
        ("probe.degraded", "eu"),
        ("probe.offline", "eu"),
    ]
    assert [(g.monitor, g.count, g.failures) for g in gaps] == [("api", 40, 3)]
