"""Changing maintenance windows, each in the caller's transaction with its audit entry and event.

Create (one-off or recurring), change (reschedule, extend, retitle), end early, cancel, post an
update, and the timer's transitions (start, complete). Every change is audit-logged
(`maintenance.*`) and writes its outbox event (`maintenance.scheduled|started|completed`) in the
same transaction, so subscribers hear of exactly what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Clock, Millis, iso
from uptally.config.schema import Config
from uptally.events import Event, EventKind
from uptally.ids import new_id
from uptally.maintenance.windows import (
    OPEN_STATES,
    WindowStatus,
    WindowView,
    is_short_notice,
)
from uptally.store import maintenance as store
from uptally.store import outbox as outbox_store

GRACE_MS = 5 * 60_000  # a start this far in the past is "now" (clocks and typing take time)
LONGEST_MS = 90 * 86_400_000
S = WindowStatus


class WindowError(Exception):
    """A change that cannot be made; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Plan:
    """What a new window is: its times and what it covers."""

    title: str
    start: Millis
    end: Millis
    components: list[str]
    monitors: list[str]
    message: str = ""


def event_data(window: WindowView, **extra: Any) -> dict[str, Any]:
    return {
        "id": window.id,
        "title": window.title,
        "status": window.status,
        "scheduled_for": iso(window.scheduled_for),
        "scheduled_until": iso(window.scheduled_until),
        "start": window.scheduled_for,  # milliseconds, like outages' events
        "end": window.scheduled_until,
        "started_at": iso(window.started_at),
        "completed_at": iso(window.completed_at),
        "components": window.components,
        "monitors": window.monitors,
        "short_notice": window.short_notice,
        "message": window.message_markdown,
        "series": window.series,
        **extra,
    }


def _details(window: WindowView) -> dict[str, Any]:
    return {
        "title": window.title,
        "scheduled_for": iso(window.scheduled_for),
        "scheduled_until": iso(window.scheduled_until),
        "components": window.components,
        "monitors": window.monitors,
        "short_notice": window.short_notice,
        "series": window.series,
    }


