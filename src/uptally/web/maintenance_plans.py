"""Scheduling and changing maintenance windows for the admin API and the console alike: the
request's shape, times in the site timezone, one-off or recurring, each change in one
transaction through the maintenance timer's services (refusals are `ApiError`s)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, ValidationError

from uptally.clock import Millis
from uptally.config.schema import MaintenanceWindow
from uptally.ids import new_id
from uptally.maintenance.recurrence import local_ms, wall_clock
from uptally.maintenance.series import SeriesPlan
from uptally.maintenance.service import Plan, WindowError
from uptally.maintenance.windows import WindowView
from uptally.runtime import Runtime
from uptally.store import maintenance as store
from uptally.web.errors import ApiError
from uptally.web.schemas import Model

_FAR_MS = 2 * 366 * 86_400_000  # windows start within two years
Ids = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=500)]


class WindowIn(Model):
    title: str = Field(min_length=1, max_length=200)
    start: datetime | None = None  # one-off; for recurring windows the first occurrence
    end: datetime | None = None
    components: Ids = Field(default_factory=list)
    monitors: Ids = Field(default_factory=list)
    message: str = Field(default="", max_length=10_000)
    rrule: str | None = Field(default=None, max_length=500)
    cron: str | None = Field(default=None, max_length=128)
    duration: str | int | None = Field(default=None, description="e.g. 2h (recurring only)")
    until: datetime | None = None
    id: str | None = Field(
        default=None, max_length=48, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
    )  # recurring windows: the series id (default: generated)


def moment_ms(runtime: Runtime, value: datetime, name: str) -> Millis:
    """A time (naive: wall-clock in the site timezone) within the next two years."""
    try:
        at = local_ms(value, runtime.config.site.timezone)
    except (OverflowError, OSError, ValueError):
        raise ApiError(422, f"{name}: time out of range") from None
    if not 0 <= at < runtime.clock.now_ms() + _FAR_MS:
        raise ApiError(422, f"{name}: maintenance is planned at most two years ahead")
    return at


def series_plan(runtime: Runtime, body: WindowIn) -> SeriesPlan:
    zone = runtime.config.site.timezone
    try:
        checked = MaintenanceWindow(
            id=body.id or new_id(),
            title=body.title,
            start=body.start,
            end=body.end,
            rrule=body.rrule,
            cron=body.cron,
            duration=body.duration,
            until=body.until,
            components=body.components,
            monitors=body.monitors,
            message=body.message or None,
        )
    except ValidationError as error:
        problems = "; ".join(str(e.get("msg", "invalid")) for e in error.errors()[:10])
        raise ApiError(422, problems or "invalid recurring window") from None
    assert checked.id is not None
    assert checked.duration is not None
    first = None
    if checked.start is not None:
        first = wall_clock(moment_ms(runtime, checked.start, "start"), zone)
    return SeriesPlan(
        checked.id,
        checked.title,
        checked.rrule,
        checked.cron,
        first,
        checked.duration,
        moment_ms(runtime, checked.until, "until") if checked.until else None,
        list(checked.components),
        list(checked.monitors),
        body.message,
    )


async def schedule(runtime: Runtime, body: WindowIn, actor: str) -> WindowView | None:
    """A one-off window (start, end) or a recurring one (rrule or cron, duration); for a
    recurring one, its first occurrence (None: none is scheduled yet, e.g. none within the
    scheduling horizon, or short notice refused)."""
    timer = runtime.maintenance
    try:
        if body.rrule is not None or body.cron is not None:
            plan = series_plan(runtime, body)
            async with runtime.db.begin() as conn:
                await timer.recurring.create(conn, plan, actor)
                upcoming = await store.list_windows(
                    conn, series=plan.id, limit=1, newest_first=False
                )
            timer.changed()
            return upcoming[0] if upcoming else None
        if body.start is None or body.end is None:
            raise ApiError(422, "give start and end (or rrule/cron and duration)")
        if body.duration is not None or body.until is not None or body.id is not None:
            raise ApiError(422, "id, duration and until are for recurring windows")
        one_off = Plan(
            body.title,
            moment_ms(runtime, body.start, "start"),
            moment_ms(runtime, body.end, "end"),
            list(body.components),
            list(body.monitors),
            body.message,
        )
        async with runtime.db.begin() as conn:
            window = await timer.service.create(conn, one_off, actor)
    except WindowError as error:
        raise ApiError(error.status, str(error)) from None
    timer.changed(window)
    return window


async def act(
    runtime: Runtime, window_id: str, action: str, arguments: dict[str, Any], actor: str
) -> WindowView:
    """change | end | cancel | post_update on one window."""
    service = runtime.maintenance.service
    try:
        async with runtime.db.begin() as conn:
            if action == "post_update":
                window = await service.post_update(conn, window_id, arguments["body"], actor)
            else:
                window = await getattr(service, action)(conn, window_id, actor, **arguments)
    except WindowError as error:
        raise ApiError(error.status, str(error)) from None
    runtime.maintenance.changed(window)
    return window
