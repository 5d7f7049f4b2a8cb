"""The evaluator: recorded sequences and property-based tests, without sockets or clocks."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from uptally.evaluator import Evaluation, Evaluator, MonitorState, Outage, Rules
from uptally.evaluator.timeline import Pauses
from uptally.events import EventKind
from uptally.results import Result

S = 1000  # one second in ms


class Store:
    """What the database would hold: every result, and the outages written so far."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.outages: dict[str, Outage] = {}
        self.events: list[tuple[str, str]] = []

    def history(self, monitor: str, location: str, late_at: int) -> tuple[int | None, list[Result]]:
        mine = [r for r in self.results if r.monitor == monitor and r.location == location]
        resets = [r.at for r in mine if r.ok and r.at < late_at]
        reset = max(resets) if resets else None
        return reset, sorted(
            (r for r in mine if reset is None or r.at >= reset), key=lambda r: r.at
        )

    def apply(self, evaluation: Evaluation) -> None:
        for outage_id in evaluation.removed_outages:
            self.outages.pop(outage_id, None)
        self.outages.update(evaluation.outages)
        self.events.extend((e.kind.value, e.subject) for e in evaluation.events)


def feed(
    evaluator: Evaluator, store: Store, batch: Sequence[Result], now: int | None = None
) -> Evaluation:
    """What the writer does: store the batch, load histories for late results, evaluate."""
    store.results.extend(batch)
    histories = {
        key: store.history(key[0], key[1], late_at)
        for key, late_at in evaluator.late_points(batch).items()
    }
    evaluation = evaluator.evaluate(batch, histories, now)
    store.apply(evaluation)
    return evaluation


counter = iter(range(10**9))


def result(
    at_s: float, ok: bool, location: str = "local", monitor: str = "api", degraded: bool = False
) -> Result:
    at = round(at_s * S)
    return Result(
        f"r{next(counter):08d}",
        monitor,
        location,
        at,
        ok,
        12.0,
        None if ok else "timeout",
        "" if ok else f"timed out ({location})",
        degraded,
    )


def evaluator_for(
    confirm: int = 2,
    locations: Iterable[str] = ("local",),
    consensus: str | int = "all",
    stale_s: float | None = None,
) -> Evaluator:
    evaluator = Evaluator()
    stale = None if stale_s is None else round(stale_s * S)
    evaluator.set_rules("api", Rules(confirm, tuple(locations), consensus, stale))
    return evaluator


def run(evaluator: Evaluator, results: Sequence[Result], now: int | None = None) -> Store:
    store = Store()
    for item in results:
        feed(evaluator, store, [item], now)
    return store


# -- recorded sequences ---------------------------------------------------------------------------


def test_a_single_failure_below_confirm_is_not_an_outage() -> None:
    store = run(evaluator_for(confirm=2), [result(0, True), result(60, False), result(70, True)])
    assert store.outages == {}
    assert store.events == []


def test_an_outage_starts_at_the_first_failing_check_not_the_confirming_one() -> None:
    evaluator = evaluator_for(confirm=3)
    store = run(
        evaluator,
        [
            result(0, True),
            result(60, False),
            result(70, False),
            result(80, False),
            result(90, True),
        ],
    )
    [outage] = store.outages.values()
    assert (outage.start, outage.end, outage.verified) == (60 * S, 90 * S, True)
    assert store.events == [("monitor.down", "api"), ("monitor.up", "api")]
    assert outage.reason == "timeout: timed out (local)"


def test_the_down_event_is_written_when_the_failure_is_confirmed() -> None:
    evaluator = evaluator_for(confirm=2)
    store = Store()
    assert feed(evaluator, store, [result(0, True)]).events == []
    assert feed(evaluator, store, [result(60, False)]).events == []
    confirming = feed(evaluator, store, [result(70, False)])
    assert [e.kind for e in confirming.events] == [EventKind.MONITOR_DOWN]
    assert confirming.events[0].at == 60 * S
    assert evaluator.status("api").state is MonitorState.DOWN  # type: ignore[union-attr]
    recovering = feed(evaluator, store, [result(80, True)])
    assert [e.kind for e in recovering.events] == [EventKind.MONITOR_UP]
    assert recovering.events[0].data["duration_ms"] == 20 * S
    assert evaluator.status("api").state is MonitorState.UP  # type: ignore[union-attr]


