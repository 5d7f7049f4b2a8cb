"""Incidents: transitions, automation from outages (pure), and the status page read model."""

from __future__ import annotations

import itertools

import pytest

from tests.conftest import config_from
from uptally.clock import FakeClock
from uptally.events import EventKind
from uptally.incidents.automation import Signal, plan, signal_of
from uptally.incidents.model import Impact, Status
from uptally.incidents.transitions import (
    IncidentError,
    declare,
    post_update,
    publish_postmortem,
    write_postmortem,
)
from uptally.status import ComponentStatus
from uptally.store import incidents as store
from uptally.store.database import Database

MIN = 60_000
CONFIG = """
site: {title: Acme, timezone: Europe/Berlin}
monitors:
  - {id: api-eu, name: API (EU), kind: http, url: "http://127.0.0.1:9/"}
  - {id: api-us, name: API (US), kind: http, url: "http://127.0.0.1:9/"}
  - {id: web, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, name: Public API, monitors: [api-eu, api-us]}
  - {id: website, name: Website, monitors: [web]}
incidents:
  automation: {default: off, components: {api: open_and_resolve, website: open}}
"""
_counter = itertools.count()


def ids() -> str:
    return f"{next(_counter):026x}"


def down(monitor: str, at: int, outage: str = "o1", **extra: bool) -> Signal:
    return Signal(True, monitor, outage, at, at, ("local", "eu-west"), "timeout", **extra)


def up(monitor: str, at: int, outage: str = "o1") -> Signal:
    return Signal(False, monitor, outage, at, at - 5 * MIN, ("local",), "")


def test_declaring_with_a_message_posts_the_first_update_and_announces_it() -> None:
    change = declare(
        ids(),
        title="  API   errors ",
        status=Status.INVESTIGATING,
        impact=Impact.MAJOR,
        components={"api": None, "website": ComponentStatus.DEGRADED_PERFORMANCE},
        message="We see **errors**",
        actor="token:abc",
        now=1000,
        update_id=ids(),
    )
    incident = change.incident
    assert incident.title == "API errors"
    assert incident.components["api"].status is ComponentStatus.PARTIAL_OUTAGE  # from the impact
    assert incident.components["website"].status is ComponentStatus.DEGRADED_PERFORMANCE
    assert incident.last_post_at == 1000
    assert change.update is not None
    assert change.update.body_html == "<p>We see <strong>errors</strong></p>\n"
    [event] = change.events
    assert event.kind is EventKind.INCIDENT_CREATED
    assert event.data["message"] == "We see **errors**"
    assert event.data["components"] == {"api": "partial_outage", "website": "degraded_performance"}


def test_updates_move_the_status_stamp_the_times_and_resolve_with_components_operational() -> None:
    incident = declare(
        ids(),
        title="t",
        status=Status.INVESTIGATING,
        impact=Impact.CRITICAL,
        components={"api": None},
        message=None,
        actor="a",
        now=0,
        update_id=ids(),
    ).incident
    assert incident.last_post_at is None
    identified = post_update(
        incident,
        status=Status.IDENTIFIED,
        message="found it",
        components=None,
        actor="a",
        now=10,
        update_id=ids(),
    )
    assert (identified.incident.status, identified.incident.identified_at) == (
        Status.IDENTIFIED,
        10,
    )
    assert identified.events[0].kind is EventKind.INCIDENT_UPDATED
    resolved = post_update(
        identified.incident,
        status=Status.RESOLVED,
        message="fixed",
        components=None,
        actor="a",
        now=20,
        update_id=ids(),
    )
    done = resolved.incident
    assert resolved.events[0].kind is EventKind.INCIDENT_RESOLVED
    assert done.resolved_at == 20
    assert done.components["api"].status is ComponentStatus.OPERATIONAL
    assert done.components["api"].worst is ComponentStatus.MAJOR_OUTAGE  # during the incident
    reopened = post_update(
        done,
        status=Status.INVESTIGATING,
        message="it is back",
        components=None,
        actor="a",
        now=30,
        update_id=ids(),
    )
    assert reopened.incident.status is Status.INVESTIGATING
    assert reopened.incident.resolved_at is None


def test_an_update_needs_a_message_and_cannot_claim_postmortem() -> None:
    incident = declare(
        ids(),
        title="t",
        status=Status.INVESTIGATING,
        impact=Impact.MINOR,
        components={},
        message=None,
        actor="a",
        now=0,
        update_id=ids(),
    ).incident
    with pytest.raises(IncidentError):
        post_update(
            incident, status=None, message="  ", components=None, actor="a", now=1, update_id=ids()
        )
    with pytest.raises(IncidentError):
        post_update(
            incident,
            status=Status.POSTMORTEM,
            message="x",
            components=None,
            actor="a",
            now=1,
            update_id=ids(),
        )


