"""Availability of components: exact interval arithmetic over outages, maintenance, exclusions."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import config_from
from uptally.config.schema import Component, CreditTier, SlaPolicy
from uptally.evaluator import Outage
from uptally.maintenance.windows import WindowView
from uptally.sla.ledger import (
    Exclusion,
    Rules,
    availability,
    component_uptime,
    credit_percent,
    percent,
)
from uptally.sla.periods import parse_period
from uptally.store.outages import StoredOutage

M = 60_000  # a minute
DAY = 1440 * M
COMPONENT = Component(id="api", monitors=["a", "b"])
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
JANUARY = (T0, T0 + 31 * DAY)


def outage(
    start: int,
    end: int | None,
    monitor: str = "a",
    verified: bool = True,
    component: str | None = None,
) -> StoredOutage:
    key = f"{monitor}-{start}-{end}-{verified}"
    source = "manual" if component else "detected"
    return StoredOutage(Outage(key, monitor, start, end, verified, {}, ""), component, source)


def window(
    start: int,
    end: int,
    components: tuple[str, ...] = ("api",),
    monitors: tuple[str, ...] = (),
    status: str = "completed",
    completed_at: int | None = None,
) -> WindowView:
    return WindowView(
        id=f"w{start}",
        title="maintenance",
        status=status,
        impact="maintenance",
        scheduled_for=start,
        scheduled_until=end,
        started_at=start if status in ("in_progress", "completed") else None,
        completed_at=(completed_at or end) if status == "completed" else None,
        created_at=start - DAY,
        updated_at=start,
        components=list(components),
        monitors=list(monitors),
        message_markdown="",
        short_notice=False,
    )


def at(minutes: float) -> int:
    return T0 + round(minutes * M)


CASES = [
    # (name, outages, windows, exclusions, rules, downtime minutes, excluded minutes)
    ("nothing happened", [], [], [], Rules(), 0, 0),
    ("one outage", [outage(at(60), at(90))], [], [], Rules(), 30, 0),
    (
        "overlapping outages of two monitors count once",
        [outage(at(60), at(90), "a"), outage(at(80), at(100), "b")],
        [],
        [],
        Rules(),
        40,
        0,
    ),
    (
        "touching outages join",
        [outage(at(60), at(90), "a"), outage(at(90), at(95), "b")],
        [],
        [],
        Rules(),
        35,
        0,
    ),
    (
        "an outage across the period start is clipped",
        [outage(T0 - 30 * M, at(10))],
        [],
        [],
        Rules(),
        10,
        0,
    ),
    (
        "an outage across the period end is clipped",
        [outage(JANUARY[1] - 5 * M, JANUARY[1] + 60 * M)],
        [],
        [],
        Rules(),
        5,
        0,
    ),
    (
        "an outage ending exactly at the period start does not count",
        [outage(T0 - 30 * M, T0)],
        [],
        [],
        Rules(),
        0,
        0,
    ),
    ("an open outage lasts until now", [outage(at(100), None)], [], [], Rules(), 20, 0),
    (
        "unverified downtime does not count by default",
        [outage(at(10), at(40), verified=False)],
        [],
        [],
        Rules(),
        0,
        0,
    ),
    (
        "unverified downtime counts at its weight, not twice where verified",
        [outage(at(10), at(40), verified=False), outage(at(30), at(50), "b")],
        [],
        [],
        Rules(degraded_weight=Fraction(1, 2)),
        20 + 10,  # verified 30..50, half of 10..30
        0,
    ),
    (
        "maintenance on the component hides downtime and is excluded",
        [outage(at(60), at(90))],
        [window(at(50), at(70))],
        [],
        Rules(),
        20,
        20,
    ),
    (
        "maintenance on one monitor hides only its outages; time still counts",
        [outage(at(60), at(90), "a"), outage(at(60), at(65), "b")],
        [window(at(50), at(70), components=(), monitors=("a",))],
        [],
        Rules(),
        5 + 20,  # b's 60..65 counts; a's counts only after the window: 70..90
        0,
    ),
    (
        "maintenance of every monitor excludes the component's time",
        [outage(at(0), at(100), "a")],
        [
            window(at(10), at(40), components=(), monitors=("a",)),
            window(at(20), at(50), components=(), monitors=("b",)),
        ],
        [],
        Rules(),
        100 - 30,  # a hidden 10..40
        20,  # both covered 20..40
    ),
    (
        "count_maintenance counts it all",
        [outage(at(60), at(90))],
        [window(at(50), at(70))],
        [],
        Rules(count_maintenance=True),
        30,
        0,
    ),
    (
        "a cancelled window changes nothing",
        [outage(at(60), at(90))],
        [window(at(50), at(70), status="cancelled")],
        [],
        Rules(),
        30,
        0,
    ),
    (
        "a window ended early covers only until it ended",
        [outage(at(60), at(90))],
        [window(at(50), at(120), completed_at=at(65))],
        [],
        Rules(),
        25,
        15,
    ),
    (
        "a manual exclusion removes its time",
        [outage(at(60), at(90))],
        [],
        [Exclusion("x", at(80), at(100), "provider incident", "api")],
        Rules(),
        20,
        20,
    ),
    (
        "an exclusion of another policy or component does not apply",
        [outage(at(60), at(90))],
        [],
        [
            Exclusion("x", at(60), at(90), "other", "web"),
            Exclusion("y", at(60), at(90), "other", None, "enterprise"),
        ],
        Rules(policy="scale"),
        30,
        0,
    ),
    (
        "an outage recorded on the component counts",
        [outage(at(5), at(15), monitor="", component="api")],
        [],
        [],
        Rules(),
        10,
        0,
    ),
    (
        "outages of other monitors and components are ignored",
        [outage(at(5), at(15), "c"), outage(at(5), at(15), monitor="", component="web")],
        [],
        [],
        Rules(),
        0,
        0,
    ),
]


@pytest.mark.parametrize(
    ("outages", "windows", "exclusions", "rules", "downtime", "excluded"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_availability(
    outages: list[StoredOutage],
    windows: list[WindowView],
    exclusions: list[Exclusion],
    rules: Rules,
    downtime: float,
    excluded: float,
) -> None:
    now = at(120) if any(o.outage.end is None for o in outages) else None
    found = availability(
        COMPONENT, outages, windows, *JANUARY, now=now, rules=rules, exclusions=exclusions
    )
    assert found.downtime_ms == downtime * M
    assert found.excluded_ms == excluded * M
    expected = 1 - Fraction(downtime * M) / (found.span_ms - excluded * M)
    assert found.uptime == expected


def test_a_dst_month_has_one_hour_less_in_berlin() -> None:
    march = parse_period("2026-03", "Europe/Berlin")
    outages = [outage(march.start + DAY, march.start + DAY + 43 * M)]
    found = availability(COMPONENT, outages, [], march.start, march.end)
    assert found.span_ms == (31 * 24 - 1) * 60 * M
    assert found.uptime == 1 - Fraction(43, (31 * 24 - 1) * 60)
    assert percent(found.uptime) == 99.9035


def test_a_leap_february_has_29_days() -> None:
    february = parse_period("2028-02", "UTC")
    down = [outage(february.start, february.start + 41 * M)]
    found = availability(COMPONENT, down, [], february.start, february.end)
    assert found.span_ms == 29 * DAY
    assert found.uptime == 1 - Fraction(41, 29 * 1440)


def test_a_year_at_99_995_percent_allows_26_minutes() -> None:
    year = parse_period("2026", "Europe/Berlin")
    middle = year.start + 200 * DAY

    def uptime(minutes: int) -> float:
        down = [outage(middle, middle + minutes * M)]
        return percent(availability(COMPONENT, down, [], year.start, year.end).uptime)

    assert uptime(26) == 99.995
    assert uptime(27) < 99.995


def test_maintenance_overlapping_an_outage_across_the_period_edge() -> None:
    february = parse_period("2026-02", "UTC")
    edge = february.start
    outages = [outage(edge - 60 * M, edge + 60 * M)]
    windows = [window(edge - 30 * M, edge + 30 * M)]
    found = availability(COMPONENT, outages, windows, february.start, february.end)
    assert (found.downtime_ms, found.excluded_ms) == (30 * M, 30 * M)
    january = parse_period("2026-01", "UTC")
    before = availability(COMPONENT, outages, windows, january.start, january.end)
    assert (before.downtime_ms, before.excluded_ms) == (30 * M, 30 * M)


def test_nothing_measured_yet_is_full_uptime() -> None:
    found = availability(COMPONENT, [], [], T0, T0 + DAY, now=T0 - 1)
    assert (found.span_ms, found.uptime) == (0, 1)
    covered = availability(COMPONENT, [outage(T0, T0 + DAY)], [window(T0, T0 + DAY)], T0, T0 + DAY)
    assert covered.uptime == 1


def test_the_outages_that_counted_are_listed_with_their_share() -> None:
    outages = [outage(at(60), at(90), "a"), outage(at(80), at(100), "b"), outage(at(0), at(5), "c")]
    found = availability(COMPONENT, outages, [window(at(95), at(200))], *JANUARY)
    assert [(c.monitor, c.counted_ms // M) for c in found.counted] == [("a", 30), ("b", 15)]


TIERS = [
    CreditTier(below=99.9, credit=10),
    CreditTier(below=99.0, credit=25),
    CreditTier(below=95.0, credit=70),
]


@pytest.mark.parametrize(
    ("uptime", "credit"),
    [
        (Fraction(100), 0),
        (Fraction(9995, 100), 0),
        (Fraction(999, 10), 0),  # exactly at target: not below
        (Fraction(99899, 1000), 10),
        (Fraction(99), 10),
        (Fraction(989, 10), 25),
        (Fraction(95), 25),
        (Fraction(9499, 100), 70),
        (Fraction(0), 70),
    ],
)
def test_credit_tiers_pay_the_smallest_matching_below(uptime: Fraction, credit: float) -> None:
    assert credit_percent(uptime / 100, TIERS) == credit
    assert credit_percent(uptime / 100, []) == 0


def test_component_uptime_is_the_status_page_entry_point() -> None:
    outages = [outage(at(60), at(90))]
    policy = SlaPolicy(id="p", target=99.9, count_maintenance=True)
    assert component_uptime(COMPONENT, outages, [window(at(50), at(70))], T0, T0 + DAY) == percent(
        1 - Fraction(20, 1440 - 20)
    )
    assert component_uptime(
        COMPONENT, outages, [window(at(50), at(70))], T0, T0 + DAY, policy
    ) == percent(1 - Fraction(30, 1440))


def test_a_window_on_another_component_covers_a_shared_monitor() -> None:
    config = config_from("""
