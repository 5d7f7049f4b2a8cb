"""The maintenance API over real sockets: create, list, change, end, cancel, notes, recurring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.test_api import AUTH, TOKEN, get, post
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

CONFIG = """
site: {title: Acme, timezone: Europe/Berlin}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/health"}
  - {id: web, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, name: API, monitors: [api]}
  - {id: website, name: Website, monitors: [web]}
"""
Http = tuple[aiohttp.ClientSession, str]


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[Http]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url


async def send(http: Http, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    session, base = http
    async with session.request(method, base + path, json=body, headers=AUTH) as response:
        return response.status, await response.json()


async def test_a_window_is_created_listed_and_shown_with_its_updates(http: Http) -> None:
    status, window = await post(
        http,
        "/api/v1/maintenance",
        {
            "title": "Database upgrade",
            "start": "2026-01-01T03:00:00",  # site time: 02:00Z
            "end": "2026-01-01T04:00:00+01:00",
            "components": ["api"],
            "message": "Postgres **16**",
        },
        headers=AUTH,
    )
    assert status == 201, window
    assert {k: window[k] for k in ("status", "impact", "scheduled_for", "scheduled_until")} == {
        "status": "scheduled",
        "impact": "maintenance",
        "scheduled_for": "2026-01-01T02:00:00.000Z",
        "scheduled_until": "2026-01-01T03:00:00.000Z",
    }
    assert (window["short_notice"], window["in_effect"], window["source"]) == (True, False, "api")
    assert [u["body"] for u in window["updates"]] == ["Postgres **16**"]
    status, listed = await get(http, "/api/v1/maintenance?status=scheduled", headers=AUTH)
    assert status == 200
    assert [w["id"] for w in listed["maintenance"]] == [window["id"]]
    status, one = await get(http, f"/api/v1/maintenance/{window['id']}", headers=AUTH)
    assert one == window
    status, audit = await get(http, "/api/v1/audit?action=maintenance.*", headers=AUTH)
    [entry] = audit["entries"]
    assert (entry["action"], entry["target"], entry["actor"]) == (
        "maintenance.created",
        f"maintenance:{window['id']}",
        "bootstrap-token",
    )


async def test_a_window_in_effect_shows_its_monitors_under_maintenance(
    runtime: Runtime, http: Http, clock: FakeClock
) -> None:
    status, window = await post(
        http,
        "/api/v1/maintenance",
        {
            "title": "Now",
            "start": "2026-01-01T00:00:00Z",
            "end": "2026-01-01T02:00:00Z",
            "monitors": ["web"],
        },
        headers=AUTH,
    )
    assert status == 201
    assert window["in_effect"] is True
    await runtime.maintenance.step()
    status, monitors = await get(http, "/api/v1/monitors", headers=AUTH)
    states = {m["id"]: m["state"] for m in monitors["monitors"]}
    assert states == {"api": "unknown", "web": "maintenance"}
    status, extended = await send(
        http, "PATCH", f"/api/v1/maintenance/{window['id']}", {"end": "2026-01-01T05:00:00Z"}
    )
    assert (status, extended["status"], extended["scheduled_until"]) == (
        200,
        "in_progress",
        "2026-01-01T05:00:00.000Z",
    )
    clock.advance(60_000)
    status, ended = await post(
        http, f"/api/v1/maintenance/{window['id']}/end", {"message": "Done."}, headers=AUTH
    )
    assert (status, ended["status"], ended["completed_at"]) == (
        200,
        "completed",
        "2026-01-01T00:01:00.000Z",
    )
    assert ended["updates"][0]["body"] == "Done."
    status, monitors = await get(http, "/api/v1/monitors/web", headers=AUTH)
    assert monitors["state"] == "unknown"
    status, again = await post(http, f"/api/v1/maintenance/{window['id']}/end", {}, headers=AUTH)
    assert (status, again["error"]["code"]) == (409, "conflict")


async def test_notes_cancellation_and_errors(http: Http, clock: FakeClock) -> None:
    status, window = await post(
        http,
        "/api/v1/maintenance",
        {
            "title": "Later",
            "start": "2026-01-05T00:00:00Z",
            "end": "2026-01-05T01:00:00Z",
            "components": ["website"],
        },
        headers=AUTH,
    )
    assert (status, window["short_notice"]) == (201, False)
    path = f"/api/v1/maintenance/{window['id']}"
    clock.advance(1000)
    status, noted = await post(http, f"{path}/updates", {"message": "Moved racks."}, headers=AUTH)
    assert (status, noted["updates"][0]["body"]) == (201, "Moved racks.")
    status, cancelled = await post(http, f"{path}/cancel", {}, headers=AUTH)
    assert (status, cancelled["status"]) == (200, "cancelled")
    times = {"start": "2026-01-05T00:00:00Z", "end": "2026-01-05T01:00:00Z"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"title": "x", **times}, 422, "at least one"),
        ({"title": "x", **times, "monitors": ["zz"]}, 404, "no monitor"),
        ({"title": "x", "start": times["start"], "monitors": ["api"]}, 422, "start and end"),
        (
            {
                "title": "x",
                "start": "2030-01-05T00:00Z",
                "end": "2030-01-06T00:00Z",
                "monitors": ["api"],
            },
            422,
            "two years",
        ),
        (
            {"title": "x", "rrule": "FREQ=NEVER", "duration": "1h", "start": "2026-01-05T00:00"},
            422,
            "rrule",
        ),
    ]
    cases[-1][0]["monitors"] = ["api"]
    for body, code, words in cases:
        status, error = await post(http, "/api/v1/maintenance", body, headers=AUTH)
        assert status == code, error
        assert error["error"]["code"] == ("invalid_request" if code == 422 else "not_found")
        assert words in error["error"]["message"]
    status, _ = await get(http, "/api/v1/maintenance/nope", headers=AUTH)
    assert status == 404


async def test_a_recurring_window_answers_its_first_occurrence_and_can_be_stopped(
    http: Http,
) -> None:
    status, first = await post(
        http,
        "/api/v1/maintenance",
        {
            "id": "backups",
            "title": "Nightly backups",
            "cron": "30 1 * * *",
            "duration": "30m",
            "monitors": ["api"],
        },
        headers=AUTH,
    )
    assert status == 201, first
    # 01:30 in Berlin is 00:30 UTC; the first one after 2026-01-01T00:00Z
    assert (first["id"], first["series"], first["scheduled_for"]) == (
        "backups@20260101T0030Z",
        "backups",
        "2026-01-01T00:30:00.000Z",
    )
    status, series = await get(http, "/api/v1/maintenance/series/backups", headers=AUTH)
    assert status == 200
    assert len(series["upcoming"]) == 7
    assert series["duration_s"] == 1800
    status, _ = await post(
        http,
        "/api/v1/maintenance",
        {
            "id": "backups",
            "title": "again",
            "cron": "0 2 * * *",
            "duration": "1h",
            "monitors": ["api"],
        },
        headers=AUTH,
    )
    assert status == 409
    # Planned anew: the scheduled occurrences move to the new time.
    again = {"title": "Backups", "cron": "0 2 * * *", "duration": "1h", "monitors": ["api"]}
    status, changed = await send(http, "PUT", "/api/v1/maintenance/series/backups", again)
    assert status == 200, changed
    assert (changed["cron"], changed["duration_s"], changed["title"]) == (
        "0 2 * * *",
        3600,
        "Backups",
    )
    scheduled = [w for w in changed["upcoming"] if w["status"] == "scheduled"]
    assert scheduled
    assert all(w["scheduled_for"].endswith("T01:00:00.000Z") for w in scheduled)
    status, _ = await send(http, "PUT", "/api/v1/maintenance/series/nope", again)
    assert status == 404
    status, stopped = await send(http, "DELETE", "/api/v1/maintenance/series/backups")
    assert status == 200
    assert stopped["cancelled_at"] is not None
    assert stopped["upcoming"] == [] or all(w["status"] == "cancelled" for w in stopped["upcoming"])
    status, listed = await get(http, "/api/v1/maintenance?status=scheduled", headers=AUTH)
    assert listed["maintenance"] == []


async def test_reading_needs_read_and_changing_needs_write(runtime: Runtime, http: Http) -> None:
    from uptally import tokens

    async with runtime.db.begin() as conn:
        reader = await tokens.create(conn, "reader", ["read"], "test", runtime.clock.now_ms())
    session, base = http
    headers = {"Authorization": f"Bearer {reader.token}"}
    async with session.get(base + "/api/v1/maintenance", headers=headers) as response:
        assert response.status == 200
    body = {
        "title": "x",
        "start": "2026-01-05T00:00:00Z",
        "end": "2026-01-05T01:00:00Z",
        "monitors": ["api"],
    }
    async with session.post(base + "/api/v1/maintenance", json=body, headers=headers) as response:
        assert response.status == 403
    async with session.get(base + "/api/v1/maintenance") as response:
        assert response.status == 401
