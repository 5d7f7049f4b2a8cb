"""The incidents admin API over real sockets, automatic incidents from real results, runbooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, get_args

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import poll_until
from uptally.clock import FakeClock, iso
from uptally.incidents.model import UPDATE_STATUSES, Status
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app
from uptally.web.schemas_incidents import UpdateStatus

TOKEN = "incident-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """
site: {title: Acme, url: "https://status.acme.test", country: DE}
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: API, monitors: [api]}
  - {id: website, name: Website, monitors: [web]}
incidents:
  automation: {components: {api: open_and_resolve}, runbook: outage}
  runbooks:
    outage:
      - {phase: notification, steps: [Notify affected users, Post on the status page]}
      - {phase: recovery, steps: [Restore data backup, Verify monitoring and alerting]}
      - {phase: resolution, steps: [Post mortem]}
"""


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, self.base + path, json=body, headers=AUTH
        ) as response:
            payload = await response.json() if response.status != 204 else None
            return response.status, payload


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = Runtime(
        config_from(CONFIG), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[Api]:
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield Api(session, url)


async def test_an_incident_is_declared_updated_resolved_and_given_a_postmortem(
    api: Api, clock: FakeClock
) -> None:
    status, made = await api.call(
        "POST",
        "/api/v1/incidents",
        {
            "title": "Elevated errors",
            "status": "investigating",
            "impact": "major",
            "components": {"api": "partial_outage"},
            "message": "We see errors on **some** requests. <script>alert(1)</script>",
        },
    )
    assert status == 201, made
    incident = made["id"]
    assert made["url"] == f"https://status.acme.test/incidents/{incident}"
    assert made["components"] == [
        {"id": "api", "status": "partial_outage", "worst": "partial_outage"}
    ]
    assert "<script>" not in made["updates"][0]["body_html"]
    assert "<strong>some</strong>" in made["updates"][0]["body_html"]
    owed = {c["kind"]: c["state"] for c in made["commitments"]}
    assert owed == {"first_post": "met", "update": "pending"}
    clock.advance(10 * 60_000)
    status, updated = await api.call(
        "POST",
        f"/api/v1/incidents/{incident}/updates",
        {
            "status": "identified",
            "message": "A bad deploy; rolling back.",
            "components": {"api": "major_outage"},
        },
    )
    assert status == 201, updated
    assert updated["status"] == "identified"
    assert updated["identified_at"] is not None
    assert [u["status"] for u in updated["updates"]] == ["identified", "investigating"]
    clock.advance(20 * 60_000)
    status, resolved = await api.call(
        "POST", f"/api/v1/incidents/{incident}/updates", {"status": "resolved", "message": "Fixed."}
    )
    assert resolved["status"] == "resolved"
    assert resolved["components"] == [
        {"id": "api", "status": "operational", "worst": "major_outage"}
    ]
    kinds = {(c["kind"], c["state"]) for c in resolved["commitments"]}
    assert ("postmortem", "pending") in kinds  # api was down 30 min > 15 min
    status, draft = await api.call(
        "PUT", f"/api/v1/incidents/{incident}/postmortem", {"body": "## Timeline\n..."}
    )
    assert (status, draft["state"]) == (200, "draft")
    status, published = await api.call("POST", f"/api/v1/incidents/{incident}/postmortem/publish")
    assert (status, published["state"]) == (200, "published")
    status, final = await api.call("GET", f"/api/v1/incidents/{incident}")
    assert final["status"] == "postmortem"
    assert {c["kind"]: c["state"] for c in final["commitments"]}["postmortem"] == "met"
    status, patched = await api.call(
        "PATCH", f"/api/v1/incidents/{incident}", {"title": "Errors after a deploy"}
    )
    assert patched["title"] == "Errors after a deploy"
    status, listed = await api.call("GET", "/api/v1/incidents?status=resolved")
    assert [i["id"] for i in listed["incidents"]] == [incident]
    status, audit = await api.call("GET", "/api/v1/audit?action=incident.*&order=asc")
    assert [e["action"] for e in audit["entries"]] == [
        "incident.created",
        "incident.updated",
        "incident.updated",
        "incident.edited",
    ]
    assert all(e["actor"] == "bootstrap-token" for e in audit["entries"])
    status, summary = await api.call("GET", "/api/v1/commitments")
    assert summary["summary"]["first_post"]["met"] == 1


async def test_mistakes_are_refused_with_json_errors(api: Api) -> None:
    status, body = await api.call(
        "POST", "/api/v1/incidents", {"title": "x", "components": ["nope"]}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_request")
    status, body = await api.call("POST", "/api/v1/incidents", {"title": "x", "message": "m"})
    incident = body["id"]
    status, body = await api.call("POST", f"/api/v1/incidents/{incident}/postmortem/publish")
    assert status == 409
    status, body = await api.call("GET", f"/api/v1/incidents/{'0' * 26}")
    assert status == 404
    status, body = await api.call(
        "POST", f"/api/v1/incidents/{incident}/updates", {"status": "postmortem", "message": "m"}
    )
    assert status == 422


async def test_runbook_steps_are_checked_by_whom_and_when_for_operators_only(
    api: Api, runtime: Runtime, clock: FakeClock
) -> None:
    status, made = await api.call(
        "POST", "/api/v1/incidents", {"title": "Data loss", "runbook": "outage", "message": "m"}
    )
    assert [s["title"] for s in made["runbook"]["steps"]][:2] == [
        "Notify affected users",
        "Post on the status page",
    ]
    assert made["runbook"]["steps"][2]["phase"] == "recovery"
    status, runbook = await api.call(
        "PUT", f"/api/v1/incidents/{made['id']}/runbook/steps/3", {"done": True}
    )
    assert status == 200, runbook
    step = runbook["steps"][2]
    assert (step["title"], step["done"], step["done_by"]) == (
        "Restore data backup",
        True,
        "bootstrap-token",
    )
    assert step["done_at"] is not None
    status, _ = await api.call(
        "PUT", f"/api/v1/incidents/{made['id']}/runbook/steps/99", {"done": True}
    )
    assert status == 404
    from uptally.store import incidents as store

    async with runtime.db.connect() as conn:
        view = await store.get_incident(conn, made["id"])
    assert view is not None
    assert not hasattr(view, "runbook")  # the public read model has no runbook


def failing(clock: FakeClock, monitor: str, n: int, ok: bool = False) -> Result:
    return Result(
        f"{monitor}{n}{ok}",
        monitor,
        "local",
        clock.now_ms(),
        ok,
        9.0,
        None if ok else "timeout",
        "",
    )


async def test_a_verified_outage_opens_and_recovery_resolves_an_automatic_incident(
    api: Api, runtime: Runtime, clock: FakeClock
) -> None:
    runtime.ingest.submit(failing(clock, "web", 1))  # website: policy off
    runtime.ingest.submit(failing(clock, "api", 1))
    await runtime.ingest.drained()
    found: list[dict[str, Any]] = []

    async def opened() -> bool:
        _, body = await api.call("GET", "/api/v1/incidents")
        found[:] = body["incidents"]
        return bool(found)

    await poll_until(opened)
    [incident] = found
    assert (incident["title"], incident["automatic"], incident["status"]) == (
        "API is down",
        True,
        "investigating",
    )
    assert incident["updates"][0]["body"].startswith("We are investigating an outage of API")
    assert incident["updates"][0]["author"] == "system"
    _, detail = await api.call("GET", f"/api/v1/incidents/{incident['id']}")
    assert len(detail["runbook"]["steps"]) == 5  # the automation's runbook template
    clock.advance(100_000)  # within the location's liveness (2 intervals + timeout)
    runtime.ingest.submit(failing(clock, "api", 2, ok=True))
    await runtime.ingest.drained()

    async def resolved() -> bool:
        _, body = await api.call("GET", f"/api/v1/incidents/{incident['id']}")
        found[:] = [body]
        return bool(body["status"] == "resolved")

    await poll_until(resolved)
    [done] = found
    assert done["updates"][0]["body"].startswith("Recovered at ")
    assert "operational again after 1 min 40 s" in done["updates"][0]["body"]
    assert "postmortem" not in {c["kind"] for c in done["commitments"]}  # down < 15 min
    _, events = await api.call("GET", "/api/v1/audit?actor=system&action=incident.*")
    assert {e["action"] for e in events["entries"]} == {"incident.created", "incident.updated"}


async def test_every_status_an_incident_reaches_reads_back_in_every_view(
    api: Api, clock: FakeClock
) -> None:
    """Each step of the lifecycle, then the admin API (single and list) and the public pages."""

    async def public_status(incident: str) -> tuple[str, list[str]]:
        async with api.session.get(f"{api.base}/incidents/{incident}") as response:
            assert response.status == 200
            assert "Elevated errors" in await response.text()
        async with api.session.get(f"{api.base}/api/v2/incidents.json") as response:
            assert response.status == 200
            [shown] = (await response.json())["incidents"]
        assert shown["id"] == incident
        return shown["status"], [u["status"] for u in shown["incident_updates"]]

    async def read_back(
        incident: str, status: str, updates: list[str], *, public: bool = False
    ) -> None:
        code, one = await api.call("GET", f"/api/v1/incidents/{incident}")
        assert code == 200, one
        assert one["status"] == status
        assert [u["status"] for u in one["updates"]] == updates
        code, listed = await api.call("GET", "/api/v1/incidents?status=all")
        assert code == 200, listed
        assert [(i["id"], i["status"]) for i in listed["incidents"]] == [(incident, status)]
        await public_status(incident)  # answers at once (maybe a moment stale)
        if public:

            async def shown() -> bool:  # rebuilt in the background (stale-while-revalidate)
                return await public_status(incident) == (status, updates)

            await poll_until(shown)

    code, made = await api.call(
        "POST", "/api/v1/incidents", {"title": "Elevated errors", "message": "Looking."}
    )
    assert code == 201, made
    incident = made["id"]
    timeline = ["investigating"]
    await read_back(incident, "investigating", timeline, public=True)
    steps: list[tuple[dict[str, Any], str, str]] = [
        ({"status": "identified", "message": "A bad deploy."}, "identified", "identified"),
        ({"status": "monitoring", "message": "Rolled back."}, "monitoring", "monitoring"),
        ({"message": "Still watching."}, "monitoring", "monitoring"),
        ({"status": "resolved", "message": "Fixed."}, "resolved", "resolved"),
        ({"message": "A note after resolving."}, "resolved", "resolved"),
    ]
    for body, status, update_status in steps:
        clock.advance(60_000)
        code, out = await api.call("POST", f"/api/v1/incidents/{incident}/updates", body)
        assert code == 201, out
        timeline.insert(0, update_status)
        await read_back(incident, status, timeline)
    code, draft = await api.call(
        "PUT", f"/api/v1/incidents/{incident}/postmortem", {"body": "## What happened"}
    )
    assert (code, draft["state"]) == (200, "draft")
    await read_back(incident, "resolved", timeline)
    clock.advance(60_000)
    code, published = await api.call("POST", f"/api/v1/incidents/{incident}/postmortem/publish")
    assert (code, published["state"]) == (200, "published")
    await read_back(incident, "postmortem", timeline, public=True)
    after: list[tuple[dict[str, Any], str, str]] = [
        ({"message": "A note after the postmortem."}, "postmortem", "postmortem"),
        ({"status": "resolved", "message": "Resolved, still."}, "postmortem", "postmortem"),
        ({"status": "investigating", "message": "It is back."}, "investigating", "investigating"),
        ({"status": "resolved", "message": "Fixed again."}, "resolved", "resolved"),
    ]
    for body, status, update_status in after:
        clock.advance(60_000)
        code, out = await api.call("POST", f"/api/v1/incidents/{incident}/updates", body)
        assert code == 201, out
        assert out["status"] == status
        timeline.insert(0, update_status)
        await read_back(incident, status, timeline, public=True)
    code, again = await api.call("POST", f"/api/v1/incidents/{incident}/postmortem/publish")
    assert code == 200, again
    await read_back(incident, "postmortem", timeline, public=True)


def test_requests_may_set_exactly_the_statuses_an_update_may_set() -> None:
    assert set(get_args(UpdateStatus)) == {s.value for s in UPDATE_STATUSES}
    assert {s.value for s in Status} - set(get_args(UpdateStatus)) == {"postmortem"}


async def test_an_incident_can_be_backdated_and_its_start_corrected(
    api: Api, clock: FakeClock
) -> None:
    now = clock.now_ms()
    three_hours_ago = iso(now - 3 * 3_600_000)
    code, made = await api.call(
        "POST",
        "/api/v1/incidents",
        {
            "title": "Mail delivery delayed",
            "impact": "major",
            "components": {"api": "major_outage"},
            "message": "Mail has been delayed since 21:00.",
            "started_at": three_hours_ago,
        },
    )
    assert code == 201, made
    incident = made["id"]
    assert made["started_at"] == three_hours_ago
    assert made["created_at"] == iso(now)
    # The first post is owed from the declaration (from the start it would be long overdue).
    first = next(c for c in made["commitments"] if c["kind"] == "first_post")
    assert (first["state"], first["due_at"]) == ("met", iso(now + 2 * 3_600_000))
    code, listed = await api.call("GET", f"/api/v1/incidents?until={iso(now - 3_600_000)}")
    assert [i["id"] for i in listed["incidents"]] == [incident]  # active before it was declared
    async with api.session.get(f"{api.base}/api/v2/incidents.json") as response:
        [shown] = (await response.json())["incidents"]
    assert datetime.fromisoformat(shown["started_at"]) == datetime.fromisoformat(three_hours_ago)
    # Corrected later: stored and audited.
    two_hours_ago = iso(now - 2 * 3_600_000)
    code, patched = await api.call(
        "PATCH", f"/api/v1/incidents/{incident}", {"started_at": "2025-12-31T22:30:00+01:00"}
    )
    assert (code, patched["started_at"]) == (200, "2025-12-31T21:30:00.000Z")
    code, patched = await api.call(
        "PATCH", f"/api/v1/incidents/{incident}", {"started_at": two_hours_ago}
    )
    assert (code, patched["started_at"]) == (200, two_hours_ago)
    code, audit = await api.call("GET", f"/api/v1/audit?target=incident:{incident}&order=asc")
    assert [(e["action"], e["details"]["started_at"]) for e in audit["entries"]] == [
        ("incident.created", three_hours_ago),
        ("incident.edited", "2025-12-31T21:30:00.000Z"),
        ("incident.edited", two_hours_ago),
    ]
    # Its downtime counts from the start: resolved a minute after declaring, yet down 2 h.
    clock.advance(60_000)
    code, resolved = await api.call(
        "POST", f"/api/v1/incidents/{incident}/updates", {"status": "resolved", "message": "Ok."}
    )
    assert code == 201, resolved
    assert ("postmortem", "pending") in {(c["kind"], c["state"]) for c in resolved["commitments"]}


async def test_a_start_in_the_future_or_not_a_time_is_refused_and_changes_nothing(
    api: Api, clock: FakeClock
) -> None:
    now = clock.now_ms()
    bad: list[Any] = [
        iso(now + 5 * 60_000),  # beyond the allowed clock skew
        "yesterday",
        "1999-12-31T23:00:00Z",
        1_767_225_600,
        "",
    ]
    for value in bad:
        code, body = await api.call(
            "POST", "/api/v1/incidents", {"title": "x", "started_at": value}
        )
        assert code == 422, (value, body)
        assert "started_at" in body["error"]["message"], body
    _, listed = await api.call("GET", "/api/v1/incidents")
    assert listed["incidents"] == []
    code, made = await api.call(
        "POST", "/api/v1/incidents", {"title": "x", "started_at": iso(now + 30_000)}
    )
    assert (code, made["started_at"]) == (201, iso(now))  # within the skew: taken as now
    for value in bad:
        code, body = await api.call(
            "PATCH", f"/api/v1/incidents/{made['id']}", {"started_at": value}
        )
        assert code == 422, (value, body)
        assert "started_at" in body["error"]["message"], body
    clock.advance(60_000)
    await api.call(
        "POST", f"/api/v1/incidents/{made['id']}/updates", {"status": "resolved", "message": "m"}
    )
    code, body = await api.call(
        "PATCH", f"/api/v1/incidents/{made['id']}", {"started_at": iso(now + 90_000)}
    )
    assert code == 422, body  # after its resolution (a minute ago), though not in the future
    assert "resolution" in body["error"]["message"]
    _, final = await api.call("GET", f"/api/v1/incidents/{made['id']}")
    assert final["started_at"] == iso(now)