monitors:
  - {id: a, kind: http, url: "http://x/"}
components:
  - {id: api, monitors: [a]}
  - {id: db, monitors: [a]}
""")
    groups = {"a": ["api", "db"]}
    outages = [outage(at(60), at(90))]
    windows = [window(at(50), at(100), components=("db",))]
    api = config.components[0]
    found = availability(api, outages, windows, *JANUARY, monitor_components=groups)
    assert (found.downtime_ms, found.excluded_ms) == (0, 50 * M)


# -- properties ----------------------------------------------------------------------------------

moments = st.integers(0, 31 * 1440).map(lambda minute: T0 + minute * M)
intervals = st.tuples(moments, st.integers(1, 3000)).map(lambda t: (t[0], t[0] + t[1] * M))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(intervals, st.sampled_from("abc"), st.booleans()), max_size=8),
    st.lists(st.tuples(intervals, st.sampled_from(["api", "a", "b"])), max_size=4),
    st.fractions(0, 1),
)
def test_uptime_never_leaves_0_to_100_percent(
    raw_outages: list[tuple[tuple[int, int], str, bool]],
    raw_windows: list[tuple[tuple[int, int], str]],
    weight: Fraction,
) -> None:
    outages = [outage(s, e, m, v) for (s, e), m, v in raw_outages]
    windows = [
        window(s, e, components=(who,), monitors=())
        if who == "api"
        else window(s, e, components=(), monitors=(who,))
        for (s, e), who in raw_windows
    ]
    found = availability(COMPONENT, outages, windows, *JANUARY, rules=Rules(degraded_weight=weight))
    assert 0 <= found.uptime <= 1
    assert 0 <= percent(found.uptime) <= 100
    assert found.downtime_ms <= found.counting_ms


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=10))
def test_disjoint_outages_add_up(durations: list[int]) -> None:
    outages = []
    cursor = T0 + 10 * M
    for minutes in durations:
        outages.append(outage(cursor, cursor + minutes * M, "ab"[len(outages) % 2]))
        cursor += (minutes + 7) * M
    together = availability(COMPONENT, outages, [], *JANUARY)
    alone = [availability(COMPONENT, [o], [], *JANUARY) for o in outages]
    assert together.downtime_ms == sum(a.downtime_ms for a in alone) == sum(durations) * M
    assert 1 - together.uptime == sum(1 - a.uptime for a in alone)


# -- time not monitored (uptally was not running) ----------------------------------------------


def test_time_not_monitored_is_neither_uptime_nor_downtime() -> None:
    found = availability(COMPONENT, [], [], *JANUARY, gaps=[(at(100), at(160))])
    assert found.not_monitored_ms == 60 * M
    assert found.counting_ms == 31 * DAY - 60 * M
    assert found.uptime == 1


def test_an_outage_open_across_a_gap_counts_only_its_monitored_part() -> None:
    # Down 10:00-12:00 of the first day; uptally was not running 10:30-11:00 meanwhile.
    found = availability(
        COMPONENT, [outage(at(600), at(720))], [], *JANUARY, gaps=[(at(630), at(660))]
    )
    assert (found.full_ms, found.not_monitored_ms) == (90 * M, 30 * M)
    [counted] = found.counted
    assert counted.counted_ms == 90 * M
    assert found.uptime == 1 - Fraction(90 * M, 31 * DAY - 30 * M)


def test_a_gap_inside_excluded_time_is_counted_once_as_excluded() -> None:
    exclusion = Exclusion("x", at(0), at(60), "provider outage")
    found = availability(
        COMPONENT,
        [],
        [],
        *JANUARY,
        exclusions=[exclusion],
        gaps=[(at(30), at(90)), (at(80), at(100))],
    )
    assert (found.excluded_ms, found.not_monitored_ms) == (60 * M, 40 * M)
    assert found.counting_ms == 31 * DAY - 100 * M


def test_gaps_outside_the_period_or_before_measured_time_do_not_count() -> None:
    found = availability(
        COMPONENT,
        [],
        [],
        *JANUARY,
        measured={"a": at(200)},
        gaps=[(T0 - DAY, T0 + 10 * M), (at(100), at(250)), (at(31 * 1440), at(31 * 1440 + 5))],
    )
    assert found.measured_from == at(200)
    assert found.not_monitored_ms == 50 * M  # 200-250 only
