"""One page of the monitor list: filters, a stable order and an opaque cursor.

At 10,000 monitors the whole list is megabytes and seconds of work; a page is `limit` monitors
after the cursor, found by bisecting an order sorted once per config (by id, name or kind) and
filtering from there, so the first page costs the same at any size. States change all the
time: sorted by state, the monitors that pass the other filters are ordered at each request
(one pass, no sort: they are bucketed by state in id order).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, get_args

from uptally import offloop
from uptally.config.schema import TAG_PATTERN, TAG_RULE, ActiveMonitor, Config, Monitor
from uptally.evaluator import MonitorState
from uptally.runtime import Runtime
from uptally.web.errors import ApiError
from uptally.web.monitor_order import (
    SORTS,
    STATE_ORDER,
    STATE_RANK,
    Key,
    Order,
    Sort,
    key_of,
)
from uptally.web.views import shown_target

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STATES = STATE_ORDER
_TAG_RE = re.compile(TAG_PATTERN)


@dataclass(frozen=True, slots=True)
class Filters:
    """What a monitor must match to be listed; None matches all."""

    states: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    component: str | None = None
    location: str | None = None
    q: str | None = None
    tags: frozenset[str] = frozenset()  # a monitor must have all of them


class MonitorIndex:
    """The monitors of one config sorted by id, their orders by name and kind, and the
    components and tags of each."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.monitors = sorted(config.monitors, key=lambda m: m.id)
        self.ids = [m.id for m in self.monitors]
        self.components: dict[str, list[str]] = {}
        for component in config.components:
            for monitor_id in component.monitors:
                self.components.setdefault(monitor_id, []).append(component.id)
        # searched as the API shows it: a search must not reveal a redacted secret
        keys = config.security.secret_query_keys
        self.searchable = [_searchable(m, keys) for m in self.monitors]
        tag_sets: dict[frozenset[str], frozenset[str]] = {}  # most monitors share a few
        self.tags = [
            tag_sets.setdefault(frozenset(m.tags), frozenset(m.tags)) for m in self.monitors
        ]
        self.tag_names = sorted({tag for tags in tag_sets for tag in tags})
        self.orders = {
            field: Order.sorted([key_of(field, m) for m in self.monitors])
            for field in SORTS
            if field != "state"
        }


_index: MonitorIndex | None = None


def index_of(config: Config) -> MonitorIndex:
    """The index of `config`, built once per config (a reload makes a new one)."""
    global _index
    if _index is None or _index.config is not config:
        _index = MonitorIndex(config)
    return _index


def parse_filters(
    runtime: Runtime,
    state: str | None,
    kind: str | None,
    component: str | None,
    location: str | None,
    q: str | None,
    tag: str | None = None,
) -> Filters:
    """Filters from query parameters (`state`, `kind` and `tag` take comma-separated lists);
    422 for a value that can match nothing by mistake (an unknown state, kind, component or
    location, or what cannot be a tag). A tag no monitor has is no mistake: it lists none."""
    states = _choices("state", state, STATES)
    kinds = _choices("kind", kind, _kinds())
    config = runtime.config
    if component is not None and not any(c.id == component for c in config.components):
        raise ApiError(422, f"component: no component {component!r}")
    if location is not None and location not in config.location_names:
        known = ", ".join(config.location_names)
        raise ApiError(422, f"location: no location {location!r} (known: {known})")
    tags = frozenset(part.strip() for part in (tag or "").split(",") if part.strip())
    if tag is not None and not tags:
        raise ApiError(422, "tag: empty")
    bad = sorted(t for t in tags if not _TAG_RE.match(t))
    if bad:
        raise ApiError(422, f"tag: {', '.join(bad)}: {TAG_RULE}")
    return Filters(states, kinds, component, location, q.strip().lower() if q else None, tags)


