"""Exact arithmetic on sets of half-open time intervals [start, end) in milliseconds (pure).

A set is a sorted list of disjoint, non-touching intervals (what `merge` returns); every
operation takes and returns such lists in linear time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Interval = tuple[int, int]
Spans = list[Interval]


def merge(intervals: Iterable[Interval]) -> Spans:
    """The union: overlapping and touching intervals joined, empty ones dropped."""
    out: Spans = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def clip(spans: Sequence[Interval], start: int, end: int) -> Spans:
    """The part of `spans` inside [start, end)."""
    out: Spans = []
    for a, b in spans:
        low, high = max(a, start), min(b, end)
        if low < high:
            out.append((low, high))
    return out


def subtract(spans: Sequence[Interval], removed: Sequence[Interval]) -> Spans:
    """`spans` without `removed` (both merged)."""
    out: Spans = []
    j = 0
    for start, end in spans:
        while j < len(removed) and removed[j][1] <= start:
            j += 1
        k = j
        cursor = start
        while k < len(removed) and removed[k][0] < end:
            if removed[k][0] > cursor:
                out.append((cursor, removed[k][0]))
            cursor = max(cursor, removed[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> Spans:
    """Where both hold (both merged)."""
    out: Spans = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def intersect_all(sets: Sequence[Sequence[Interval]]) -> Spans:
    """Where every set holds; nothing for no sets."""
    if not sets:
        return []
    result = list(sets[0])
    for other in sets[1:]:
        result = intersect(result, other)
    return result


def length(spans: Iterable[Interval]) -> int:
    return sum(end - start for start, end in spans)


def contains(spans: Sequence[Interval], at: int) -> bool:
    return any(start <= at < end for start, end in spans)
