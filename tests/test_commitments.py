"""Communication commitments with an injected clock: first post, cadence, postmortem, reminders."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime

from tests.conftest import config_from
from uptally.clock import FakeClock, from_datetime
from uptally.config.schema import Commitments
from uptally.incidents import commitments as c
from uptally.incidents.calendar import BusinessCalendar
from uptally.incidents.model import Impact, Status
from uptally.incidents.transitions import declare, post_update
from uptally.metrics import Metrics
from uptally.notify.commitment_timer import CommitmentTimer
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.store import outbox
from uptally.store.database import Database

MIN = 60_000
HOUR = 60 * MIN
_ids = itertools.count()


def new_id() -> str:
    return f"{next(_ids):026x}"


def rules(country: str | None = None, timezone: str = "UTC") -> c.Rules:
    return c.Rules.from_settings(Commitments(), BusinessCalendar(timezone, country))


def at(text: str, timezone: str = "UTC") -> int:
    from zoneinfo import ZoneInfo

    return from_datetime(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(timezone)))


def incident(now: int, message: str | None):
    return declare(
        new_id(),
        title="API down",
        status=Status.INVESTIGATING,
        impact=Impact.MAJOR,
        components={"api": None},
        message=message,
        actor="a",
        now=now,
        update_id=new_id(),
    ).incident


def test_a_first_post_with_the_declaration_meets_it_and_opens_the_update_cadence() -> None:
    made = c.declared(incident(0, "we are on it"), 0, rules(), new_id)
    first, cadence = made
    assert (first.kind, first.state, first.met_at) == (c.Kind.FIRST_POST, c.State.MET, 0)
    assert (cadence.kind, cadence.due_at, cadence.state) == (c.Kind.UPDATE, 30 * MIN, "pending")


def test_a_silent_declaration_is_reminded_then_overdue_once_each_then_met_late_stays_missed() -> (
    None
):
    clock = FakeClock(0)
    [first] = c.declared(incident(0, None), 0, rules(), new_id)
    assert first.due_at == 2 * HOUR
    clock.now = 89 * MIN
    assert c.review([first], clock.now, rules()) == ([], [])
    clock.now = 90 * MIN  # 30 min before the due time
    [due], [reminder] = c.review([first], clock.now, rules())
    assert reminder.state == "due"
    assert c.review([due], clock.now + MIN, rules()) == ([], [])  # said once
    clock.now = 2 * HOUR
    [late], [overdue] = c.review([due], clock.now, rules())
    assert (overdue.state, late.state) == ("overdue", c.State.MISSED)
    assert c.review([late], clock.now + HOUR, rules()) == ([], [])
    assert c.fulfil(late, 3 * HOUR).state is c.State.MISSED  # fulfilled late: still missed


def test_every_update_opens_the_next_thirty_minute_window_until_resolution() -> None:
    opened = incident(0, "first")
    pending = [x for x in c.declared(opened, 0, rules(), new_id) if not x.fulfilled]
    updated = post_update(
        opened,
        status=Status.IDENTIFIED,
        message="x",
        components=None,
        actor="a",
        now=25 * MIN,
        update_id=new_id(),
    ).incident
    met, following = c.posted(pending, updated, 25 * MIN, rules(), new_id)
    assert (met.state, met.met_at) == (c.State.MET, 25 * MIN)
    assert (following.kind, following.due_at) == (c.Kind.UPDATE, 55 * MIN)
    late = post_update(
        updated,
        status=Status.RESOLVED,
        message="ok",
        components=None,
        actor="a",
        now=70 * MIN,
        update_id=new_id(),
    ).incident
    [missed] = c.posted([following], late, 70 * MIN, rules(), new_id, {"api": 14 * MIN})
    assert missed.state is c.State.MISSED  # no cadence after resolution, no postmortem owed


def test_a_component_down_longer_than_fifteen_minutes_owes_a_postmortem_in_business_days() -> None:
    resolved_at = at("2026-12-23T16:00:00", "Europe/Berlin")  # a Wednesday before Christmas
    opened = replace(
        incident(resolved_at - HOUR, "x"), status=Status.RESOLVED, resolved_at=resolved_at
    )
    berlin = rules("DE", "Europe/Berlin")
    [postmortem] = c.posted([], opened, resolved_at, berlin, new_id, {"api": 16 * MIN})
    assert postmortem.kind is c.Kind.POSTMORTEM
    # Thu 24 (1), Fri 25 and Sat 26 (Christmas, weekend), Sun 27, Mon 28 (2), Tue 29 (3),
    # Wed 30 (4), Thu 31 (5): due at the end of 31 December, Berlin time.
    assert postmortem.due_at == at("2027-01-01T00:00:00", "Europe/Berlin")
    without_holidays = rules(None, "Europe/Berlin")
    [plain] = c.posted([], opened, resolved_at, without_holidays, new_id, {"api": 16 * MIN})
    assert plain.due_at == at("2026-12-31T00:00:00", "Europe/Berlin")  # Dec 24..30, weekdays
    assert c.posted([], opened, resolved_at, berlin, new_id, {"api": 15 * MIN}) == []
    [done] = c.postmortem_published([postmortem], resolved_at + 3 * 86_400_000)
    assert done.state is c.State.MET


def test_downtime_from_the_incident_timeline_counts_only_outage_statuses() -> None:
    opened = incident(0, "x")  # major impact: api partial_outage from the start
    updates = []
    change = declare(
        new_id(),
        title="t",
        status=Status.INVESTIGATING,
        impact=Impact.MAJOR,
        components={"api": None},
        message="x",
        actor="a",
        now=0,
        update_id=new_id(),
    )
    assert change.update is not None
    updates.append(change.update)
    later = post_update(
        change.incident,
        status=Status.MONITORING,
        message="better",
        components={"api": "degraded_performance"},
        actor="a",
        now=10 * MIN,
        update_id=new_id(),
    )
    assert later.update is not None
    updates.append(later.update)
    spans = c.down_spans(replace(later.incident, resolved_at=40 * MIN), updates, 40 * MIN)
    assert c.downtime(spans) == {"api": 10 * MIN}
    assert opened.started_at == 0


async def test_the_timer_raises_commitment_due_once_per_reminder_in_the_outbox(
    db: Database, clock: FakeClock
) -> None:
    config = config_from("components: [{id: api}]")
    declared = incident(clock.now_ms(), None)
    async with db.begin() as conn:
        await store.insert_incident(conn, declared)
        await commitment_store.save_commitments(
            conn, c.declared(declared, clock.now_ms(), rules(), new_id)
        )
    metrics = Metrics()
    timer = CommitmentTimer(db, clock, metrics, lambda: config)
    assert await timer.step() == 0
    clock.advance(90 * MIN)
    assert await timer.step() == 1
    assert await timer.step() == 0
    clock.advance(30 * MIN)
    assert await timer.step() == 1
    async with db.connect() as conn:
        events = await outbox.list_events(conn, kind="commitment.due")
        [kept] = await commitment_store.load_commitments(conn, incident=declared.id)
    assert [(e.data["commitment"], e.data["state"]) for e in events] == [
        ("first_post", "due"),
        ("first_post", "overdue"),
    ]
    assert events[0].data["components"] == ["api"]
    assert events[0].data["title"] == "API down"
    assert kept.state is c.State.MISSED
    assert metrics.commitment_reminders.labels("first_post", "overdue")._value.get() == 1


def test_business_days_skip_weekends_and_the_countrys_holidays() -> None:
    calendar = BusinessCalendar("America/New_York", "US")
    friday = at("2026-07-03T10:00:00", "America/New_York")  # US Independence Day observed
    # Mon 6 (1) … Fri 10 (5): due at the end of Friday 10 July, New York time.
    assert calendar.due_after(friday, 5) == at("2026-07-11T00:00:00", "America/New_York")
    assert not calendar.is_business_day(datetime(2026, 7, 3, tzinfo=UTC).date())
