"""The evaluator: results → per-location timelines → consensus → outages, states and events.

Deterministic and free of I/O: the caller feeds batches of results (from the embedded probe and
from agents alike) and writes the returned `Evaluation` in one transaction. Outages depend only
on the set of results, not on their arrival order: in-order results are appended to a location's
timeline; for a location that received a late result the caller supplies its stored history
from a reset point (see `late_points`) and the timeline is replayed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.evaluator.consensus import Episode, episodes
from uptally.evaluator.states import (
    Evaluation,
    LocationSnapshot,
    LocationState,
    MonitorState,
    MonitorStatus,
    Outage,
)
from uptally.evaluator.timeline import Run, Timeline
from uptally.events import Event, EventKind
from uptally.ids import new_id
from uptally.results import Result

DEFAULT_HORIZON_MS = 24 * 3_600_000

# (monitor, location) -> (reset_at, every stored result of that location at or after reset_at)
Histories = Mapping[tuple[str, str], tuple[Millis | None, Sequence[Result]]]


@dataclass(frozen=True, slots=True)
class Rules:
    """How one monitor's results are judged."""

    confirm: int = 1
    locations: tuple[str, ...] = ("local",)
    consensus: str | int = "all"  # "all", "any" or a quorum size

    def required(self, reporting: int) -> int:
        if self.consensus == "all":
            return reporting
        if self.consensus == "any":
            return 1
        assert isinstance(self.consensus, int)
        return self.consensus


class _Track:
    __slots__ = ("outages", "rules", "since", "state", "timelines")

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.timelines: dict[str, Timeline] = {}
        self.outages: tuple[Outage, ...] = ()  # recent ones, oldest first
        self.state = MonitorState.UNKNOWN
        self.since: Millis | None = None