def test_a_monitor_without_results_is_unknown_and_never_up() -> None:
    evaluator = evaluator_for()
    assert evaluator.status("api").state is MonitorState.UNKNOWN  # type: ignore[union-attr]


def test_with_consensus_all_a_failure_at_one_location_is_degraded_not_down() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"))
    store = run(
        evaluator,
        [
            result(0, True, "eu"),
            result(1, True, "local"),
            result(60, False, "local"),
            result(61, True, "eu"),
            result(120, True, "local"),
        ],
    )
    assert evaluator.status("api").state is MonitorState.UP  # type: ignore[union-attr]
    [outage] = store.outages.values()
    assert outage.verified is False
    assert ("monitor.down", "api") not in store.events
    assert ("monitor.degraded", "api") in store.events


def test_with_consensus_all_downtime_is_the_intersection_of_the_locations() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"))
    store = run(
        evaluator,
        [
            result(0, True, "local"),
            result(0.5, True, "eu"),
            result(60, False, "local"),
            result(65, False, "eu"),
            result(90, True, "local"),
            result(95, True, "eu"),
        ],
    )
    [outage] = store.outages.values()
    assert (outage.start, outage.end, outage.verified) == (65 * S, 90 * S, True)
    assert {n: (s.start, s.end) for n, s in outage.locations.items()} == {
        "local": (60 * S, 90 * S),
        "eu": (65 * S, 95 * S),
    }


def test_with_consensus_any_downtime_is_the_union_of_the_locations() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"), consensus="any")
    store = run(
        evaluator,
        [
            result(0, True, "local"),
            result(0.5, True, "eu"),
            result(60, False, "local"),
            result(65, False, "eu"),
            result(90, True, "local"),
            result(95, True, "eu"),
        ],
    )
    [outage] = store.outages.values()
    assert (outage.start, outage.end) == (60 * S, 95 * S)


def test_with_a_quorum_two_of_three_locations_must_agree() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b", "c"), consensus=2)
    store = run(
        evaluator,
        [
            result(0, True, "a"),
            result(0, True, "b"),
            result(0, True, "c"),
            result(10, False, "a"),
            result(20, False, "b"),
            result(30, False, "c"),
            result(40, True, "a"),
            result(50, True, "b"),
            result(60, True, "c"),
        ],
    )
    [outage] = store.outages.values()
    assert (outage.start, outage.end, outage.verified) == (20 * S, 50 * S, True)


def test_results_for_unknown_monitors_and_unassigned_locations_are_rejected() -> None:
    evaluator = evaluator_for()
    evaluation = evaluator.evaluate([result(0, True, "mars"), result(0, True, monitor="ghost")])
    assert [reason for _, reason in evaluation.rejected] == [
        "location not assigned to this monitor",
        "unknown monitor",
    ]
    assert evaluation.accepted == []


def test_an_open_outage_survives_a_restart() -> None:
    first = evaluator_for(confirm=2)
    store = run(first, [result(0, True), result(60, False), result(70, False)])
    [outage] = store.outages.values()
    second = evaluator_for(confirm=2)
    second.restore(first.location_snapshots("api"), store.outages.values(), [first.status("api")])  # type: ignore[list-item]
    assert second.status("api").state is MonitorState.DOWN  # type: ignore[union-attr]
    later = feed(second, store, [result(80, False)])
    assert later.events == []  # still the same outage: no second monitor.down
    recovered = feed(second, store, [result(90, True)])
    assert [(o.id, o.start, o.end) for o in recovered.outages.values()] == [
        (outage.id, 60 * S, 90 * S)
    ]
    assert [e.kind for e in recovered.events] == [EventKind.MONITOR_UP]


def test_a_crash_that_lost_a_lazily_saved_run_of_successes_does_not_leave_a_silent_gap() -> None:
    # eu's run of successes is saved when it begins, then extended in memory only; the crash
    # loses the extension. Without catching up from its newest stored result, eu would look
    # silent from 3 s on, and local's failures (eu saw none) would become verified downtime.
    def restarted(newest: list[Result]) -> list[Outage]:
        first = evaluator_for(confirm=1, locations=("local", "eu"), stale_s=3)
        store = Store()
        feed(first, store, [result(0, True, "eu"), result(0, True)])
        saved = first.snapshot("api", "eu")
        for second in range(1, 11):
            feed(first, store, [result(second, True, "eu"), result(second, second < 5)])
        second = evaluator_for(confirm=1, locations=("local", "eu"), stale_s=3)
        second.restore(
            [saved, first.snapshot("api", "local")],  # type: ignore[list-item]
            store.outages.values(),
            [first.status("api")],  # type: ignore[list-item]
            newest,
        )
        feed(second, store, [result(11, True, "eu"), result(11, False)])
        return list(store.outages.values())

    newest_eu = result(10, True, "eu")
    [seen_by_local] = restarted([newest_eu])
    assert (seen_by_local.start, seen_by_local.verified) == (5 * S, False)
    assert any(o.verified for o in restarted([]))  # what the gap did


