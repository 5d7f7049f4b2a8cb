"""Alert suppression during maintenance: events about covered monitors are marked, not dropped.

The writer passes every batch of events through `Suppressor.mark` before they are written to
the outbox. An event about a monitor covered by a window in effect gets
`"suppressed": {"maintenance": <window id>}` in its data; dispatchers do not deliver it, but it
stays on record. A recovery is suppressed only if its outage's `monitor.down` was: a recovery of
an outage announced before the maintenance is delivered. When a window ends and a covered
monitor is still down in an outage whose alert was suppressed, a fresh `monitor.down` (with
`after_maintenance`) is added to the next batch, so the alert fires then.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace

from uptally.clock import Millis
from uptally.evaluator import Outage
from uptally.evaluator.changes import event_data
from uptally.events import Event, EventKind
from uptally.maintenance.windows import WindowView, covered_monitors, covering

MONITOR_EVENTS = frozenset(
    {EventKind.MONITOR_DOWN, EventKind.MONITOR_UP, EventKind.MONITOR_DEGRADED}
)
_FORGET_MS = 7 * 86_400_000  # silenced outages older than this are forgotten


class Suppressor:
    def __init__(
        self,
        open_outage: Callable[[str], Outage | None],
        component_monitors: Mapping[str, Collection[str]] | None = None,
    ) -> None:
        self.open_outage = open_outage  # the evaluator's open verified outage of a monitor
        self.windows: Sequence[WindowView] = ()  # current, upcoming and recently ended
        self._components_of: dict[str, tuple[str, ...]] = {}
        self._component_monitors: Mapping[str, Collection[str]] = {}
        self.configure(component_monitors or {})
        self._silenced: dict[str, tuple[str, Millis]] = {}  # outage -> (window, when)
        self._released: list[WindowView] = []
        self.on_suppressed: Callable[[Event], None] | None = None  # e.g. to count them

    def configure(self, component_monitors: Mapping[str, Collection[str]]) -> None:
        """Which monitors each component has (a window on a component covers them)."""
        self._component_monitors = component_monitors
        components_of: dict[str, list[str]] = {}
        for component, monitors in component_monitors.items():
            for monitor in monitors:
                components_of.setdefault(monitor, []).append(component)
        self._components_of = {m: tuple(cs) for m, cs in components_of.items()}

    def release(self, window: WindowView) -> None:
        """The window ended (or was cancelled): re-alert its monitors on the next `mark`."""
        self._released.append(window)

    @property
    def pending(self) -> bool:
        return bool(self._released)

    def mark(self, events: list[Event], now: Millis) -> list[Event]:
        """The events to write: suppressed ones marked, fresh alerts for released windows added."""
        marked = [self._mark(event, now) for event in events]
        marked.extend(self._fresh_alerts(now, marked))
        if len(self._silenced) > 10_000:
            self._silenced = {k: v for k, v in self._silenced.items() if now - v[1] < _FORGET_MS}
        return marked

    def _covering(self, monitor: str, at: Millis) -> WindowView | None:
        found = covering(self.windows, monitor, self._components_of.get(monitor, ()), at)
        return found[0] if found else None

    def _mark(self, event: Event, now: Millis) -> Event:
        if event.kind not in MONITOR_EVENTS or "suppressed" in event.data:
            return event
        monitor = event.subject
        outage = str(event.data.get("outage", ""))
        window: WindowView | None
        if event.kind is EventKind.MONITOR_UP:
            silenced = self._silenced.pop(outage, None)
            if silenced is not None:
                return self._suppress(event, silenced[0])
            window = self._covering(monitor, now)
            start = event.data.get("start")
            # Its down was suppressed before a restart if a window covered the outage's start.
            if window is None or not isinstance(start, int) or not self._covering(monitor, start):
                return event
            return self._suppress(event, window.id)
        window = self._covering(monitor, now)
        if window is None:
            return event
        if event.kind is EventKind.MONITOR_DOWN and outage:
            self._silenced[outage] = (window.id, now)
        return self._suppress(event, window.id)

    def _fresh_alerts(self, now: Millis, batch: list[Event]) -> list[Event]:
        if not self._released:
            return []
        released, self._released = self._released, []
        already = {e.subject for e in batch if e.kind is EventKind.MONITOR_DOWN}
        fresh: list[Event] = []
        for window in released:
            for monitor in sorted(covered_monitors(window, self._component_monitors)):
                if monitor in already or self._covering(monitor, now) is not None:
                    continue  # another window still covers it: that one's end will tell
                outage = self.open_outage(monitor)
                if outage is None or not self._was_silenced(monitor, outage):
                    continue
                self._silenced.pop(outage.id, None)
                data = event_data(outage)
                data["after_maintenance"] = window.id
                fresh.append(Event(EventKind.MONITOR_DOWN, now, monitor, data))
                already.add(monitor)
        return fresh

    def _was_silenced(self, monitor: str, outage: Outage) -> bool:
        return outage.id in self._silenced or self._covering(monitor, outage.start) is not None

    def _suppress(self, event: Event, window_id: str) -> Event:
        if self.on_suppressed is not None:
            self.on_suppressed(event)
        return replace(event, data={**event.data, "suppressed": {"maintenance": window_id}})