def test_a_postmortem_is_published_only_after_resolution_and_sets_status_postmortem() -> None:
    incident = declare(
        ids(),
        title="t",
        status=Status.INVESTIGATING,
        impact=Impact.MINOR,
        components={},
        message="x",
        actor="a",
        now=0,
        update_id=ids(),
    ).incident
    draft = write_postmortem(incident, None, "# What happened\n<script>x</script>", "a", 5)
    assert draft.published_at is None
    assert "<script>" not in draft.body_html
    with pytest.raises(IncidentError):
        publish_postmortem(incident, draft, 6)
    resolved = post_update(
        incident,
        status=Status.RESOLVED,
        message="ok",
        components=None,
        actor="a",
        now=7,
        update_id=ids(),
    ).incident
    change, published = publish_postmortem(resolved, draft, 8)
    assert change.incident.status is Status.POSTMORTEM
    assert published.published_at == 8
    assert change.events[0].data["postmortem"] is True


def test_a_verified_outage_opens_an_incident_saying_what_and_where() -> None:
    config = config_from(CONFIG)
    at = 1_767_225_600_000  # 2026-01-01T00:00Z = 01:00 CET
    [planned] = plan(down("api-eu", at), [], config, at + 1000, ids)
    assert planned.new
    incident = planned.change.incident
    assert incident.title == "Public API is down"
    assert incident.started_at == at
    assert incident.automatic
    assert incident.automated
    assert incident.outages == {"api-eu": "o1"}
    assert incident.components["api"].status is ComponentStatus.PARTIAL_OUTAGE  # 1 of 2 down
    assert planned.change.update is not None
    text = planned.change.update.body
    assert "We are investigating an outage of Public API since 01:00 CET on 2026-01-01" in text
    assert "API (EU) is down (seen from local and eu-west)" in text


def test_components_with_policy_off_and_suppressed_alerts_open_nothing() -> None:
    config = config_from(CONFIG.replace("website: open", "website: 'off'"))
    assert plan(down("web", 0), [], config, 1, ids) == []
    assert plan(down("api-eu", 0, suppressed=True), [], config, 1, ids) == []


def test_recovery_resolves_with_open_and_resolve_after_every_outage_of_the_incident_ended() -> None:
    config = config_from(CONFIG)
    [first] = plan(down("api-eu", 0, "o1"), [], config, 1, ids)
    incident = first.change.incident
    [joined] = plan(down("api-us", 2 * MIN, "o2"), [incident], config, 2 * MIN, ids)
    assert not joined.new  # the same component: the same incident
    incident = joined.change.incident
    assert incident.components["api"].status is ComponentStatus.MAJOR_OUTAGE  # both down now
    [partly] = plan(up("api-eu", 5 * MIN, "o1"), [incident], config, 5 * MIN, ids)
    assert partly.change.update is None  # api-us is still down
    incident = partly.change.incident
    [recovered] = plan(up("api-us", 12 * MIN, "o2"), [incident], config, 12 * MIN, ids)
    done = recovered.change.incident
    assert done.status is Status.RESOLVED
    assert recovered.change.events[0].kind is EventKind.INCIDENT_RESOLVED
    assert recovered.change.update is not None
    assert recovered.change.update.automatic
    assert "operational again after 12 min" in recovered.change.update.body
    assert done.components["api"].worst is ComponentStatus.MAJOR_OUTAGE


def test_an_outage_held_back_by_maintenance_starts_its_incident_when_the_window_ends() -> None:
    """Down since 10:20, inside a window of 10:00-11:00 that held the alert back: the incident
    opened at 11:00 counts from 11:00; the planned hour is not downtime of the incident."""
    config = config_from(CONFIG)
    at = 1_767_261_600_000  # 2026-01-01T10:00Z = 11:00 CET, when the window ended
    data = {"monitor": "api-eu", "outage": "o1", "start": at - 40 * MIN, "after_maintenance": "w1"}
    signal = signal_of("monitor.down", data, at)
    assert signal is not None
    assert signal.after_maintenance == "w1"
    [opened] = plan(signal, [], config, at, ids)
    incident = opened.change.incident
    assert incident.started_at == at
    assert opened.change.update is not None
    assert "still down after the planned maintenance ended at 11:00 CET" in (
        opened.change.update.body
    )
    back = {"monitor": "api-eu", "outage": "o1", "start": at - 40 * MIN}
    recovery = signal_of("monitor.up", back, at + 15 * MIN)
    assert recovery is not None
    [recovered] = plan(recovery, [incident], config, at + 15 * MIN, ids)
    assert recovered.change.update is not None
    assert "operational again after 15 min" in recovered.change.update.body
    assert recovered.change.incident.resolved_at == at + 15 * MIN