def test_a_late_success_inside_a_failure_run_splits_it_below_confirm() -> None:
    evaluator = evaluator_for(confirm=2)
    store = run(
        evaluator, [result(0, True), result(60, False), result(80, False), result(100, True)]
    )
    assert len(store.outages) == 1
    feed(evaluator, store, [result(70, True)])  # a replayed result that was delayed
    assert store.outages == {}
    assert ("monitor.up", "api") in store.events


def test_a_late_failure_can_complete_a_confirmation() -> None:
    evaluator = evaluator_for(confirm=2)
    store = run(evaluator, [result(0, True), result(60, False), result(80, True)])
    assert store.outages == {}
    feed(evaluator, store, [result(70, False)])
    [outage] = store.outages.values()
    assert (outage.start, outage.end) == (60 * S, 80 * S)
    assert list(store.events) == [("monitor.down", "api"), ("monitor.up", "api")]


def test_an_outage_that_ended_while_results_were_delayed_ends_at_the_right_time() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"), consensus="any")
    store = run(
        evaluator, [result(0, True, "local"), result(0, True, "eu"), result(10, False, "eu")]
    )
    # eu's agent lost its hub; its queue is replayed later, after local moved on
    feed(evaluator, store, [result(t, True, "local") for t in range(20, 200, 10)])
    feed(evaluator, store, [result(t, t >= 50, "eu") for t in range(20, 200, 10)])
    [outage] = store.outages.values()
    assert (outage.start, outage.end) == (10 * S, 50 * S)


# -- properties ------------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, tuple[str, ...], str | int, list[Result]]:
    confirm = draw(st.integers(1, 3))
    locations = tuple(draw(st.sampled_from([("local",), ("local", "eu"), ("a", "b", "c")])))
    consensus = draw(st.sampled_from(["all", "any", *range(1, len(locations) + 1)]))
    items = []
    for location in locations:
        outcomes = draw(st.lists(st.booleans(), min_size=1, max_size=25))
        offset = draw(st.integers(0, 9))
        items.extend(result(offset + 10 * i, ok, location) for i, ok in enumerate(outcomes))
    return confirm, locations, consensus, items


def outages_of(
    store: Store,
) -> list[tuple[int, int | None, bool, tuple[tuple[str, int, int | None], ...]]]:
    return sorted(
        (
            o.start,
            o.end,
            o.verified,
            tuple(sorted((n, s.start, s.end) for n, s in o.locations.items())),
        )
        for o in store.outages.values()
    )


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(1, 7))
def test_outages_do_not_depend_on_arrival_order(
    case: tuple[int, tuple[str, ...], str | int, list[Result]],
    shuffler: random.Random,
    batch: int,
) -> None:
    confirm, locations, consensus, items = case
    in_order = run(evaluator_for(confirm, locations, consensus), sorted(items, key=lambda r: r.at))
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    evaluator = evaluator_for(confirm, locations, consensus)
    store = Store()
    for start in range(0, len(shuffled), batch):
        feed(evaluator, store, shuffled[start : start + batch])
    assert outages_of(store) == outages_of(in_order)


