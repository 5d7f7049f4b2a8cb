"""The HTTP surface over real sockets: admin API, Statuspage v2 JSON, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import poll_until
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "s3cret-admin-token"
CONFIG = """
site: {title: Acme status, timezone: Europe/Berlin}
locations: [{name: eu-west}]
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/health", confirm: 1,
     locations: [local, eu-west], consensus: any}
  - {id: web, kind: http, url: "http://127.0.0.1:9/"}
  - {id: backup, kind: heartbeat, period: 1h, token: backup-token-123}
components:
  - {id: api, name: API, group: Platform, monitors: [api]}
  - {id: website, name: Website, group: Platform, monitors: [web]}
  - {id: jobs, name: Jobs, monitors: [backup]}
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url


async def get(http: tuple[aiohttp.ClientSession, str], path: str, **kwargs: Any) -> tuple[int, Any]:
    session, base = http
    async with session.get(base + path, **kwargs) as response:
        return response.status, await response.json()


async def post(
    http: tuple[aiohttp.ClientSession, str], path: str, body: Any, **kwargs: Any
) -> tuple[int, Any]:
    session, base = http
    async with session.post(base + path, json=body, **kwargs) as response:
        return response.status, await response.json()


def failing(clock: FakeClock, monitor: str, location: str, n: int) -> Result:
    return Result(
        f"x{monitor}{location}{n}",
        monitor,
        location,
        clock.now_ms(),
        False,
        10_000.0,
        "timeout",
        "timed out after 10s",
    )


