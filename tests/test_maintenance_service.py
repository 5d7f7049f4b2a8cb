"""Maintenance windows on a real database: states, notice, audit, events, recurrence, alerts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import config_from
from uptally import audit
from uptally.clock import FakeClock
from uptally.config import Config
from uptally.evaluator import MonitorState
from uptally.maintenance.service import Plan, WindowError
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store import maintenance as store
from uptally.store import outbox
from uptally.store.audit import AuditFilter
from uptally.store.database import Database

M = 60_000
H = 60 * M
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, the FakeClock's start
CONFIG = """
site: {timezone: Europe/Berlin}
monitors:
  - {id: api-eu, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: api-us, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, monitors: [api-eu, api-us]}
  - {id: web, monitors: [web]}
"""


async def started(db_url: str, clock: FakeClock, text: str = CONFIG) -> Runtime:
    runtime = Runtime(
        config_from(text), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    return runtime


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    rt = await started(db_url, clock)
    yield rt
    await rt.stop()


async def create(runtime: Runtime, plan: Plan, actor: str = "token:test") -> Any:
    async with runtime.db.begin() as conn:
        window = await runtime.maintenance.service.create(conn, plan, actor)
    runtime.maintenance.changed(window)
    return window


async def events(runtime: Runtime, kind: str | None = None) -> list[Any]:
    async with runtime.db.connect() as conn:
        found = await outbox.list_events(conn, kind=kind, limit=1000)
    return [e for e in found if kind is not None or not e.kind.startswith("sla.")]


async def actions(runtime: Runtime, prefix: str = "maintenance.*") -> list[str]:
    async with runtime.db.connect() as conn:
        entries = await audit.list_entries(
            conn, AuditFilter(action=prefix, newest_first=False, limit=1000)
        )
    return [e.action for e in entries]


async def window_of(runtime: Runtime, window_id: str) -> Any:
    async with runtime.db.connect() as conn:
        return await store.get_window(conn, window_id)


async def test_a_window_is_scheduled_flagged_when_short_and_audit_logged(runtime: Runtime) -> None:
    soon = await create(runtime, Plan("DB upgrade", T0 + 2 * H, T0 + 3 * H, ["api"], [], "v16"))
    later = await create(runtime, Plan("Network", T0 + 48 * H, T0 + 49 * H, [], ["web"]))
    assert (soon.status, soon.short_notice, later.short_notice) == ("scheduled", True, False)
    assert soon.updates[0].status == "scheduled"
    assert soon.updates[0].body == "v16"
    [first, second] = await events(runtime, "maintenance.scheduled")
    assert (first.subject, first.data["short_notice"], first.data["components"]) == (
        soon.id,
        True,
        ["api"],
    )
    assert second.data["scheduled_for"] == "2026-01-03T00:00:00.000Z"
    assert await actions(runtime) == ["maintenance.created", "maintenance.created"]


async def test_short_notice_is_refused_when_the_site_says_so(db_url: str, clock: FakeClock) -> None:
    text = CONFIG.replace("timezone: Europe/Berlin", "timezone: UTC, short_notice: refuse")
    runtime = await started(db_url, clock, text)
    try:
        with pytest.raises(WindowError, match="at least 24 h") as refused:
            await create(runtime, Plan("Now", T0 + H, T0 + 2 * H, ["api"], []))
        assert refused.value.status == 422
        fine = await create(runtime, Plan("Later", T0 + 25 * H, T0 + 26 * H, ["api"], []))
        assert fine.short_notice is False
    finally:
        await runtime.stop()


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (Plan("x", T0 + H, T0 + H, ["api"], []), "end must be after start"),
        (Plan("x", T0 - 2 * H, T0 - H, ["api"], []), "ends in the past"),
        (Plan("x", T0 - H, T0 + H, ["api"], []), "starts in the past"),
        (Plan("x", T0 + H, T0 + 2 * H, [], []), "at least one component or monitor"),
        (Plan("x", T0 + H, T0 + 2 * H, ["nope"], []), "no component 'nope'"),
        (Plan("x", T0 + H, T0 + 100 * 24 * H, ["api"], []), "at most 90 days"),
    ],
)
async def test_impossible_windows_are_refused(runtime: Runtime, plan: Plan, message: str) -> None:
    with pytest.raises(WindowError, match=message):
        await create(runtime, plan)
    assert await window_count(runtime) == 0


async def window_count(runtime: Runtime) -> int:
    async with runtime.db.connect() as conn:
        return len(await store.list_windows(conn, limit=1000))


async def test_windows_start_and_complete_by_themselves(runtime: Runtime, clock: FakeClock) -> None:
    window = await create(runtime, Plan("Upgrade", T0 + H, T0 + 2 * H, ["api"], []))
    await runtime.maintenance.step()
    assert (await window_of(runtime, window.id)).status == "scheduled"
    clock.advance(H)
    assert await runtime.maintenance.step() == T0 + 2 * H  # the next transition: its end
    running = await window_of(runtime, window.id)
    assert (running.status, running.started_at) == ("in_progress", T0 + H)
    assert runtime.maintenance.monitor_state("api-us", MonitorState.UP) is MonitorState.MAINTENANCE
    assert runtime.maintenance.monitor_state("web", MonitorState.UP) is MonitorState.UP
    clock.advance(H + 5)
    await runtime.maintenance.step()
    done = await window_of(runtime, window.id)
    assert (done.status, done.completed_at) == ("completed", T0 + 2 * H)
    assert [u.status for u in done.updates] == ["completed", "in_progress", "scheduled"]
    assert [e.kind for e in await events(runtime)] == [
        "maintenance.scheduled",
        "maintenance.started",
        "maintenance.completed",
    ]
    assert await actions(runtime) == [
        "maintenance.created",
        "maintenance.started",
        "maintenance.completed",
    ]
    assert runtime.maintenance.monitor_state("api-us", MonitorState.UP) is MonitorState.UP


async def test_a_window_missed_while_uptally_was_down_is_recorded_as_it_was_planned(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    runtime = await started(db_url, clock)
    window = await create(runtime, Plan("Upgrade", T0 + H, T0 + 2 * H, ["api"], []))
    await runtime.stop()
    clock.advance(5 * H)
    runtime = await started(db_url, clock)
    try:
        done = await window_of(runtime, window.id)
        assert (done.status, done.started_at, done.completed_at) == (
            "completed",
            T0 + H,
            T0 + 2 * H,
        )
    finally:
        await runtime.stop()


async def test_extending_ending_early_and_cancelling(runtime: Runtime, clock: FakeClock) -> None:
    service = runtime.maintenance.service
    running = await create(runtime, Plan("Upgrade", T0 + M, T0 + H, ["api"], []))
    spare = await create(runtime, Plan("Spare", T0 + 30 * H, T0 + 31 * H, ["web"], []))
    clock.advance(2 * M)
    await runtime.maintenance.step()
    async with runtime.db.begin() as conn:
        extended = await service.change(conn, running.id, "token:a", end=T0 + 3 * H)
    assert (extended.status, extended.scheduled_until) == ("in_progress", T0 + 3 * H)
    assert extended.updates[0].body.startswith("Maintenance extended until 2026-01-01T03:00")
    async with runtime.db.begin() as conn:
        with pytest.raises(WindowError, match="has started"):
            await service.change(conn, running.id, "token:a", start=T0 + 10 * H)
    clock.advance(M)
    async with runtime.db.begin() as conn:
        ended = await service.end(conn, running.id, "token:a", "All done early.")
    assert (ended.status, ended.completed_at) == ("completed", T0 + 3 * M)
    assert ended.updates[0].body == "All done early."
    async with runtime.db.begin() as conn:
        cancelled = await service.cancel(conn, spare.id, "token:a")
        with pytest.raises(WindowError) as late:
            await service.change(conn, ended.id, "token:a", title="again")
    assert late.value.status == 409
    assert cancelled.status == "cancelled"
    assert cancelled.span() is None
    completed = await events(runtime, "maintenance.completed")
    assert [(e.subject, e.data.get("early"), e.data.get("cancelled")) for e in completed] == [
        (running.id, True, None),
        (spare.id, None, True),
    ]
    assert await actions(runtime) == [
        "maintenance.created",
        "maintenance.created",
        "maintenance.started",
        "maintenance.changed",
        "maintenance.completed",
        "maintenance.cancelled",
    ]
    async with runtime.db.connect() as conn:
        [changed] = await audit.list_entries(conn, AuditFilter(action="maintenance.changed"))
        report = await audit.verify(conn)
    assert changed.details == {
        "scheduled_until": {"from": "2026-01-01T01:00:00.000Z", "to": "2026-01-01T03:00:00.000Z"}
    }
    assert changed.actor == "token:a"
    assert report.ok


async def test_rescheduling_announces_again_and_may_become_short_notice(runtime: Runtime) -> None:
    window = await create(runtime, Plan("Upgrade", T0 + 48 * H, T0 + 49 * H, ["api"], []))
    async with runtime.db.begin() as conn:
        moved = await runtime.maintenance.service.change(
            conn, window.id, "token:a", start=T0 + 2 * H, end=T0 + 4 * H
        )
    assert (moved.scheduled_for, moved.short_notice) == (T0 + 2 * H, True)
    announced = await events(runtime, "maintenance.scheduled")
    assert [e.data.get("rescheduled") for e in announced] == [None, True]


RECURRING = (
    CONFIG
    + """