@settings(max_examples=200, deadline=None)
@given(histories())
def test_verified_outages_never_overlap_and_lie_within_the_results(
    case: tuple[int, tuple[str, ...], str | int, list[Result]],
) -> None:
    confirm, locations, consensus, items = case
    store = run(evaluator_for(confirm, locations, consensus), sorted(items, key=lambda r: r.at))
    verified = sorted((o.start, o.end) for o in store.outages.values() if o.verified)
    first = min(r.at for r in items)
    for start, end in verified:
        assert start >= first
        assert end is None or end > start
    for (_, end), (following, _) in itertools.pairwise(verified):
        assert end is not None
        assert end <= following


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(1, 4))
def test_a_single_location_is_down_exactly_during_runs_of_confirm_failures(
    outcomes: list[bool],
    confirm: int,
) -> None:
    items = [result(10 * i, ok) for i, ok in enumerate(outcomes)]
    store = run(evaluator_for(confirm), items)
    expected = []
    i = 0
    while i < len(outcomes):
        if outcomes[i]:
            i += 1
            continue
        j = i
        while j < len(outcomes) and not outcomes[j]:
            j += 1
        if j - i >= confirm:
            expected.append((10 * i * S, 10 * j * S if j < len(outcomes) else None))
        i = j
    assert sorted((o.start, o.end) for o in store.outages.values()) == expected
    downs = sum(1 for kind, _ in store.events if kind == "monitor.down")
    ups = sum(1 for kind, _ in store.events if kind == "monitor.up")
    assert downs == len(expected)
    assert ups == sum(1 for _, end in expected if end is not None)


def test_unconfirmed_failures_alone_leave_a_monitor_unknown_not_up() -> None:
    evaluator = evaluator_for(confirm=2)
    run(evaluator, [result(0, False)])
    status = evaluator.status("api")
    assert status is not None
    assert status.state is MonitorState.UNKNOWN
    assert evaluator.location_snapshots("api")[0].state.value == "unknown"
    store = run(evaluator, [result(10, True)])
    assert store.outages == {}
    status = evaluator.status("api")
    assert status is not None
    assert (status.state, status.since) == (MonitorState.UP, 10 * S)


# -- locations that go silent or degraded ---------------------------------------------------------


def test_a_silent_location_stops_counting_and_the_live_one_decides() -> None:
    # eu's agent dies at 30 s; local then sees the target down: with `all`, downtime is
    # verified by the locations still alive, not vetoed by a dead one.
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"), stale_s=25)
    items = [result(t, True, "eu") for t in (0, 10, 20, 30)]
    items += [result(t, t < 60 or t >= 120, "local") for t in range(0, 150, 10)]
    store = run(evaluator, sorted(items, key=lambda r: r.at), now=200 * S)
    [outage] = store.outages.values()
    assert (outage.start, outage.end, outage.verified) == (60 * S, 120 * S, True)


def test_failures_seen_while_a_probe_cannot_reach_its_canaries_do_not_count() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local", "eu"), consensus="any")
    items = [result(0, True, "local"), result(0, True, "eu")]
    items += [result(t, False, "eu", degraded=True) for t in (10, 20, 30)]
    items += [result(t, True, "local") for t in (10, 20, 30)]
    store = run(evaluator, items, now=40 * S)
    assert store.outages == {}
    status = evaluator.status("api")
    assert status is not None
    assert status.state is MonitorState.UP


def test_a_monitor_whose_locations_all_went_silent_is_unknown_not_up() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local",), stale_s=30)
    run(evaluator, [result(0, True), result(10, True)], now=10 * S)
    assert evaluator.status("api").state is MonitorState.UP  # type: ignore[union-attr]
    evaluation = evaluator.tick(now=39 * S)
    assert evaluation.statuses == {}
    evaluation = evaluator.tick(now=41 * S)
    assert evaluation.statuses["api"].state is MonitorState.UNKNOWN


def test_an_outage_ends_when_its_only_location_goes_silent() -> None:
    evaluator = evaluator_for(confirm=1, locations=("eu",), stale_s=30)
    run(evaluator, [result(0, True, "eu"), result(10, False, "eu")], now=10 * S)
    assert evaluator.status("api").state is MonitorState.DOWN  # type: ignore[union-attr]
    evaluation = evaluator.tick(now=100 * S)
    [outage] = evaluation.outages.values()
    assert (outage.start, outage.end) == (10 * S, 40 * S)
    assert [e.kind.value for e in evaluation.events] == ["monitor.up"]


