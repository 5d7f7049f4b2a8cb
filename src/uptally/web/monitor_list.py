"""One page of the monitor list: filters, a stable order by id and an opaque cursor.

At 10,000 monitors the whole list is megabytes and seconds of work; a page is `limit` monitors
after the cursor, found by bisecting the ids (sorted once per config) and filtering from there,
so the first page costs the same at any size.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, get_args

from uptally import offloop
from uptally.config.schema import ActiveMonitor, Config, Monitor
from uptally.runtime import Runtime
from uptally.web.errors import ApiError
from uptally.web.views import shown_target

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STATES = ("up", "down", "degraded", "unknown", "maintenance", "paused")
_CURSOR_PREFIX = "m1:"


@dataclass(frozen=True, slots=True)
class Filters:
    """What a monitor must match to be listed; None matches all."""

    states: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    component: str | None = None
    location: str | None = None
    q: str | None = None


class MonitorIndex:
    """The monitors of one config sorted by id, and the components of each."""

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


_index: MonitorIndex | None = None


def index_of(config: Config) -> MonitorIndex:
    """The index of `config`, built once per config (a reload makes a new one)."""
    global _index
    if _index is None or _index.config is not config:
        _index = MonitorIndex(config)
    return _index


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id the page starts after; 422 for a cursor this API did not hand out."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_CURSOR_PREFIX):
        raise ApiError(422, "cursor: not a cursor from next_cursor (start again without one)")
    return text[len(_CURSOR_PREFIX) :]


def parse_filters(
    runtime: Runtime,
    state: str | None,
    kind: str | None,
    component: str | None,
    location: str | None,
    q: str | None,
) -> Filters:
    """Filters from query parameters (`state` and `kind` take comma-separated lists); 422 for
    a value that can match nothing by mistake (an unknown state, kind, component or location)."""
    states = _choices("state", state, STATES)
    kinds = _choices("kind", kind, _kinds())
    config = runtime.config
    if component is not None and not any(c.id == component for c in config.components):
        raise ApiError(422, f"component: no component {component!r}")
    if location is not None and location not in config.location_names:
        known = ", ".join(config.location_names)
        raise ApiError(422, f"location: no location {location!r} (known: {known})")
    return Filters(states, kinds, component, location, q.strip().lower() if q else None)


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


async def matching(
    runtime: Runtime, index: MonitorIndex, filters: Filters, after: str | None
) -> AsyncIterator[Any]:
    """The monitors after the id `after` that match `filters`, in id order (a scan of many
    lets the event loop turn every few milliseconds)."""
    start = bisect.bisect_right(index.ids, after) if after is not None else 0
    pacer = offloop.Pacer()
    for position in range(start, len(index.monitors)):
        await pacer.tick()
        monitor = index.monitors[position]
        if filters.kinds is not None and monitor.kind not in filters.kinds:
            continue
        if filters.component is not None and filters.component not in index.components.get(
            monitor.id, ()
        ):
            continue
        if filters.location is not None and filters.location not in _locations(monitor):
            continue
        if filters.q is not None and filters.q not in index.searchable[position]:
            continue
        if filters.states is not None and state_of(runtime, monitor.id) not in filters.states:
            continue
        yield monitor


def _locations(monitor: Any) -> list[str]:
    return list(monitor.locations) if isinstance(monitor, ActiveMonitor) else ["local"]


def _searchable(monitor: Any, secret_keys: list[str]) -> str:
    return "\n".join((monitor.id, monitor.title, shown_target(monitor, secret_keys) or "")).lower()