async def test_the_admin_api_needs_the_bearer_token(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        status, body = await get(http, "/api/v1/monitors", headers=headers)
        assert status == 401
        assert body["error"]["code"] == "unauthorized"


async def test_monitors_show_their_state_per_location(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    runtime.ingest.submit(failing(clock, "api", "eu-west", 1))
    await runtime.ingest.drained()
    status, body = await get(http, "/api/v1/monitors", headers=AUTH)
    assert status == 200
    by_id = {m["id"]: m for m in body["monitors"]}
    api = by_id["api"]
    assert (api["state"], api["name"], api["kind"], api["components"]) == (
        "down",
        "Public API",
        "http",
        ["api"],
    )
    assert api["locations"]["eu-west"]["state"] == "down"
    assert api["locations"]["eu-west"]["last_result"]["error"] == "timeout"
    assert api["locations"]["local"] == {
        "state": "unknown",
        "since": None,
        "consecutive_failures": 0,
        "last_result": None,
    }
    assert by_id["web"]["state"] == "unknown"
    backup = by_id["backup"]
    assert backup["ping_url"].endswith("/ping/backup-token-123")
    assert backup["next_deadline"] is not None
    status, one = await get(http, "/api/v1/monitors/api", headers=AUTH)
    assert status == 200
    # One monitor also shows its config (what PUT takes) to a token that may change it.
    assert one["config"]["url"] == "http://127.0.0.1:9/health"
    assert one == {**api, "config": one["config"]}


async def test_results_and_outages_are_listed_and_filtered(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    runtime.ingest.submit(failing(clock, "api", "local", 1))
    await runtime.ingest.drained()
    status, body = await get(http, "/api/v1/monitors/api/results?limit=5", headers=AUTH)
    assert status == 200
    [item] = body["results"]
    assert set(item) == {"id", "monitor", "location", "at", "ok", "latency_ms", "error", "message"}
    assert item["at"].endswith("Z")
    status, body = await get(http, "/api/v1/outages?monitor=api", headers=AUTH)
    assert status == 200
    [outage] = body["outages"]
    assert outage["end"] is None
    assert outage["verified"] is True
    assert set(outage["locations"]) == {"local"}
    status, body = await get(http, "/api/v1/outages?monitor=web", headers=AUTH)
    assert body == {"outages": []}
    status, body = await get(http, "/api/v1/outages?component=api", headers=AUTH)
    assert len(body["outages"]) == 1


async def test_an_outage_can_be_recorded_by_hand(
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    status, body = await post(
        http,
        "/api/v1/outages",
        {
            "component": "website",
            "start": "2025-12-31T10:00:00Z",
            "end": "2025-12-31T10:45:00Z",
            "reason": "power cut in the data centre",
        },
        headers=AUTH,
    )
    assert status == 201, body
    assert (body["component"], body["source"], body["duration_s"]) == ("website", "manual", 2700.0)
    status, listed = await get(http, "/api/v1/outages?component=website", headers=AUTH)
    assert [o["id"] for o in listed["outages"]] == [body["id"]]


@pytest.mark.parametrize(
    ("payload", "status_code"),
    [
        ({"start": "2025-12-31T10:00:00Z", "end": "2025-12-31T11:00:00Z"}, 422),
        (
            {
                "monitor": "api",
                "component": "api",
                "start": "2025-12-31T10:00:00Z",
                "end": "2025-12-31T11:00:00Z",
            },
            422,
        ),
        ({"monitor": "ghost", "start": "2025-12-31T10:00:00Z", "end": "2025-12-31T11:00:00Z"}, 404),
        ({"monitor": "api", "start": "2025-12-31T11:00:00Z", "end": "2025-12-31T10:00:00Z"}, 422),
        ({"monitor": "api", "start": "2999-01-01T00:00:00Z", "end": "2999-01-02T00:00:00Z"}, 422),
        ({"monitor": "api", "start": "yesterday", "end": "today"}, 422),
        (
            {
                "monitor": "api",
                "start": "2025-12-31T10:00:00Z",
                "end": "2025-12-31T11:00:00Z",
                "extra": 1,
            },
            422,
        ),
    ],
)
async def test_a_bad_backfill_is_refused_with_a_json_error(
    http: tuple[aiohttp.ClientSession, str],
    payload: dict[str, Any],
    status_code: int,
) -> None:
    status, body = await post(http, "/api/v1/outages", payload, headers=AUTH)
    assert status == status_code
    assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "details"}
    status, listed = await get(http, "/api/v1/outages", headers=AUTH)
    assert listed == {"outages": []}


async def test_unknown_paths_and_methods_answer_json_errors(
    http: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = http
    status, body = await get(http, "/api/v1/monitors/ghost", headers=AUTH)
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await get(http, "/nowhere")
    assert (status, body["error"]["code"]) == (404, "not_found")
    async with session.delete(base + "/api/v2/status.json") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, OPTIONS"  # OPTIONS: a CORS preflight
        assert (await response.json())["error"]["code"] == "method_not_allowed"
    async with session.delete(base + "/api/v1/incidents/x", headers=AUTH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, PATCH"
    # a fixed path is its own resource, not an id the templated route beside it would take
    async with session.delete(base + "/api/v1/maintenance/series", headers=AUTH) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    async with session.post(
        base + "/api/v1/outages",
        data=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    ) as response:
        assert response.status == 422
        assert (await response.json())["error"]["code"] == "invalid_request"


async def test_statuspage_v2_summary_has_the_atlassian_shape(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    runtime.ingest.submit(failing(clock, "api", "local", 1))
    await runtime.ingest.drained()
    status, body = await get(http, "/api/v2/summary.json")
    assert status == 200
    assert set(body) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert set(body["page"]) == {"id", "name", "url", "time_zone", "updated_at"}
    assert body["page"]["name"] == "Acme status"
    assert body["page"]["time_zone"] == "Europe/Berlin"
    assert body["page"]["updated_at"].endswith("+01:00")
    components = {c["id"]: c for c in body["components"]}
    fields = {
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "position",
        "description",
        "showcase",
        "start_date",
        "group_id",
        "page_id",
        "group",
        "only_show_if_degraded",
    }
    for component in components.values():
        assert fields <= set(component)
        assert component["status"] in {
            "operational",
            "degraded_performance",
            "partial_outage",
            "major_outage",
            "under_maintenance",
        }
    assert components["api"]["status"] == "major_outage"
    assert components["website"]["status"] == "operational"
    group = components["group-platform"]
    assert group["group"] is True
    assert group["components"] == ["api", "website"]
    assert group["status"] == "major_outage"
    assert components["api"]["group_id"] == "group-platform"
    assert components["jobs"]["group_id"] is None
    assert body["status"] == {"indicator": "major", "description": "Partial System Outage"}
    status, only = await get(http, "/api/v2/status.json")
    assert only["status"] == body["status"]
    status, listed = await get(http, "/api/v2/components.json")
    assert listed["components"] == body["components"]


async def test_health_readiness_and_metrics(
    runtime: Runtime,
    http: tuple[aiohttp.ClientSession, str],
    clock: FakeClock,
) -> None:
    session, base = http
    assert await get(http, "/healthz") == (200, {"status": "ok"})
    assert await get(http, "/readyz") == (200, {"status": "ready"})
    runtime.ingest.submit(failing(clock, "api", "local", 1))
    await runtime.ingest.drained()
    text = ""

    async def counted() -> bool:  # events are counted once routed, just after being written
        nonlocal text
        async with session.get(base + "/metrics") as response:
            assert response.status == 200
            text = await response.text()
        return 'uptally_events_total{kind="monitor.down"} 1.0' in text

    await poll_until(counted)
    assert 'uptally_monitors{state="down"} 1.0' in text
    assert "uptally_results_stored_total 1.0" in text
    assert "uptally_scheduler_lateness_seconds_bucket" in text
