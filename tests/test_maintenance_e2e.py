"""End to end: a real `uptally serve` watching a real HTTP service through a maintenance window.

The alert for an outage that starts during the window is recorded as suppressed; when the window
ends with the service still down, the alert is written then, promptly, and the automatic
incident opens then too, counting from the window's end (the planned window is not part of its
duration); the recovery after it is delivered normally. The outbox table is read directly, as a
dispatcher would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import test_e2e
from tests.procs import serving
from tests.test_e2e import AUTH, TOKEN, Target, poll, write_config
from uptally.store import outbox
from uptally.store.database import Database

pytestmark = pytest.mark.slow
target = test_e2e.target  # the fixture: a real HTTP service that can be made to fail

WINDOW_S = 4


async def outbox_events(url: str) -> list[Any]:
    db = Database(url)
    try:
        async with db.connect() as conn:
            return await outbox.list_events(conn, limit=1000)
    finally:
        await db.close()


def of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.kind == kind]


def ms(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


async def test_an_alert_is_suppressed_during_maintenance_and_fires_when_it_ends(
    tmp_path: Path, target: tuple[Target, str], db_url: str
) -> None:
    service, url = target
    config = write_config(tmp_path, url)
    config.write_text(
        config.read_text() + "incidents:\n  automation: {default: open_and_resolve}\n"
    )
    data = tmp_path / "data"
    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    database = f"sqlite+aiosqlite:///{data / 'uptally.db'}"
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = database = db_url
    async with serving(config, data, env) as (base, _), aiohttp.ClientSession() as http:

        async def monitor() -> dict[str, Any]:
            async with http.get(f"{base}/api/v1/monitors/api", headers=AUTH) as response:
                return await response.json()  # type: ignore[no-any-return]

        await poll(monitor, lambda m: m["state"] == "up")
        now = datetime.now(UTC)
        body = {
            "title": "Database upgrade",
            "start": now.isoformat(),
            "end": (now + timedelta(seconds=WINDOW_S)).isoformat(),
            "monitors": ["api"],
            "message": "Expect errors.",
        }
        async with http.post(f"{base}/api/v1/maintenance", json=body, headers=AUTH) as response:
            window = await response.json()
            assert response.status == 201, window
        ends_at = datetime.fromisoformat(window["scheduled_until"]).timestamp() * 1000
        service.healthy = False

        # the outage is detected and its alert recorded as suppressed; monitoring goes on
        events = await poll(lambda: outbox_events(database), lambda es: of(es, "monitor.down"))
        [down] = of(events, "monitor.down")
        assert down.data["suppressed"] == {"maintenance": window["id"]}
        assert (await monitor())["state"] == "maintenance"
        async with http.get(f"{base}/api/v1/outages?monitor=api", headers=AUTH) as response:
            [outage] = (await response.json())["outages"]
        assert outage["end"] is None
        async with http.get(f"{base}/api/v1/monitors/api/results", headers=AUTH) as response:
            results = (await response.json())["results"]
        failed = [r for r in results if not r["ok"] and r["at"] >= window["scheduled_for"]]
        assert len(failed) >= 2  # checks go on and are stored

        # the window ends with the service still down: the alert fires then, promptly
        events = await poll(
            lambda: outbox_events(database),
            lambda es: len(of(es, "monitor.down")) == 2,
            timeout=WINDOW_S + 10,
        )
        fresh = of(events, "monitor.down")[1]
        assert fresh.data.get("suppressed") is None
        assert fresh.data["after_maintenance"] == window["id"]
        assert fresh.data["outage"] == down.data["outage"]
        assert 0 <= fresh.created_at - ends_at < 2_000, "the alert must fire when the window ends"

        # the automatic incident counts from the window's end, not from the outage's start
        async def incidents() -> list[dict[str, Any]]:
            async with http.get(f"{base}/api/v1/incidents", headers=AUTH) as response:
                return (await response.json())["incidents"]  # type: ignore[no-any-return]

        [incident] = await poll(incidents, lambda found: len(found) == 1)
        assert ms(outage["start"]) < ends_at <= ms(incident["started_at"]) < ends_at + 2_000
        assert "after the planned maintenance ended" in incident["updates"][0]["body"]
        kinds = [e.kind for e in events if e.kind.startswith("maintenance.")]
        assert kinds == ["maintenance.scheduled", "maintenance.started", "maintenance.completed"]
        assert (await monitor())["state"] == "down"

        # the recovery is delivered like any other
        service.healthy = True
        events = await poll(lambda: outbox_events(database), lambda es: of(es, "monitor.up"))
        [recovered] = of(events, "monitor.up")
        assert recovered.data.get("suppressed") is None
        [incident] = await poll(incidents, lambda found: found[0]["status"] == "resolved")
        assert ms(incident["started_at"]) >= ends_at
        async with http.get(f"{base}/api/v1/audit?action=maintenance.*", headers=AUTH) as r:
            actions = [e["action"] for e in (await r.json())["entries"]]
        assert sorted(actions) == [
            "maintenance.completed",
            "maintenance.created",
            "maintenance.started",
        ]
