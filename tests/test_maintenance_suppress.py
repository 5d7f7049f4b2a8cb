"""Alert suppression: events about covered monitors are marked, re-alerted when a window ends."""

from __future__ import annotations

from tests.test_sla_ledger import window
from uptally.evaluator import Outage
from uptally.evaluator.changes import event_data
from uptally.events import Event, EventKind
from uptally.maintenance.suppress import Suppressor

T = 1_767_225_600_000
M = 60_000


class Monitors:
    """Which outage of each monitor is open (what the evaluator answers)."""

    def __init__(self) -> None:
        self.open: dict[str, Outage] = {}

    def open_outage(self, monitor: str) -> Outage | None:
        return self.open.get(monitor)


def down(monitor: str, start: int, outage_id: str = "o1") -> tuple[Outage, Event]:
    outage = Outage(outage_id, monitor, start, None, True, {}, "status")
    return outage, Event(EventKind.MONITOR_DOWN, start, monitor, event_data(outage))


def up(outage: Outage, end: int) -> Event:
    closed = Outage(outage.id, outage.monitor, outage.start, end, True, {}, outage.reason)
    return Event(EventKind.MONITOR_UP, end, outage.monitor, event_data(closed))


def make(*windows: object) -> tuple[Suppressor, Monitors]:
    monitors = Monitors()
    suppressor = Suppressor(monitors.open_outage, {"api": ["api-eu", "api-us"], "web": ["web"]})
    suppressor.windows = list(windows)  # type: ignore[arg-type]
    return suppressor, monitors


def suppressed(event: Event) -> str | None:
    marked = event.data.get("suppressed")
    return marked["maintenance"] if isinstance(marked, dict) else None


def test_events_of_covered_monitors_are_marked_and_kept() -> None:
    active = window(T, T + 60 * M, components=("api",), status="in_progress")
    suppressor, _ = make(active)
    _, api_down = down("api-eu", T + M)
    _, web_down = down("web", T + M, "o2")
    degraded = Event(EventKind.MONITOR_DEGRADED, T + M, "api-us", {"monitor": "api-us"})
    other = Event(EventKind.INCIDENT_CREATED, T + M, "api-eu", {})
    marked = suppressor.mark([api_down, web_down, degraded, other], T + 2 * M)
    assert [suppressed(e) for e in marked] == [active.id, None, active.id, None]
    assert marked[0].id == api_down.id  # the same event, with the mark added
    assert marked[0].data["outage"] == "o1"


def test_a_window_covers_by_time_even_before_the_timer_started_it() -> None:
    scheduled = window(T, T + 60 * M, monitors=("web",), components=(), status="scheduled")
    suppressor, _ = make(scheduled)
    _, event = down("web", T - M)
    assert suppressed(suppressor.mark([event], T - 1)[0]) is None
    assert suppressed(suppressor.mark([event], T)[0]) == scheduled.id
    assert suppressed(suppressor.mark([event], T + 60 * M)[0]) is None  # the end is exclusive


def test_the_alert_fires_when_the_window_ends_with_the_monitor_still_down() -> None:
    active = window(T, T + 60 * M, components=("api",), status="in_progress")
    suppressor, monitors = make(active)
    outage, event = down("api-eu", T + 5 * M)
    assert suppressed(suppressor.mark([event], T + 6 * M)[0]) == active.id
    monitors.open["api-eu"] = outage
    ended = window(T, T + 60 * M, components=("api",), status="completed")
    suppressor.windows = [ended]
    suppressor.release(ended)
    [fresh] = suppressor.mark([], T + 60 * M)
    assert (fresh.kind, fresh.subject, fresh.at) == (EventKind.MONITOR_DOWN, "api-eu", T + 60 * M)
    assert fresh.data["after_maintenance"] == active.id
    assert fresh.data["outage"] == outage.id
    assert suppressed(fresh) is None
    assert suppressor.mark([], T + 61 * M) == []  # once
    # its recovery is delivered: the down was
    assert suppressed(suppressor.mark([up(outage, T + 70 * M)], T + 70 * M)[0]) is None


def test_nothing_fires_for_monitors_that_recovered_or_were_alerted_before() -> None:
    active = window(T, T + 60 * M, components=("api",), status="in_progress")
    suppressor, monitors = make(active)
    before, _ = down("api-us", T - 10 * M, "early")  # alerted before the window
    monitors.open["api-us"] = before
    outage, event = down("api-eu", T + 5 * M)
    suppressor.mark([event], T + 6 * M)
    assert suppressed(suppressor.mark([up(outage, T + 20 * M)], T + 20 * M)[0]) == active.id
    ended = window(T, T + 60 * M, components=("api",), status="completed")
    suppressor.windows = [ended]
    suppressor.release(ended)
    assert suppressor.mark([], T + 60 * M) == []


def test_a_recovery_of_an_outage_announced_before_the_window_is_delivered() -> None:
    active = window(T, T + 60 * M, components=("web",), status="in_progress")
    suppressor, _ = make(active)
    outage, _ = down("web", T - 10 * M)
    assert suppressed(suppressor.mark([up(outage, T + 5 * M)], T + 5 * M)[0]) is None


def test_an_overlapping_window_defers_the_alert_to_its_own_end() -> None:
    first = window(T, T + 30 * M, components=("api",), status="in_progress")
    second = window(
        T + 20 * M, T + 90 * M, monitors=("api-eu",), components=(), status="in_progress"
    )
    suppressor, monitors = make(first, second)
    outage, event = down("api-eu", T + 5 * M)
    suppressor.mark([event], T + 5 * M)
    monitors.open["api-eu"] = outage
    first_done = window(T, T + 30 * M, components=("api",), status="completed")
    suppressor.windows = [first_done, second]
    suppressor.release(first_done)
    assert suppressor.mark([], T + 30 * M) == []
    second_done = window(
        T + 20 * M, T + 90 * M, monitors=("api-eu",), components=(), status="completed"
    )
    suppressor.windows = [first_done, second_done]
    suppressor.release(second_done)
    [fresh] = suppressor.mark([], T + 90 * M)
    assert fresh.data["after_maintenance"] == second.id


def test_after_a_restart_the_window_history_tells_which_downs_were_suppressed() -> None:
    ended = window(T, T + 60 * M, components=("api",), status="completed")
    suppressor, monitors = make(ended)  # a fresh process: nothing remembered
    outage, _ = down("api-eu", T + 5 * M)
    monitors.open["api-eu"] = outage
    suppressor.release(ended)
    [fresh] = suppressor.mark([], T + 61 * M)
    assert fresh.data["after_maintenance"] == ended.id