class Evaluator:
    def __init__(self, horizon_ms: int = DEFAULT_HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self._tracks: dict[str, _Track] = {}

    # -- configuration and restore -----------------------------------------------------------

    def set_rules(self, monitor: str, rules: Rules) -> None:
        track = self._tracks.get(monitor)
        if track is None:
            self._tracks[monitor] = _Track(rules)
            return
        track.rules = rules
        for timeline in track.timelines.values():
            timeline.confirm = rules.confirm

    def forget(self, monitor: str) -> None:
        self._tracks.pop(monitor, None)

    def monitors(self) -> list[str]:
        return list(self._tracks)

    def restore(
        self,
        locations: Iterable[LocationSnapshot],
        outages: Iterable[Outage],
        statuses: Iterable[MonitorStatus],
    ) -> None:
        """Load persisted state (after set_rules) so that a restart continues where it stopped."""
        for snap in locations:
            track = self._tracks.get(snap.monitor)
            if track is None:
                continue
            timeline = Timeline(track.rules.confirm)
            timeline.runs = [Run(*run) for run in snap.runs]
            timeline.last = snap.last
            track.timelines[snap.location] = timeline
        for outage in sorted(outages, key=lambda o: o.start):
            track = self._tracks.get(outage.monitor)
            if track is not None:
                track.outages = (*track.outages, outage)
        for status in statuses:
            track = self._tracks.get(status.monitor)
            if track is not None:
                track.state, track.since = status.state, status.since

    # -- reading -----------------------------------------------------------------------------

    def status(self, monitor: str) -> MonitorStatus | None:
        track = self._tracks.get(monitor)
        return MonitorStatus(monitor, track.state, track.since) if track else None

    def location_snapshots(self, monitor: str) -> list[LocationSnapshot]:
        track = self._tracks.get(monitor)
        if track is None:
            return []
        return [_snapshot(monitor, name, tl) for name, tl in sorted(track.timelines.items())]

    def open_outage(self, monitor: str) -> Outage | None:
        track = self._tracks.get(monitor)
        if track is None:
            return None
        return next((o for o in reversed(track.outages) if o.open and o.verified), None)

    # -- evaluating --------------------------------------------------------------------------

    def late_points(self, results: Iterable[Result]) -> dict[tuple[str, str], Millis]:
        """For each (monitor, location) with late results, the earliest late time.

        The caller then loads that location's stored results from the newest success before this
        time (the reset point) and passes them to `evaluate` as its history.
        """
        points: dict[tuple[str, str], Millis] = {}
        for result in results:
            track = self._tracks.get(result.monitor)
            if track is None:
                continue
            timeline = track.timelines.get(result.location)
            if timeline is not None and timeline.is_late(result):
                key = (result.monitor, result.location)
                points[key] = min(points.get(key, result.at), result.at)
        return points

    def evaluate(self, results: Sequence[Result], histories: Histories | None = None) -> Evaluation:
        evaluation = Evaluation()
        histories = histories or {}
        dirty: dict[str, set[str]] = defaultdict(set)
        changed: set[str] = set()  # monitors whose down intervals may have changed
        # Within a batch, time order: a batch is never late relative to itself.
        for result in sorted(results, key=lambda r: (r.at, not r.ok)):
            track = self._tracks.get(result.monitor)
            if track is None:
                evaluation.rejected.append((result, "unknown monitor"))
                continue
            if result.location not in track.rules.locations:
                evaluation.rejected.append((result, "location not assigned to this monitor"))
                continue
            key = (result.monitor, result.location)
            timeline = track.timelines.get(result.location)
            if timeline is None:
                timeline = track.timelines[result.location] = Timeline(track.rules.confirm)
            if timeline.floor is not None and result.at < timeline.floor:
                evaluation.rejected.append((result, "older than the evaluation horizon"))
                continue
            evaluation.accepted.append(result)
            if key in histories:
                dirty[result.monitor].add(result.location)
                changed.add(result.monitor)
                continue  # replayed from the history below
            if timeline.is_late(result):
                evaluation.rejected.append((result, "late result without history"))
                evaluation.accepted.pop()
                continue
            # Extending a run of successes changes nothing that matters after a restart;
            # those locations are only `touched` and persisted lazily by the caller.
            quiet = result.ok and bool(timeline.runs) and timeline.runs[-1].ok
            if timeline.append(result):
                changed.add(result.monitor)
            if quiet:
                evaluation.touched.add(key)
            else:
                dirty[result.monitor].add(result.location)
        for (monitor, location), (reset_at, history) in histories.items():
            track = self._tracks.get(monitor)
            if track is None or location not in track.timelines:
                continue
            track.timelines[location].rebuild(reset_at, history)
            dirty[monitor].add(location)
            changed.add(monitor)
        for monitor, locations in dirty.items():
            self._settle(monitor, locations, monitor in changed, evaluation)
        for monitor in changed.difference(dirty):
            self._settle(monitor, set(), True, evaluation)
        evaluation.touched.difference_update(evaluation.locations)
        return evaluation

    def snapshot(self, monitor: str, location: str) -> LocationSnapshot | None:
        track = self._tracks.get(monitor)
        timeline = track.timelines.get(location) if track else None
        return _snapshot(monitor, location, timeline) if timeline else None

    def _settle(
        self, monitor: str, locations: set[str], changed: bool, evaluation: Evaluation
    ) -> None:
        track = self._tracks[monitor]
        timelines = track.timelines
        newest = max((tl.newest_at or 0) for tl in timelines.values()) if timelines else 0
        horizon = newest - self.horizon_ms
        for name in locations:
            timelines[name].prune(horizon)
            evaluation.locations[(monitor, name)] = _snapshot(monitor, name, timelines[name])
        if not changed and track.state is not MonitorState.UNKNOWN:
            return
        reporting = [name for name, tl in timelines.items() if tl.runs]
        required = track.rules.required(len(reporting))
        found = episodes({name: timelines[name].down_intervals() for name in reporting}, required)
        self._reconcile(track, monitor, found, horizon, evaluation)
        self._restate(track, monitor, evaluation)

    def _reconcile(
        self,
        track: _Track,
        monitor: str,
        found: list[Episode],
        horizon: Millis,
        evaluation: Evaluation,
    ) -> None:
        """Match recomputed episodes to known outages (stable ids) and emit what changed."""
        old = [o for o in track.outages if o.end is None or o.end >= horizon]
        unmatched = list(old)
        current: list[Outage] = []
        for episode in found:
            if episode.end is not None and episode.end < horizon:
                continue
            match = next((o for o in unmatched if _overlaps(o, episode)), None)
            if match is not None:
                unmatched.remove(match)
            outage = Outage(
                match.id if match else new_id(episode.start),
                monitor,
                episode.start,
                episode.end,
                episode.verified,
                episode.locations,
                episode.reason,
            )
            current.append(outage)
            if match is None or not match.same_as(outage):
                evaluation.outages[outage.id] = outage
            evaluation.events.extend(_events(match, outage))
        for gone in unmatched:
            evaluation.removed_outages.add(gone.id)
            evaluation.outages.pop(gone.id, None)
            if gone.verified and gone.open:
                evaluation.events.append(
                    Event(
                        EventKind.MONITOR_UP, gone.start, monitor, _event_data(gone, retracted=True)
                    )
                )
        track.outages = tuple(current)

    def _restate(self, track: _Track, monitor: str, evaluation: Evaluation) -> None:
        state, since = MonitorState.UNKNOWN, None
        open_verified = next((o for o in track.outages if o.open and o.verified), None)
        down_locations = [tl for tl in track.timelines.values() if tl.is_down]
        if open_verified is not None:
            state, since = MonitorState.DOWN, open_verified.start
        elif down_locations:
            state = MonitorState.DEGRADED
            since = min(tl.since() or 0 for tl in down_locations)
        elif any(tl.has_success for tl in track.timelines.values()):
            # Up needs a success somewhere: unconfirmed failures alone say nothing yet.
            state = MonitorState.UP
            ends = [o.end for o in track.outages if o.end is not None]
            starts = [tl.since() for tl in track.timelines.values() if tl.has_success]
            since = max(ends) if ends else min(s for s in starts if s is not None)
        if state != track.state or since != track.since:
            if state == MonitorState.DEGRADED and track.state != MonitorState.DEGRADED:
                evaluation.events.append(
                    Event(
                        EventKind.MONITOR_DEGRADED,
                        since or 0,
                        monitor,
                        {
                            "monitor": monitor,
                            "locations": sorted(
                                n for n, tl in track.timelines.items() if tl.is_down
                            ),
                        },
                    )
                )
            track.state, track.since = state, since
            evaluation.statuses[monitor] = MonitorStatus(monitor, state, since)


def _overlaps(outage: Outage, episode: Episode) -> bool:
    end_a = outage.end if outage.end is not None else 2**62
    end_b = episode.end if episode.end is not None else 2**62
    return (outage.start < end_b and episode.start < end_a) or outage.start == episode.start


def _events(before: Outage | None, after: Outage) -> list[Event]:
    was_down = before is not None and before.verified
    was_open = was_down and before is not None and before.open
    events: list[Event] = []
    if not after.verified:
        if was_open:
            events.append(
                Event(
                    EventKind.MONITOR_UP,
                    after.start,
                    after.monitor,
                    _event_data(after, retracted=True),
                )
            )
        return events
    if not was_down:
        late = after.end is not None
        events.append(
            Event(EventKind.MONITOR_DOWN, after.start, after.monitor, _event_data(after, late=late))
        )
        if late:
            events.append(
                Event(
                    EventKind.MONITOR_UP,
                    after.end or 0,
                    after.monitor,
                    _event_data(after, late=True),
                )
            )
        return events
    if was_open and after.end is not None:
        events.append(Event(EventKind.MONITOR_UP, after.end, after.monitor, _event_data(after)))
    elif not was_open and after.open:
        events.append(
            Event(
                EventKind.MONITOR_DOWN,
                after.start,
                after.monitor,
                _event_data(after, reopened=True),
            )
        )
    return events


def _event_data(outage: Outage, **flags: bool) -> dict[str, object]:
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


def _snapshot(monitor: str, location: str, timeline: Timeline) -> LocationSnapshot:
    if timeline.is_down:
        state = LocationState.DOWN
    elif timeline.has_success:
        state = LocationState.UP
    else:
        state = LocationState.UNKNOWN
    return LocationSnapshot(
        monitor,
        location,
        state,
        timeline.since(),
        timeline.consecutive_failures,
        timeline.last,
        tuple(run.as_tuple() for run in timeline.runs),
    )