def test_with_policy_open_recovery_posts_monitoring_and_a_relapse_reopens_investigation() -> None:
    config = config_from(CONFIG)
    [opened] = plan(down("web", 0), [], config, 1, ids)
    [recovered] = plan(up("web", 3 * MIN), [opened.change.incident], config, 3 * MIN, ids)
    assert recovered.change.incident.status is Status.MONITORING
    assert recovered.change.update is not None
    assert recovered.change.update.body.endswith("We are monitoring.")
    [again] = plan(down("web", 4 * MIN, "o9"), [recovered.change.incident], config, 4 * MIN, ids)
    assert again.change.incident.status is Status.INVESTIGATING
    assert again.change.update is not None
    assert again.change.update.body.startswith("The problem is back")


def test_after_a_person_posts_an_update_automation_stops_posting() -> None:
    config = config_from(CONFIG)
    [opened] = plan(down("api-eu", 0), [], config, 1, ids)
    taken = post_update(
        opened.change.incident,
        status=Status.IDENTIFIED,
        message="a bad deploy",
        components=None,
        actor="token:x",
        now=2,
        update_id=ids(),
    ).incident
    assert not taken.automated
    [recovered] = plan(up("api-eu", 10 * MIN), [taken], config, 10 * MIN, ids)
    assert recovered.change.update is None
    assert recovered.change.events == []
    assert recovered.change.incident.status is Status.IDENTIFIED
    assert recovered.change.incident.outages == {}


async def _save(db: Database, *changes: object) -> None:
    from uptally.incidents.transitions import Change

    async with db.begin() as conn:
        for change in changes:
            assert isinstance(change, Change)
            if await store.lock(conn, change.incident.id):
                await store.save_incident(conn, change.incident)
            else:
                await store.insert_incident(conn, change.incident)
            if change.update is not None:
                await store.insert_update(conn, change.update)


async def test_the_read_model_lists_and_filters_incidents_for_the_status_page(
    db: Database, clock: FakeClock
) -> None:
    now = clock.now_ms()
    old = declare(
        ids(),
        title="Old",
        status=Status.INVESTIGATING,
        impact=Impact.MINOR,
        components={"website": None},
        message="first",
        actor="a",
        now=now - 100 * MIN,
        update_id=ids(),
    )
    old_done = post_update(
        old.incident,
        status=Status.RESOLVED,
        message="done <img src=x onerror=alert(1)>",
        components=None,
        actor="a",
        now=now - 90 * MIN,
        update_id=ids(),
    )
    current = declare(
        ids(),
        title="Now",
        status=Status.IDENTIFIED,
        impact=Impact.CRITICAL,
        components={"api": None},
        message="now",
        actor="a",
        now=now - 10 * MIN,
        update_id=ids(),
        started_at=now - 20 * MIN,
    )
    await _save(db, old, old_done, current)
    async with db.begin() as conn:
        await store.save_postmortem(
            conn, write_postmortem(old_done.incident, None, "draft", "a", now)
        )
    async with db.connect() as conn:
        every = await store.list_incidents(conn)
        assert [v.title for v in every] == ["Now", "Old"]  # newest first
        [open_one] = await store.list_incidents(conn, unresolved_only=True)
        assert open_one.title == "Now"
        assert open_one.started_at == now - 20 * MIN
        assert [c.component_id for c in open_one.components] == ["api"]
        assert open_one.components[0].status == "major_outage"
        assert [v.title for v in await store.list_incidents(conn, component="website")] == ["Old"]
        assert [v.title for v in await store.list_incidents(conn, since=now - 80 * MIN)] == ["Now"]
        assert [v.title for v in await store.list_incidents(conn, until=now - 50 * MIN)] == ["Old"]
        view = await store.get_incident(conn, old.incident.id)
        assert view is not None
        assert view.status == "resolved"
        assert [u.status for u in view.updates] == ["resolved", "investigating"]  # newest first
        assert "<img" not in view.updates[0].body_html  # escaped, not markup
        assert view.updates[1].affected_components[0].status == "degraded_performance"
        assert view.components[0].current == "operational"
        assert view.postmortem is None  # a draft is not public
        private = await store.get_incident(conn, old.incident.id, public=False)
        assert private is not None
        assert private.postmortem is not None
        assert private.postmortem.published_at is None
        assert await store.get_incident(conn, "no-such-incident") is None


async def test_edits_and_postmortems_move_the_status_pages_change_mark(db: Database) -> None:
    from uptally.incidents.transitions import edit
    from uptally.statuspage.site import outbox_mark

    made = declare(
        ids(),
        title="t",
        status=Status.INVESTIGATING,
        impact=Impact.MINOR,
        components={},
        message=None,
        actor="a",
        now=1_000,
        update_id=ids(),
    )
    await _save(db, made)
    async with db.connect() as conn:
        declared = await outbox_mark(conn)
    await _save(db, edit(made.incident, now=2_000, title="better title"))
    async with db.begin() as conn:
        edited = await outbox_mark(conn)
        await store.save_postmortem(conn, write_postmortem(made.incident, None, "pm", "a", 3_000))
    async with db.connect() as conn:
        drafted = await outbox_mark(conn)
    assert len({declared, edited, drafted}) == 3
