"""What changed between the outages known before and those recomputed: matching and events."""

from __future__ import annotations

from uptally.evaluator.consensus import Episode
from uptally.evaluator.states import Outage
from uptally.events import Event, EventKind


def overlaps(outage: Outage, episode: Episode) -> bool:
    end_a = outage.end if outage.end is not None else 2**62
    end_b = episode.end if episode.end is not None else 2**62
    return (outage.start < end_b and episode.start < end_a) or outage.start == episode.start


def outage_events(before: Outage | None, after: Outage) -> list[Event]:
    """The events for one outage as recomputed (`after`), given what was known (`before`).

    An unverified outage is a degraded episode: from the first location failing until every
    location is up again, unless it reaches the consensus on the way (then it is verified and
    `monitor.down`/`monitor.up` speak for the whole episode). `monitor.degraded` is sent once,
    when such an episode is first seen open: never for one that reached consensus before it
    was seen, nor for the locations recovering one by one after an outage (the same episode),
    nor for an outage retracted by late results (its `monitor.up` says so), nor for one
    already over when it became known.
    """
    was_down = before is not None and before.verified
    was_open = was_down and before is not None and before.open
    events: list[Event] = []
    if not after.verified:
        if before is None and after.open:
            events.append(
                Event(EventKind.MONITOR_DEGRADED, after.start, after.monitor, event_data(after))
            )
        elif was_open:
            events.append(
                Event(
                    EventKind.MONITOR_UP,
                    after.start,
                    after.monitor,
                    event_data(after, retracted=True),
                )
            )
        return events
    if not was_down:
        late = after.end is not None
        events.append(
            Event(EventKind.MONITOR_DOWN, after.start, after.monitor, event_data(after, late=late))
        )
        if late:
            events.append(
                Event(
                    EventKind.MONITOR_UP,
                    after.end or 0,
                    after.monitor,
                    event_data(after, late=True),
                )
            )
        return events
    if was_open and after.end is not None:
        events.append(Event(EventKind.MONITOR_UP, after.end, after.monitor, event_data(after)))
    elif not was_open and after.open:
        events.append(
            Event(
                EventKind.MONITOR_DOWN,
                after.start,
                after.monitor,
                event_data(after, reopened=True),
            )
        )
    return events


def event_data(outage: Outage, **flags: bool) -> dict[str, object]:
    data: dict[str, object] = {
        "monitor": outage.monitor,
        "outage": outage.id,
        "start": outage.start,
        "end": outage.end,
        "duration_ms": None if outage.end is None else outage.end - outage.start,
        "locations": sorted(outage.locations),
        "reason": outage.reason,
    }
    data.update({name: True for name, on in flags.items() if on})
    return data