maintenance:
  - id: vacuum
    title: Database vacuum
    rrule: FREQ=WEEKLY;BYDAY=SU
    start: 2026-01-04T02:00
    duration: 2h
    components: [api]
  - title: Switch replacement
    start: 2026-01-10T22:00
    end: 2026-01-11T01:00
    monitors: [web]
"""
)


def utc(*parts: int) -> int:
    return round(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


async def test_recurring_windows_follow_the_config_through_reloads(
    db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    path = tmp_path / "uptally.yaml"
    path.write_text(RECURRING)
    runtime = await started(db_url, clock, RECURRING)
    runtime.config_path = path

    async def series() -> list[tuple[str, str]]:
        async with runtime.db.connect() as conn:
            found = await store.list_windows(conn, series="vacuum", limit=100, newest_first=False)
        return [(w.id, w.status) for w in found]

    try:
        async with runtime.db.connect() as conn:
            first = await store.list_windows(conn, limit=100, newest_first=False)
        # a week ahead: Sunday 02:00 in Berlin (01:00 UTC), and the one-off window
        assert [(w.id, w.series, w.short_notice) for w in first] == [
            ("vacuum@20260104T0100Z", "vacuum", False),
            (first[1].id, None, False),
        ]
        assert first[1].id.startswith("cfg-")
        assert first[1].scheduled_for == utc(2026, 1, 10, 21)
        # a week later the next Sunday is scheduled; that occurrence is cancelled by hand
        clock.advance(7 * 24 * H)
        await runtime.maintenance.step()
        async with runtime.db.begin() as conn:
            await runtime.maintenance.service.cancel(conn, "vacuum@20260111T0100Z", "token:a")
        # the one-off window now covers one more monitor
        path.write_text(RECURRING.replace("monitors: [web]\n", "monitors: [web, api-eu]\n"))
        await runtime.reload("signal:SIGHUP")
        assert (await window_of(runtime, first[1].id)).monitors == ["web", "api-eu"]
        clock.advance(3 * 24 * H + 2 * H)  # Sunday 2026-01-11 03:00 in Berlin
        runtime.maintenance._next_series = 0
        await runtime.maintenance.step()
        assert await series() == [
            ("vacuum@20260104T0100Z", "completed"),
            ("vacuum@20260111T0100Z", "cancelled"),  # not brought back by later expansions
            ("vacuum@20260118T0100Z", "scheduled"),
        ]
        # Saturdays instead: the Sunday not started yet is cancelled, the Saturday scheduled
        path.write_text(RECURRING.replace("BYDAY=SU", "BYDAY=SA"))
        await runtime.reload("signal:SIGHUP")
        assert await series() == [
            ("vacuum@20260104T0100Z", "completed"),
            ("vacuum@20260111T0100Z", "cancelled"),
            ("vacuum@20260117T0100Z", "scheduled"),
            ("vacuum@20260118T0100Z", "cancelled"),
        ]
        # removed from the config: the series stops, its occurrences are cancelled
        path.write_text(CONFIG)
        await runtime.reload("signal:SIGHUP")
        async with runtime.db.connect() as conn:
            left = await store.list_windows(conn, states={"scheduled"}, limit=100)
            row = await store.get_series(conn, "vacuum")
        assert left == []
        assert row is not None
        assert row.cancelled_at is not None
        logged = await actions(runtime)
        assert logged.count("maintenance.series_changed") == 1
        assert logged[-2:] == ["maintenance.series_cancelled", "maintenance.cancelled"]
    finally:
        await runtime.stop()


async def test_a_monitor_down_during_maintenance_alerts_when_the_window_ends(
    runtime: Runtime, clock: FakeClock
) -> None:
    window = await create(runtime, Plan("Upgrade", T0 + M, T0 + 10 * M, ["api"], []))
    clock.advance(M)
    await runtime.maintenance.step()
    for n in range(3):  # api-eu fails and stays down; web fails too (not covered)
        clock.advance(10_000)
        for monitor in ("api-eu", "web"):
            runtime.ingest.submit(
                Result(f"r{monitor}{n}", monitor, "local", clock.now_ms(), False, 5.0, "status", "")
            )
        await runtime.ingest.drained()
    downs = await events(runtime, "monitor.down")
    assert [(e.subject, e.data.get("suppressed")) for e in downs] == [
        ("api-eu", {"maintenance": window.id}),
        ("web", None),
    ]
    assert runtime.state_counts()["maintenance"] == 2  # api-eu and api-us are covered
    clock.advance(10 * M)
    await runtime.maintenance.step()
    await runtime.ingest.drained()
    fresh = (await events(runtime, "monitor.down"))[2:]
    assert [(e.subject, e.data.get("after_maintenance"), e.at) for e in fresh] == [
        ("api-eu", window.id, clock.now_ms())
    ]
    assert fresh[0].data["outage"] == downs[0].data["outage"]
    assert runtime.metrics.events_suppressed.labels("monitor.down")._value.get() == 1


async def test_config_windows_are_checked_like_the_rest(db_url: str, clock: FakeClock) -> None:
    config: Config = config_from(RECURRING)
    assert [w.recurring for w in config.maintenance] == [True, False]