@functools.cache
def _kinds() -> tuple[str, ...]:
    """Every monitor kind of the config schema."""
    members = get_args(get_args(Monitor)[0])  # Annotated[A | B | …, discriminator]
    return tuple(get_args(m.model_fields["kind"].annotation)[0] for m in members)


def _choices(name: str, value: str | None, allowed: tuple[str, ...]) -> frozenset[str] | None:
    if value is None:
        return None
    chosen = frozenset(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(chosen - set(allowed))
    if unknown or not chosen:
        raise ApiError(
            422, f"{name}: {', '.join(unknown) or 'empty'} is not one of {', '.join(allowed)}"
        )
    return chosen


def state_of(runtime: Runtime, monitor_id: str) -> str:
    """A monitor's state as listed (paused, then maintenance, cover the evaluator's state)."""
    return runtime.monitor_state(monitor_id).value


class States:
    """`state_of` for a scan of many: the maintenance windows are looked at once, not per
    monitor (at 10,000 monitors that look was most of a filtered page's time)."""

    def __init__(self, runtime: Runtime) -> None:
        self._evaluator = runtime.evaluator
        self._paused = runtime.pausing.paused
        self._covered = runtime.maintenance.covered()

    def of(self, monitor_id: str) -> str:
        if monitor_id in self._paused:
            return MonitorState.PAUSED.value
        if monitor_id in self._covered:
            return MonitorState.MAINTENANCE.value
        state: MonitorState = self._evaluator.state(monitor_id) or MonitorState.UNKNOWN
        return state.value


async def matching(
    runtime: Runtime, index: MonitorIndex, filters: Filters, sort: Sort, after: Key | None
) -> AsyncIterator[tuple[Key, Any]]:
    """(key, monitor) of the monitors after the key `after` in the order `sort` that match
    `filters` (a scan of many lets the event loop turn every few milliseconds)."""
    pacer = offloop.Pacer()
    states = States(runtime)
    if sort.field == "state":
        order = await _by_state(states, index, filters, pacer)
        for key, position in order.after(after, sort.descending):
            yield key, index.monitors[position]
        return
    for key, position in index.orders[sort.field].after(after, sort.descending):
        await pacer.tick()
        if passes(index, filters, position) and (
            filters.states is None or states.of(index.ids[position]) in filters.states
        ):
            yield key, index.monitors[position]


async def _by_state(
    states: States, index: MonitorIndex, filters: Filters, pacer: offloop.Pacer
) -> Order:
    """The monitors that match `filters`, ordered by state then id: bucketed by state in a
    pass in id order, so the buckets need no sorting."""
    buckets: list[list[int]] = [[] for _ in STATE_ORDER]
    for position, monitor_id in enumerate(index.ids):
        await pacer.tick()
        if not passes(index, filters, position):
            continue
        state = states.of(monitor_id)
        if filters.states is None or state in filters.states:
            buckets[STATE_RANK[state]].append(position)
    keys: list[Key] = []
    positions: list[int] = []
    for rank, bucket in enumerate(buckets):
        keys += [(rank, index.ids[p]) for p in bucket]
        positions += bucket
    return Order(keys, positions)


def passes(index: MonitorIndex, filters: Filters, position: int) -> bool:
    """Whether the monitor at `position` passes every filter but the state (the costly one)."""
    monitor = index.monitors[position]
    if filters.kinds is not None and monitor.kind not in filters.kinds:
        return False
    if filters.component is not None and filters.component not in index.components.get(
        monitor.id, ()
    ):
        return False
    if filters.location is not None and filters.location not in _locations(monitor):
        return False
    if filters.tags and not filters.tags <= index.tags[position]:
        return False
    return filters.q is None or filters.q in index.searchable[position]


def _locations(monitor: Any) -> list[str]:
    return list(monitor.locations) if isinstance(monitor, ActiveMonitor) else ["local"]


def _searchable(monitor: Any, secret_keys: list[str]) -> str:
    return "\n".join((monitor.id, monitor.title, shown_target(monitor, secret_keys) or "")).lower()
