"""`monitor.degraded`: once per episode, never on the way out of a verified outage."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_evaluator import (
    S,
    Store,
    evaluator_for,
    feed,
    histories,
    patchy_histories,
    result,
)
from uptally.evaluator import Evaluator, LocationSnapshot, MonitorState, MonitorStatus, Outage
from uptally.results import Result

Emitted = list[tuple[str, int]]  # (event kind, event time) in the order they were written


def feed_each(evaluator: Evaluator, store: Store, batches: Sequence[Sequence[Result]]) -> Emitted:
    emitted: Emitted = []
    for batch in batches:
        emitted.extend((e.kind.value, e.at) for e in feed(evaluator, store, batch).events)
    return emitted


def kinds(emitted: Emitted) -> list[str]:
    return [kind for kind, _ in emitted]


def all_up(*locations: str, at: float = 0) -> list[Result]:
    return [result(at, True, name) for name in locations]


def test_recovering_one_location_at_a_time_sends_no_degraded_after_the_up() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b", "c"))
    emitted = feed_each(
        evaluator,
        Store(),
        [
            all_up("a", "b", "c"),
            [result(10, False, "a"), result(10, False, "b"), result(10, False, "c")],
            [result(20, True, "a")],  # the outage ends: b and c still fail
            [result(30, True, "b")],
            [result(40, True, "c")],
        ],
    )
    assert kinds(emitted) == ["monitor.down", "monitor.up"]
    assert evaluator.status("api") == MonitorStatus("api", MonitorState.UP, 20 * S)


def test_the_monitor_still_shows_degraded_while_the_last_locations_recover() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b"))
    store = Store()
    feed_each(
        evaluator,
        store,
        [all_up("a", "b"), [result(10, False, "a"), result(10, False, "b")]],
    )
    evaluation = feed(evaluator, store, [result(20, True, "a")])
    assert [e.kind.value for e in evaluation.events] == ["monitor.up"]
    assert evaluator.status("api").state is MonitorState.DEGRADED  # type: ignore[union-attr]


def test_a_degraded_episode_that_escalates_to_an_outage_is_announced_once() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b"))
    emitted = feed_each(
        evaluator,
        Store(),
        [
            all_up("a", "b"),
            [result(10, False, "a")],  # degraded: b still answers
            [result(20, False, "b")],  # both: a verified outage
            [result(30, True, "a")],  # the outage ends, b still fails
            [result(40, True, "b")],  # all up: the episode is over
        ],
    )
    assert emitted == [
        ("monitor.degraded", 10 * S),
        ("monitor.down", 20 * S),
        ("monitor.up", 30 * S),
    ]


def test_each_degraded_episode_is_announced_once_however_its_locations_change() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b", "c"))
    emitted = feed_each(
        evaluator,
        Store(),
        [
            all_up("a", "b", "c"),
            [result(10, False, "a")],
            [result(15, False, "b")],
            [result(20, True, "a")],
            [result(25, False, "a")],
            [result(30, True, "a"), result(30, True, "b")],  # all up: the first episode ends
            [result(40, False, "c")],  # a second episode
            [result(50, True, "c")],
        ],
    )
    assert emitted == [("monitor.degraded", 10 * S), ("monitor.degraded", 40 * S)]


def test_an_outage_that_fails_again_before_all_locations_recovered_sends_no_degraded() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b"))
    emitted = feed_each(
        evaluator,
        Store(),
        [
            all_up("a", "b"),
            [result(10, False, "a"), result(10, False, "b")],
            [result(20, True, "a")],
            [result(30, False, "a")],  # down again: a second outage in the same episode
            [result(40, True, "b")],
            [result(50, True, "a")],
        ],
    )
    assert kinds(emitted) == ["monitor.down", "monitor.up", "monitor.down", "monitor.up"]


def test_an_open_degraded_episode_is_not_announced_again_after_a_restart() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b"))
    store = Store()
    emitted = feed_each(evaluator, store, [all_up("a", "b"), [result(10, False, "a")]])
    assert kinds(emitted) == ["monitor.degraded"]
    snapshots: list[LocationSnapshot] = evaluator.location_snapshots("api")
    outages: list[Outage] = list(store.outages.values())
    status = evaluator.status("api")
    assert status is not None
    restarted = evaluator_for(confirm=1, locations=("a", "b"))
    restarted.restore(snapshots, outages, [status])
    emitted = feed_each(restarted, store, [[result(20, False, "a")], [result(30, True, "a")]])
    assert emitted == []


def test_an_outage_retracted_by_a_late_success_is_not_followed_by_a_degraded() -> None:
    evaluator = evaluator_for(confirm=1, locations=("a", "b"))
    store = Store()
    emitted = feed_each(
        evaluator,
        store,
        [
            [result(0, True, "a")],
            [result(10, False, "a")],  # b has not reported yet: a alone decides
            [result(5, True, "b"), result(12, True, "b")],  # b was up all along
        ],
    )
    assert kinds(emitted) == ["monitor.down", "monitor.up"]
    [outage] = store.outages.values()
    assert outage.verified is False


# -- properties over recorded histories fed in time order --------------------------------------


def episodes_of(items: Sequence[Result], confirm: int) -> list[tuple[int, int | None]]:
    """From the first location failing until every location is up again (no silence here)."""
    downs: list[tuple[int, int | None]] = []
    for _, mine in itertools.groupby(
        sorted(items, key=lambda r: (r.location, r.at)), key=lambda r: r.location
    ):
        start: int | None = None  # of this location's open down interval
        for ok, run in itertools.groupby(mine, key=lambda r: r.ok):
            runs = list(run)
            if not ok and len(runs) >= confirm:
                start = runs[0].at
            elif ok and start is not None:
                downs.append((start, runs[0].at))
                start = None
        if start is not None:
            downs.append((start, None))
    merged: list[tuple[int, int | None]] = []
    for first, end in sorted(downs, key=lambda d: (d[0], 2**62 if d[1] is None else d[1])):
        if merged and (merged[-1][1] is None or first <= merged[-1][1]):
            last_end = merged[-1][1]
            merged[-1] = (
                merged[-1][0],
                None if last_end is None or end is None else max(last_end, end),
            )
        else:
            merged.append((first, end))
    return merged


def within(at: int, episode: tuple[int, int | None]) -> bool:
    return episode[0] <= at and (episode[1] is None or at < episode[1])


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(1, 7))
def test_degraded_is_sent_at_most_once_per_episode_and_never_after_its_outage(
    case: tuple[int, tuple[str, ...], str | int, list[Result]], batch: int
) -> None:
    confirm, locations, consensus, items = case
    ordered = sorted(items, key=lambda r: r.at)
    emitted = feed_each(
        evaluator_for(confirm, locations, consensus),
        Store(),
        [ordered[i : i + batch] for i in range(0, len(ordered), batch)],
    )
    episodes = episodes_of(items, confirm)
    degraded = [at for kind, at in emitted if kind == "monitor.degraded"]
    assert len(degraded) <= len(episodes)
    for episode in episodes:
        mine = [(kind, at) for kind, at in emitted if within(at, episode)]
        assert [kind for kind, _ in mine].count("monitor.degraded") <= 1
        # Once an outage opened in this episode, its down/up speak for it until all is up.
        seen_down = False
        for kind, _ in mine:
            seen_down = seen_down or kind == "monitor.down"
            assert not (seen_down and kind == "monitor.degraded")
    for at in degraded:
        assert any(at == episode[0] for episode in episodes)


@settings(max_examples=200, deadline=None)
@given(patchy_histories(), st.integers(1, 7))
def test_with_silent_and_degraded_probes_each_degraded_is_a_new_unverified_outage(
    case: tuple[int, tuple[str, ...], str | int, float, list[Result], int], batch: int
) -> None:
    confirm, locations, consensus, stale, items, now = case
    ordered = sorted(items, key=lambda r: r.at)
    evaluator = evaluator_for(confirm, locations, consensus, stale)
    store = Store()
    announced: set[str] = set()  # outages with a degraded or down event
    for start in range(0, len(ordered), batch):
        for event in feed(evaluator, store, ordered[start : start + batch], now).events:
            outage = str(event.data["outage"])
            if event.kind.value == "monitor.degraded":
                assert outage not in announced
                assert not store.outages[outage].verified
                assert store.outages[outage].open
            if event.kind.value in ("monitor.degraded", "monitor.down"):
                announced.add(outage)
