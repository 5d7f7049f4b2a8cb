"""The orders of the monitor list (`sort`) and the cursor that resumes one after a monitor.

Every order is a sort key then the id, so it is total and a page resumes strictly after the
last monitor it showed. The cursor carries that monitor's key, not a position: a page after a
reload, or after monitors came and went, still starts at the right place.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from uptally.web.errors import ApiError

SORTS = ("id", "name", "state", "kind")
# sort=state runs from up to down: -state lists the worst first
STATE_ORDER = ("up", "paused", "maintenance", "unknown", "degraded", "down")
STATE_RANK = {state: rank for rank, state in enumerate(STATE_ORDER)}

Key = tuple[str | int, str]  # (what the list is sorted by, then the id)

_CURSOR_PREFIX = "m2:"
_ID_CURSOR_PREFIX = "m1:"  # handed out before `sort`: the id order


@dataclass(frozen=True, slots=True)
class Sort:
    field: str
    descending: bool = False

    def __str__(self) -> str:
        return ("-" if self.descending else "") + self.field


def parse_sort(value: str | None) -> Sort:
    """`id`, `name`, `state` or `kind`, `-` first for descending; 422 for anything else."""
    if value is None:
        return Sort("id")
    field = value.removeprefix("-")
    if field not in SORTS:
        choices = ", ".join(SORTS)
        raise ApiError(422, f"sort: {value!r} is not one of {choices} (- first: descending)")
    return Sort(field, value.startswith("-"))


def key_of(field: str, monitor: Any) -> Key:
    """The key of a monitor in the orders kept per config (every sort but state)."""
    if field == "name":
        return (monitor.title.casefold(), monitor.id)
    if field == "kind":
        return (monitor.kind, monitor.id)
    return ("", monitor.id)


class Order:
    """Monitors in ascending key order, as positions in the list the keys were made from."""

    def __init__(self, keys: list[Key], positions: Sequence[int]) -> None:
        self.keys = keys
        self.positions = positions

    @classmethod
    def sorted(cls, keys: list[Key]) -> Order:
        """The order of `keys` (key i is of position i)."""
        positions = sorted(range(len(keys)), key=keys.__getitem__)
        return cls([keys[p] for p in positions], positions)

    def after(self, key: Key | None, descending: bool) -> Iterator[tuple[Key, int]]:
        """(key, position) of each monitor strictly after `key` in this order (or its reverse),
        from the first one: a bisection, whatever the number of monitors."""
        if not descending:
            start = 0 if key is None else bisect.bisect_right(self.keys, key)
            for index in range(start, len(self.keys)):
                yield self.keys[index], self.positions[index]
        else:
            stop = len(self.keys) if key is None else bisect.bisect_left(self.keys, key)
            for index in range(stop - 1, -1, -1):
                yield self.keys[index], self.positions[index]


def encode_cursor(sort: Sort, key: Key) -> str:
    text = _CURSOR_PREFIX + json.dumps([str(sort), *key], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> Key:
    """The key the page starts after; 422 for a cursor this API did not hand out, 400 for one
    handed out for another sort (its key means nothing in this order)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    made_for, key = _parsed(text)
    if key is None:
        raise ApiError(422, "cursor: not a cursor from next_cursor (start again without one)")
    if made_for != str(sort):
        raise ApiError(
            400,
            f"cursor: it pages sort={made_for}, not sort={sort} "
            "(keep the sort of the first page, or start again without a cursor)",
        )
    return key


def _parsed(text: str) -> tuple[str, Key | None]:
    if text.startswith(_ID_CURSOR_PREFIX):
        return "id", ("", text[len(_ID_CURSOR_PREFIX) :])
    if not text.startswith(_CURSOR_PREFIX):
        return "", None
    try:
        made_for, primary, monitor_id = json.loads(text[len(_CURSOR_PREFIX) :])
    except (ValueError, TypeError):
        return "", None
    field = made_for.removeprefix("-") if isinstance(made_for, str) else ""
    wanted = int if field == "state" else str
    if field not in SORTS or type(primary) is not wanted or not isinstance(monitor_id, str):
        return "", None
    return made_for, (primary, monitor_id)