def test_an_outage_open_when_uptally_stopped_continues_after_a_restart() -> None:
    # Down from 10 s; uptally stops at 12 s and restarts at 100 s (stale after 30 s of running
    # time): the silence while it was not running is nobody's, so nothing closes or reopens.
    evaluator = evaluator_for(confirm=1, locations=("local",), stale_s=30)
    store = run(evaluator, [result(0, True), result(10, False)], now=10 * S)
    evaluator.pause(12 * S, 100 * S)
    assert evaluator.tick(now=101 * S).events == []
    evaluation = feed(evaluator, store, [result(102, False)], now=102 * S)
    assert evaluation.events == []
    assert evaluation.outages == {}
    feed(evaluator, store, [result(103, True)], now=103 * S)
    [outage] = store.outages.values()
    assert (outage.start, outage.end) == (10 * S, 103 * S)
    assert store.events == [("monitor.down", "api"), ("monitor.up", "api")]


def test_a_location_silent_after_a_restart_stops_counting_on_running_time() -> None:
    evaluator = evaluator_for(confirm=1, locations=("eu",), stale_s=30)
    run(evaluator, [result(0, True, "eu"), result(10, False, "eu")], now=10 * S)
    evaluator.pause(20 * S, 100 * S)  # 10 s of running time before the stop, 20 s after
    assert evaluator.tick(now=119 * S).events == []
    evaluation = evaluator.tick(now=121 * S)
    [outage] = evaluation.outages.values()
    assert (outage.start, outage.end) == (10 * S, 120 * S)


def test_no_silence_counts_while_uptally_is_starting_up_however_long_that_takes() -> None:
    evaluator = evaluator_for(confirm=1, locations=("local",), stale_s=30)
    store = run(evaluator, [result(0, True), result(10, False)], now=10 * S)
    evaluator.hold(12 * S)  # the last sign of life; the start-up takes a long time
    assert evaluator.tick(now=1000 * S).events == []
    evaluator.resume(1000 * S)  # 2 s ran before the stop: 28 s of silence are left
    assert evaluator.tick(now=1027 * S).events == []
    feed(evaluator, store, [result(1027, True)], now=1027 * S)
    [outage] = store.outages.values()
    assert (outage.start, outage.end) == (10 * S, 1027 * S)
    assert evaluator.tick(now=1100 * S).statuses["api"].state is MonitorState.UNKNOWN


def test_running_time_skips_every_pause_it_meets() -> None:
    pauses = Pauses()
    pauses.add(10, 20)
    pauses.add(30, 40)
    pauses.add(35, 50)  # merged with the one before
    assert pauses.spans == [(10, 20), (30, 50)]
    assert pauses.after(0, 5) == 5
    assert pauses.after(0, 15) == 25
    assert pauses.after(15, 12) == 52  # paused to 20, running to 30, paused to 50, 2 more
    assert pauses.after(60, 10) == 70


@st.composite
def patchy_histories(
    draw: st.DrawFn,
) -> tuple[int, tuple[str, ...], str | int, float, list[Result], int]:
    confirm = draw(st.integers(1, 3))
    locations = tuple(draw(st.sampled_from([("local",), ("local", "eu"), ("a", "b", "c")])))
    consensus = draw(st.sampled_from(["all", "any", *range(1, len(locations) + 1)]))
    stale = draw(st.sampled_from([15.0, 25.0, 45.0]))
    items = []
    for location in locations:
        at = draw(st.integers(0, 9))
        steps = draw(
            st.lists(
                st.tuples(st.sampled_from([10, 10, 10, 40, 90]), st.booleans(), st.booleans()),
                min_size=1,
                max_size=20,
            )
        )
        for gap, ok, degraded in steps:
            at += gap
            items.append(result(at, ok, location, degraded=degraded and not ok))
    now = max(r.at for r in items) + draw(st.integers(0, 100)) * S
    return confirm, locations, consensus, stale, items, now


@settings(max_examples=300, deadline=None)
@given(patchy_histories(), st.randoms(use_true_random=False), st.integers(1, 7))
def test_outages_with_silent_and_degraded_probes_do_not_depend_on_arrival_order(
    case: tuple[int, tuple[str, ...], str | int, float, list[Result], int],
    shuffler: random.Random,
    batch: int,
) -> None:
    confirm, locations, consensus, stale, items, now = case
    in_order = run(
        evaluator_for(confirm, locations, consensus, stale), sorted(items, key=lambda r: r.at), now
    )
    shuffled = list(items)
    shuffler.shuffle(shuffled)
    evaluator = evaluator_for(confirm, locations, consensus, stale)
    store = Store()
    for start in range(0, len(shuffled), batch):
        feed(evaluator, store, shuffled[start : start + batch], now)
    assert outages_of(store) == outages_of(in_order)