class Maintenance:
    def __init__(self, config: Config, clock: Clock) -> None:
        self.config = config
        self.clock = clock

    # -- checks ---------------------------------------------------------------------------------

    def check_targets(self, components: Sequence[str], monitors: Sequence[str]) -> None:
        if not components and not monitors:
            raise WindowError("a maintenance window covers at least one component or monitor")
        known_components = {c.id for c in self.config.components}
        for name in components:
            if name not in known_components:
                raise WindowError(f"no component {name!r}", 404)
        for name in monitors:
            if self.config.monitor(name) is None:
                raise WindowError(f"no monitor {name!r}", 404)

    def short_notice(self, starts_at: Millis, now: Millis, refuse: bool) -> bool:
        notice = self.config.site.maintenance_notice
        short = is_short_notice(now, starts_at, notice)
        if short and refuse and self.config.site.short_notice == "refuse":
            hours = notice / 3_600_000
            raise WindowError(
                f"maintenance must be announced at least {hours:g} h before it starts "
                f"(site.short_notice: refuse)",
                422,
            )
        return short

    # -- one-off windows ------------------------------------------------------------------------

    async def create(
        self,
        conn: AsyncConnection,
        plan: Plan,
        actor: str,
        *,
        window_id: str | None = None,
        source: str = "api",
    ) -> WindowView:
        now = self.clock.now_ms()
        self.check_targets(plan.components, plan.monitors)
        start, end = plan.start, plan.end
        if end <= start:
            raise WindowError("end must be after start")
        if end <= now:
            raise WindowError(
                "the window ends in the past: maintenance is announced, not backfilled"
            )
        if start < now - GRACE_MS and source == "api":
            raise WindowError("the window starts in the past (use the current time to start now)")
        start = max(start, now)  # never excluded from the SLA after the fact
        if end - start > LONGEST_MS:
            raise WindowError("a maintenance window lasts at most 90 days")
        window = WindowView.scheduled(
            window_id or new_id(now),
            plan.title,
            start,
            end,
            components=list(dict.fromkeys(plan.components)),
            monitors=list(dict.fromkeys(plan.monitors)),
            message=plan.message,
            short_notice=self.short_notice(start, now, refuse=source == "api"),
            now=now,
            source=source,
        )
        if await store.get_window(conn, window.id) is not None:
            raise WindowError(f"a window {window.id!r} exists already", 409)
        await self.insert(conn, window, actor, "maintenance.created")
        return await self._reload(conn, window.id)

    async def insert(
        self, conn: AsyncConnection, window: WindowView, actor: str, action: str
    ) -> None:
        await store.insert_window(conn, window, actor)
        body = window.message_markdown or "Maintenance scheduled."
        await store.add_update(conn, window.id, S.SCHEDULED.value, body, window.created_at, actor)
        await audit.append(
            conn, actor, action, f"maintenance:{window.id}", _details(window), at=window.created_at
        )
        await self._event(conn, EventKind.MAINTENANCE_SCHEDULED, window, window.created_at)

    async def change(
        self,
        conn: AsyncConnection,
        window_id: str,
        actor: str,
        *,
        title: str | None = None,
        start: Millis | None = None,
        end: Millis | None = None,
        components: list[str] | None = None,
        monitors: list[str] | None = None,
        message: str | None = None,
        refuse_short: bool = True,
    ) -> WindowView:
        """Reschedule a scheduled window; extend, shorten or retitle one in progress."""
        now = self.clock.now_ms()
        window = await self._get(conn, window_id)
        if window.status not in OPEN_STATES:
            raise WindowError(f"the window is {window.status}: it can no longer change", 409)
        values: dict[str, Any] = {}
        if start is not None and start != window.scheduled_for:
            if window.status != S.SCHEDULED:
                raise WindowError("the window has started: its start can no longer change", 409)
            if start < now - GRACE_MS:
                raise WindowError("the window would start in the past")
            values["scheduled_for"] = max(start, now)
            if self.short_notice(values["scheduled_for"], now, refuse_short):
                values["short_notice"] = True
        if end is not None and end != window.scheduled_until:
            if end <= now:
                raise WindowError("the new end is in the past: end the window instead")
            values["scheduled_until"] = end
        new_start = values.get("scheduled_for", window.scheduled_for)
        if values.get("scheduled_until", window.scheduled_until) <= new_start:
            raise WindowError("end must be after start")
        if values.get("scheduled_until", window.scheduled_until) - new_start > LONGEST_MS:
            raise WindowError("a maintenance window lasts at most 90 days")
        if components is not None or monitors is not None:
            covered = (
                window.components if components is None else components,
                window.monitors if monitors is None else monitors,
            )
            self.check_targets(*covered)
            if list(covered[0]) != window.components:
                values["components"] = list(dict.fromkeys(covered[0]))
            if list(covered[1]) != window.monitors:
                values["monitors"] = list(dict.fromkeys(covered[1]))
        if title is not None and title != window.title:
            values["title"] = title
        if message is not None and message != window.message_markdown:
            values["message_markdown"] = message
        if not values:
            return window
        if not await store.update_window(conn, window.id, OPEN_STATES, updated_at=now, **values):
            raise WindowError("the window changed meanwhile; try again", 409)
        changed = {
            key.removesuffix("_markdown"): _shown(key, getattr(window, key), value)
            for key, value in values.items()
        }
        await audit.append(
            conn, actor, "maintenance.changed", f"maintenance:{window.id}", changed, at=now
        )
        after = await self._reload(conn, window.id)
        if "scheduled_until" in values and window.status == S.IN_PROGRESS:
            body = f"Maintenance extended until {iso(after.scheduled_until)}."
            if after.scheduled_until < window.scheduled_until:
                body = f"Maintenance now ends at {iso(after.scheduled_until)}."
            await store.add_update(conn, window.id, after.status, body, now, actor)
        elif window.status == S.SCHEDULED and changed.keys() & {
            "scheduled_for",
            "scheduled_until",
            "components",
            "monitors",
        }:
            await self._event(conn, EventKind.MAINTENANCE_SCHEDULED, after, now, rescheduled=True)
        return await self._reload(conn, window.id)

    async def end(
        self, conn: AsyncConnection, window_id: str, actor: str, message: str | None = None
    ) -> WindowView:
        """End a window early (one in progress) or cancel it (one not started yet)."""
        window = await self._get(conn, window_id)
        if window.status == S.SCHEDULED:
            return await self.cancel(conn, window_id, actor, message)
        if window.status != S.IN_PROGRESS:
            raise WindowError(f"the window is {window.status} already", 409)
        return await self.complete(conn, window, self.clock.now_ms(), actor, message, early=True)

    async def cancel(
        self, conn: AsyncConnection, window_id: str, actor: str, message: str | None = None
    ) -> WindowView:
        window = await self._get(conn, window_id)
        if window.status == S.IN_PROGRESS:
            return await self.end(conn, window_id, actor, message)
        if window.status != S.SCHEDULED:
            raise WindowError(f"the window is {window.status} already", 409)
        now = self.clock.now_ms()
        if not await store.update_window(
            conn, window.id, {S.SCHEDULED.value}, status=S.CANCELLED.value, updated_at=now
        ):
            raise WindowError("the window changed meanwhile; try again", 409)
        body = message or "This maintenance has been cancelled."
        await store.add_update(conn, window.id, S.CANCELLED.value, body, now, actor)
        await audit.append(
            conn,
            actor,
            "maintenance.cancelled",
            f"maintenance:{window.id}",
            _details(window),
            at=now,
        )
        after = await self._reload(conn, window.id)
        # There is no maintenance.cancelled event: subscribers hear it completed, as cancelled.
        await self._event(conn, EventKind.MAINTENANCE_COMPLETED, after, now, cancelled=True)
        return after

    async def post_update(
        self, conn: AsyncConnection, window_id: str, body: str, actor: str
    ) -> WindowView:
        window = await self._get(conn, window_id)
        now = self.clock.now_ms()
        update = await store.add_update(conn, window.id, window.status, body, now, actor)
        await store.update_window(conn, window.id, None, updated_at=now)
        await audit.append(
            conn,
            actor,
            "maintenance.updated",
            f"maintenance:{window.id}",
            {"update": update.id, "status": window.status},
            at=now,
        )
        return await self._reload(conn, window.id)

    # -- the timer's transitions ----------------------------------------------------------------

    async def start(self, conn: AsyncConnection, window: WindowView) -> WindowView | None:
        """Start a window that is due (at its scheduled time); None if someone else did."""
        now = self.clock.now_ms()
        at = window.scheduled_for
        if not await store.update_window(
            conn,
            window.id,
            {S.SCHEDULED.value},
            status=S.IN_PROGRESS.value,
            started_at=at,
            updated_at=now,
        ):
            return None
        body = "Scheduled maintenance is in progress."
        await store.add_update(conn, window.id, S.IN_PROGRESS.value, body, at, audit.SYSTEM)
        await audit.append(
            conn, audit.SYSTEM, "maintenance.started", f"maintenance:{window.id}", {}, at=now
        )
        after = await self._reload(conn, window.id)
        await self._event(conn, EventKind.MAINTENANCE_STARTED, after, at)
        return after

    async def complete(
        self,
        conn: AsyncConnection,
        window: WindowView,
        at: Millis,
        actor: str = audit.SYSTEM,
        message: str | None = None,
        *,
        early: bool = False,
    ) -> WindowView:
        """Complete a window in progress at `at` (its scheduled end, or now when ended early)."""
        now = self.clock.now_ms()
        if not await store.update_window(
            conn,
            window.id,
            {S.IN_PROGRESS.value},
            status=S.COMPLETED.value,
            completed_at=at,
            updated_at=now,
        ):
            raise WindowError("the window changed meanwhile", 409)
        body = message or "The scheduled maintenance has been completed."
        await store.add_update(conn, window.id, S.COMPLETED.value, body, at, actor)
        details = {"early": early, "completed_at": iso(at)}
        await audit.append(
            conn, actor, "maintenance.completed", f"maintenance:{window.id}", details, at=now
        )
        after = await self._reload(conn, window.id)
        await self._event(conn, EventKind.MAINTENANCE_COMPLETED, after, at, early=early)
        return after

    # -- helpers --------------------------------------------------------------------------------

    async def _get(self, conn: AsyncConnection, window_id: str) -> WindowView:
        window = await store.get_window(conn, window_id)
        if window is None:
            raise WindowError(f"no maintenance window {window_id!r}", 404)
        return window

    async def _reload(self, conn: AsyncConnection, window_id: str) -> WindowView:
        window = await store.get_window(conn, window_id)
        assert window is not None
        return window

    async def _event(
        self, conn: AsyncConnection, kind: EventKind, window: WindowView, at: Millis, **extra: Any
    ) -> None:
        event = Event(kind, at, window.id, event_data(window, **extra))
        await outbox_store.append_events(conn, [event], self.clock.now_ms())


def _shown(key: str, before: Any, after: Any) -> dict[str, Any]:
    if key in ("scheduled_for", "scheduled_until"):
        return {"from": iso(before), "to": iso(after)}
    if key == "message_markdown":
        return {"changed": True}  # messages may be long; the update history keeps them
    return {"from": before, "to": after}
