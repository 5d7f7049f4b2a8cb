"""Interval arithmetic of the SLA ledger: table-driven cases and properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uptally.sla import intervals as iv

spans = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(0, 200)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=12,
)


@pytest.mark.parametrize(
    ("given_", "merged"),
    [
        ([], []),
        ([(5, 5)], []),  # empty intervals vanish
        ([(0, 10), (5, 15)], [(0, 15)]),  # overlapping
        ([(0, 10), (10, 20)], [(0, 20)]),  # touching: [0,10) and [10,20) leave no gap
        ([(0, 10), (11, 20)], [(0, 10), (11, 20)]),  # a 1 ms gap stays
        ([(20, 30), (0, 10), (5, 25)], [(0, 30)]),  # unsorted
        ([(0, 100), (10, 20), (30, 40)], [(0, 100)]),  # contained
    ],
)
def test_merge_joins_overlapping_and_touching_intervals(
    given_: list[tuple[int, int]], merged: list[tuple[int, int]]
) -> None:
    assert iv.merge(given_) == merged


@pytest.mark.parametrize(
    ("a", "b", "difference"),
    [
        ([(0, 100)], [], [(0, 100)]),
        ([(0, 100)], [(0, 100)], []),
        ([(0, 100)], [(20, 30)], [(0, 20), (30, 100)]),
        ([(0, 100)], [(-10, 10), (90, 110)], [(10, 90)]),
        ([(0, 10), (20, 30)], [(5, 25)], [(0, 5), (25, 30)]),
        ([(0, 10)], [(10, 20)], [(0, 10)]),  # touching removes nothing
        ([(0, 10), (20, 30), (40, 50)], [(0, 45)], [(45, 50)]),
    ],
)
def test_subtract_removes_exactly_the_given_time(
    a: list[tuple[int, int]], b: list[tuple[int, int]], difference: list[tuple[int, int]]
) -> None:
    assert iv.subtract(a, b) == difference


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ([(0, 10)], [(5, 15)], [(5, 10)]),
        ([(0, 10)], [(10, 20)], []),
        ([(0, 10), (20, 30)], [(5, 25)], [(5, 10), (20, 25)]),
        ([(0, 100)], [(10, 20), (30, 40)], [(10, 20), (30, 40)]),
    ],
)
def test_intersect_keeps_where_both_hold(
    a: list[tuple[int, int]], b: list[tuple[int, int]], both: list[tuple[int, int]]
) -> None:
    assert iv.intersect(a, b) == both
    assert iv.intersect(b, a) == both


def test_clip_keeps_the_part_inside_the_period() -> None:
    assert iv.clip([(-50, 10), (20, 30), (90, 200)], 0, 100) == [(0, 10), (20, 30), (90, 100)]
    assert iv.clip([(100, 200)], 0, 100) == []  # the end is exclusive


def test_intersect_all_of_nothing_is_nothing() -> None:
    assert iv.intersect_all([]) == []
    assert iv.intersect_all([[(0, 10)], [(5, 20)], [(0, 7)]]) == [(5, 7)]


@given(spans, spans)
def test_subtracting_and_intersecting_partition_a_set(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    a, b = iv.merge(a), iv.merge(b)
    kept, removed = iv.subtract(a, b), iv.intersect(a, b)
    assert iv.length(kept) + iv.length(removed) == iv.length(a)
    assert iv.intersect(kept, removed) == []


@given(spans, spans)
def test_union_length_is_inclusion_exclusion(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    a, b = iv.merge(a), iv.merge(b)
    union = iv.merge(a + b)
    assert iv.length(union) == iv.length(a) + iv.length(b) - iv.length(iv.intersect(a, b))


@given(spans)
def test_merge_is_sorted_disjoint_and_idempotent(a: list[tuple[int, int]]) -> None:
    merged = iv.merge(a)
    assert iv.merge(merged) == merged
    for (_, end), (start, _) in itertools.pairwise(merged):
        assert end < start
    points = {p for s, e in a for p in range(s, e)}
    assert iv.length(merged) == len(points)
