"""The evaluator: results → per-location timelines → consensus → outages, states and events.

Deterministic and free of I/O: the caller feeds batches of results (from the embedded probe and
from agents alike) with the current time and writes the returned `Evaluation` in one
transaction. Outages depend only on the set of results (and `now`), not on their arrival order:
in-order results are appended to a location's timeline; for a location that received a late
result the caller supplies its stored history from a reset point (see `late_points`) and the
timeline is replayed. `tick(now)` notices locations that went silent without new results.
Silence while uptally itself was not running (`pause`) does not count: an outage open when it
stopped stays open across a restart until a result says otherwise.

A paused monitor (`pause_monitor`) is treated the same way, for that monitor alone: its
locations' silence while paused does not count (an open outage is neither ended nor extended
by staleness; the SLA ledger leaves the paused time out), results dated inside a pause are
rejected, and after `resume_monitor` the next result decides its state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.evaluator.changes import event_data, outage_events, overlaps
from uptally.evaluator.consensus import Episode, LocationView, episodes
from uptally.evaluator.states import (
    Evaluation,
    LocationSnapshot,
    LocationState,
    MonitorState,
    MonitorStatus,
    Outage,
)
from uptally.evaluator.timeline import CHANGED, QUIET, Pauses, Run, Timeline
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
    stale_ms: int | None = None  # silence after which a location stops counting (None: never)


class _Track:
    __slots__ = ("next_stale", "outages", "pauses", "rules", "since", "state", "timelines")

    def __init__(self, rules: Rules, pauses: Pauses) -> None:
        self.rules = rules
        self.pauses = pauses  # the evaluator's, or the monitor's own on top of it
        self.timelines: dict[str, Timeline] = {}
        self.outages: tuple[Outage, ...] = ()  # recent ones, oldest first
        self.state = MonitorState.UNKNOWN
        self.since: Millis | None = None
        self.next_stale: Millis | None = None  # when tick() must look at this monitor again


class Evaluator:
    def __init__(self, horizon_ms: int = DEFAULT_HORIZON_MS) -> None:
        self.horizon_ms = horizon_ms
        self._tracks: dict[str, _Track] = {}
        self._pauses = Pauses()  # when uptally was not running, shared by every timeline

    # -- configuration and restore -----------------------------------------------------------

    def set_rules(self, monitor: str, rules: Rules) -> None:
        track = self._tracks.get(monitor)
        if track is None:
            self._tracks[monitor] = _Track(rules, self._pauses)
            return
        track.rules = rules
        for name in list(track.timelines):
            if name not in rules.locations:
                del track.timelines[name]
        for timeline in track.timelines.values():
            timeline.confirm, timeline.stale = rules.confirm, rules.stale_ms

    def pause(self, start: Millis, end: Millis) -> None:
        """uptally was not running over [start, end): no location's silence counts there."""
        self._pauses.add(start, end)
        self._restale()

    def hold(self, since: Millis) -> None:
        """uptally has not been running since `since` and is starting: until `resume`, no
        silence after that counts (its start-up may take longer than a location's limit)."""
        self._pauses.open_from = since
        self._restale()

    def resume(self, at: Millis) -> None:
        """Start-up is done: the pause begun by `hold` ends at `at`."""
        since, self._pauses.open_from = self._pauses.open_from, None
        if since is not None:
            self._pauses.add(since, at)
        self._restale()

    def pause_monitor(self, monitor: str, start: Millis, end: Millis | None = None) -> None:
        """The monitor is paused from `start` (until `end`, or until `resume_monitor`)."""
        track = self._tracks.get(monitor)
        if track is None:
            return
        if track.pauses is self._pauses:
            track.pauses = Pauses(self._pauses)
            for timeline in track.timelines.values():
                timeline.pauses = track.pauses
        if end is None:
            track.pauses.open_from = start
        else:
            track.pauses.add(start, end)
        track.next_stale = _next_stale(track, 0)

    def resume_monitor(self, monitor: str, at: Millis) -> None:
        """The monitor's open pause ends at `at`: silence counts again from there."""
        track = self._tracks.get(monitor)
        if track is None or track.pauses is self._pauses:
            return
        since, track.pauses.open_from = track.pauses.open_from, None
        if since is not None:
            track.pauses.add(since, at)
        track.next_stale = _next_stale(track, 0)

    def _restale(self) -> None:
        for track in self._tracks.values():
            track.next_stale = _next_stale(track, 0)

    def forget(self, monitor: str) -> None:
        self._tracks.pop(monitor, None)

    def monitors(self) -> list[str]:
        return list(self._tracks)

    def restore(
        self,
        locations: Iterable[LocationSnapshot],
        outages: Iterable[Outage],
        statuses: Iterable[MonitorStatus],
        newest: Iterable[Result] = (),
    ) -> None:
        """Load persisted state (after set_rules) so that a restart continues where it stopped.

        `newest` (each location's newest stored result) catches up what was kept in memory only:
        a run of successes is persisted lazily (see Evaluation.touched), so after a crash its
        stored end can lag; without this the location would look silent from there on, until
        its next result, although it reported all along.
        """
        for snap in locations:
            track = self._tracks.get(snap.monitor)
            if track is None or snap.location not in track.rules.locations:
                continue
            timeline = Timeline(track.rules.confirm, track.rules.stale_ms, track.pauses)
            timeline.runs = [Run(*run) for run in snap.runs]
            timeline.last = snap.last
            track.timelines[snap.location] = timeline
        for result in newest:
            track = self._tracks.get(result.monitor)
            lagging = track.timelines.get(result.location) if track else None
            run = lagging.runs[-1] if lagging and lagging.runs else None
            # Only quiet extensions of a run of successes go unpersisted: anything else (a
            # failure, a gap) changes the runs and is written with its result.
            if lagging and run and run.ok is True and result.ok and result.at > run.last_at:
                run.last_at = result.at
                lagging.last = result
        for outage in sorted(outages, key=lambda o: o.start):
            track = self._tracks.get(outage.monitor)
            if track is not None:
                track.outages = (*track.outages, outage)
        for status in statuses:
            track = self._tracks.get(status.monitor)
            if track is not None:
                track.state, track.since = status.state, status.since
        for track in self._tracks.values():
            track.next_stale = _next_stale(track, 0)

    # -- reading -----------------------------------------------------------------------------

    def status(self, monitor: str) -> MonitorStatus | None:
        track = self._tracks.get(monitor)
        return MonitorStatus(monitor, track.state, track.since) if track else None

    def state(self, monitor: str) -> MonitorState | None:
        """`status(monitor).state` without making the status (a list reads thousands)."""
        track = self._tracks.get(monitor)
        return track.state if track else None

    def location_snapshots(self, monitor: str) -> list[LocationSnapshot]:
        track = self._tracks.get(monitor)
        if track is None:
            return []
        return [_snapshot(monitor, name, tl) for name, tl in sorted(track.timelines.items())]

    def snapshot(self, monitor: str, location: str) -> LocationSnapshot | None:
        track = self._tracks.get(monitor)
        timeline = track.timelines.get(location) if track else None
        return _snapshot(monitor, location, timeline) if timeline else None

    def open_outage(self, monitor: str) -> Outage | None:
        track = self._tracks.get(monitor)
        if track is None:
            return None
        return next((o for o in reversed(track.outages) if o.open and o.verified), None)

    def rules(self, monitor: str) -> Rules | None:
        track = self._tracks.get(monitor)
        return track.rules if track else None

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

    def evaluate(
        self,
        results: Sequence[Result],
        histories: Histories | None = None,
        now: Millis | None = None,
    ) -> Evaluation:
        """Feed a batch; `now` (default: the newest result) decides which locations went stale."""
        evaluation = Evaluation()
        histories = histories or {}
        if now is None:
            now = max((r.at for r in results), default=0)
        dirty: dict[str, set[str]] = defaultdict(set)
        changed: set[str] = set()  # monitors whose down or live intervals may have changed
        # Within a batch, time order: a batch is never late relative to itself.
        for result in sorted(results, key=lambda r: (r.at, not r.ok)):
            track = self._tracks.get(result.monitor)
            if track is None:
                evaluation.rejected.append((result, "unknown monitor"))
                continue
            if result.location not in track.rules.locations:
                evaluation.rejected.append((result, "location not assigned to this monitor"))
                continue
            if track.pauses is not self._pauses and track.pauses.covers(result.at):
                evaluation.rejected.append((result, "monitor paused"))
                continue
            key = (result.monitor, result.location)
            timeline = track.timelines.get(result.location)
            if timeline is None:
                timeline = track.timelines[result.location] = Timeline(
                    track.rules.confirm, track.rules.stale_ms, track.pauses
                )
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
            effect = timeline.append(result, now)
            if effect == CHANGED:
                changed.add(result.monitor)
            if effect == QUIET:
                # Extending a live run of successes changes nothing that matters after a
                # restart; such locations are only `touched` and persisted lazily.
                evaluation.touched.add(key)
            else:
                dirty[result.monitor].add(result.location)
        for (monitor, location), (reset_at, history) in histories.items():
            track = self._tracks.get(monitor)
            if track is None or location not in track.timelines:
                continue
            pauses = track.pauses
            kept = history
            if pauses is not self._pauses:  # results stored while paused are not replayed
                kept = [r for r in history if not pauses.covers(r.at)]
            track.timelines[location].rebuild(reset_at, kept)
            dirty[monitor].add(location)
            changed.add(monitor)
        for monitor, locations in dirty.items():
            self._settle(monitor, locations, monitor in changed, now, evaluation)
        for monitor in changed.difference(dirty):
            self._settle(monitor, set(), True, now, evaluation)
        evaluation.touched.difference_update(evaluation.locations)
        return evaluation

    def tick(self, now: Millis) -> Evaluation:
        """Re-judge monitors whose locations went silent since the last look."""
        evaluation = Evaluation()
        for monitor, track in self._tracks.items():
            if track.next_stale is not None and track.next_stale <= now:
                self._settle(monitor, set(), True, now, evaluation)
        return evaluation

    def _settle(
        self, monitor: str, locations: set[str], changed: bool, now: Millis, evaluation: Evaluation
    ) -> None:
        track = self._tracks[monitor]
        timelines = track.timelines
        newest = max((tl.newest_at or 0) for tl in timelines.values()) if timelines else 0
        horizon = newest - self.horizon_ms
        for name in locations:
            timelines[name].prune(horizon)
            evaluation.locations[(monitor, name)] = _snapshot(monitor, name, timelines[name])
        if changed or track.state is MonitorState.UNKNOWN:
            views = {
                name: LocationView(tl.live_intervals(now), tl.down_intervals(now))
                for name, tl in timelines.items()
                if tl.runs
            }
            found = episodes(views, track.rules.consensus)
            self._reconcile(track, monitor, found, horizon, evaluation)
        self._restate(track, monitor, now, evaluation)
        track.next_stale = _next_stale(track, now)

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
            match = next((o for o in unmatched if overlaps(o, episode)), None)
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
            evaluation.events.extend(outage_events(match, outage))
        for gone in unmatched:
            evaluation.removed_outages.add(gone.id)
            evaluation.outages.pop(gone.id, None)
            if gone.verified and gone.open:
                data = event_data(gone, retracted=True)
                evaluation.events.append(Event(EventKind.MONITOR_UP, gone.start, monitor, data))
        track.outages = tuple(current)

    def _restate(self, track: _Track, monitor: str, now: Millis, evaluation: Evaluation) -> None:
        state, since = MonitorState.UNKNOWN, None
        open_verified = next((o for o in track.outages if o.open and o.verified), None)
        live = [tl for tl in track.timelines.values() if tl.is_live(now)]
        down = [tl for tl in live if tl.is_down(now)]
        if open_verified is not None:
            state, since = MonitorState.DOWN, open_verified.start
        elif down:
            state = MonitorState.DEGRADED
            since = min(tl.since() or 0 for tl in down)
        elif any(tl.has_success for tl in live):
            # Up needs a live location that has succeeded: failures below `confirm`, or only
            # silent and degraded probes, say nothing yet.
            state = MonitorState.UP
            ends = [o.end for o in track.outages if o.end is not None]
            starts = [s for tl in live if tl.has_success and (s := tl.since()) is not None]
            since = max(ends) if ends else min(starts, default=None)
        # No event here: `monitor.degraded` belongs to the episode (see changes.outage_events),
        # not to the state, which also reads degraded while locations recover from an outage.
        if state != track.state or since != track.since:
            track.state, track.since = state, since
            evaluation.statuses[monitor] = MonitorStatus(monitor, state, since)


def _next_stale(track: _Track, now: Millis) -> Millis | None:
    """The next time one of the monitor's locations goes silent, if no result comes first."""
    times = [t for tl in track.timelines.values() if (t := tl.stale_at()) is not None and t > now]
    return min(times, default=None)


def _snapshot(monitor: str, location: str, timeline: Timeline) -> LocationSnapshot:
    if timeline.is_down():
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
