"""Admin API: maintenance windows, one-off and recurring (create, change, end, cancel, notes).

Times without an offset are wall-clock times in the site timezone, as in the config file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import Field

from uptally.clock import Millis, iso
from uptally.maintenance.series import series_row
from uptally.maintenance.service import WindowError
from uptally.maintenance.windows import WindowView
from uptally.runtime import Runtime
from uptally.store import maintenance as store
from uptally.store.maintenance import SeriesRow
from uptally.web import maintenance_plans as plans
from uptally.web.auth import principal_of, require_responder
from uptally.web.deps import TimeParam, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.maintenance_plans import Ids, WindowIn
from uptally.web.schemas import ErrorOut, Model

router = APIRouter(
    prefix="/api/v1/maintenance",
    tags=["maintenance"],
    dependencies=[Depends(require_responder)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

WindowId = Annotated[str, Path(min_length=1, max_length=80)]
Status = Literal["scheduled", "in_progress", "completed", "cancelled"]


class UpdateOut(Model):
    id: str
    status: str
    body: str
    created_at: str


class WindowOut(Model):
    id: str
    series: str | None
    title: str
    status: Status
    impact: str
    scheduled_for: str
    scheduled_until: str
    started_at: str | None
    completed_at: str | None
    created_at: str
    updated_at: str
    components: list[str]
    monitors: list[str]
    message: str
    short_notice: bool
    source: str
    in_effect: bool
    updates: list[UpdateOut]


class WindowList(Model):
    maintenance: list[WindowOut]


class WindowChange(Model):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    start: datetime | None = None
    end: datetime | None = None
    components: Ids | None = None
    monitors: Ids | None = None
    message: str | None = Field(default=None, max_length=10_000)


class NoteIn(Model):
    message: str = Field(default="", max_length=10_000)


class SeriesOut(Model):
    id: str
    title: str
    rrule: str | None
    cron: str | None
    first: str | None
    duration_s: float
    until: str | None
    timezone: str
    components: list[str]
    monitors: list[str]
    source: str
    cancelled_at: str | None
    upcoming: list[WindowOut]


class SeriesList(Model):
    series: list[SeriesOut]


def window_out(window: WindowView, now: Millis) -> WindowOut:
    return WindowOut(
        id=window.id,
        series=window.series,
        title=window.title,
        status=window.status,
        impact=window.impact,
        scheduled_for=iso(window.scheduled_for) or "",
        scheduled_until=iso(window.scheduled_until) or "",
        started_at=iso(window.started_at),
        completed_at=iso(window.completed_at),
        created_at=iso(window.created_at) or "",
        updated_at=iso(window.updated_at) or "",
        components=window.components,
        monitors=window.monitors,
        message=window.message_markdown,
        short_notice=window.short_notice,
        source=window.source,
        in_effect=window.active_at(now),
        updates=[
            UpdateOut(id=u.id, status=u.status, body=u.body, created_at=iso(u.created_at) or "")
            for u in window.updates
        ],
    )


def _error(error: WindowError) -> ApiError:
    return ApiError(error.status, str(error))


async def _series_out(runtime: Runtime, series: SeriesRow) -> SeriesOut:
    now = runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        upcoming = await store.list_windows(
            conn, series=series.id, since=now, limit=50, newest_first=False
        )
    return SeriesOut(
        id=series.id,
        title=series.title,
        rrule=series.rrule,
        cron=series.cron,
        first=series.first.isoformat() if series.first else None,
        duration_s=series.duration_ms / 1000,
        until=iso(series.until),
        timezone=series.timezone,
        components=series.components,
        monitors=series.monitors,
        source=series.source,
        cancelled_at=iso(series.cancelled_at),
        upcoming=[window_out(w, now) for w in upcoming],
    )


@router.get("", response_model=WindowList)
async def list_maintenance(
    request: Request,
    status: Annotated[list[Status] | None, Query()] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> WindowList:
    """Windows overlapping [since, until), newest first; occurrences of recurring ones listed."""
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        windows = await store.list_windows(
            conn,
            since=millis(since, "since"),
            until=millis(until, "until"),
            states=set(status) if status else None,
            limit=limit,
        )
    now = runtime.clock.now_ms()
    return WindowList(maintenance=[window_out(w, now) for w in windows])


@router.post("", response_model=WindowOut, status_code=201)
async def create_maintenance(request: Request, body: WindowIn) -> WindowOut:
    """A one-off window (start, end) or a recurring one (rrule or cron, duration); for a
    recurring one the answer is its first occurrence."""
    runtime = runtime_of(request)
    window = await plans.schedule(runtime, body, principal_of(request).actor)
    if window is None:
        raise ApiError(422, "no occurrence could be scheduled (short notice refused)")
    return window_out(window, runtime.clock.now_ms())


@router.get("/series", response_model=SeriesList)
async def list_series(request: Request) -> SeriesList:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        rows = await store.list_series(conn, active_only=False)
    return SeriesList(series=[await _series_out(runtime, row) for row in rows])


@router.get("/series/{series_id}", response_model=SeriesOut)
async def get_series(request: Request, series_id: WindowId) -> SeriesOut:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        row = await store.get_series(conn, series_id)
    if row is None:
        raise ApiError(404, f"no recurring window {series_id!r}")
    return await _series_out(runtime, row)


@router.delete("/series/{series_id}", response_model=SeriesOut)
async def cancel_series(request: Request, series_id: WindowId) -> SeriesOut:
    """Stop a recurring window: its scheduled occurrences are cancelled."""
    runtime = runtime_of(request)
    try:
        async with runtime.db.begin() as conn:
            await runtime.maintenance.recurring.cancel(conn, series_id, principal_of(request).actor)
            row = await store.get_series(conn, series_id)
    except WindowError as error:
        raise _error(error) from None
    runtime.maintenance.changed()
    assert row is not None
    return await _series_out(runtime, row)


@router.put("/series/{series_id}", response_model=SeriesOut)
async def replace_series(request: Request, series_id: WindowId, body: WindowIn) -> SeriesOut:
    """Plan a recurring window anew (rrule or cron, duration, …): its scheduled occurrences
    are rescheduled; one running now continues. A series of the config file answers 409."""
    runtime = runtime_of(request)
    if body.rrule is None and body.cron is None:
        raise ApiError(422, "a recurring window needs rrule or cron (and duration)")
    if body.id is not None and body.id != series_id:
        raise ApiError(422, "the id is the identity and cannot change")
    plan = plans.series_plan(runtime, body.model_copy(update={"id": series_id}))
    actor = principal_of(request).actor
    timer = runtime.maintenance
    try:
        timer.service.check_targets(plan.components, plan.monitors)
        async with runtime.db.begin() as conn:
            current = await store.get_series(conn, series_id)
            if current is None:
                raise ApiError(404, f"no recurring window {series_id!r}")
            if current.source != "api":
                raise ApiError(409, f"recurring window {series_id!r} is provisioned by the config")
            zone = runtime.config.site.timezone
            created = (current.created_at, current.updated_at, current.created_by)
            series = series_row(plan, current.source, zone, created=created)
            await timer.recurring.replace(conn, series, actor)
            row = await store.get_series(conn, series_id)
    except WindowError as error:
        raise _error(error) from None
    timer.changed()
    assert row is not None
    return await _series_out(runtime, row)


@router.get("/{window_id}", response_model=WindowOut)
async def get_maintenance(request: Request, window_id: WindowId) -> WindowOut:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        window = await store.get_window(conn, window_id)
    if window is None:
        raise ApiError(404, f"no maintenance window {window_id!r}")
    return window_out(window, runtime.clock.now_ms())


@router.patch("/{window_id}", response_model=WindowOut)
async def change_maintenance(
    request: Request, window_id: WindowId, body: WindowChange
) -> WindowOut:
    """Reschedule a window that has not started; extend, shorten or retitle one in progress."""
    runtime = runtime_of(request)
    changes: dict[str, Any] = {
        "title": body.title,
        "start": plans.moment_ms(runtime, body.start, "start") if body.start else None,
        "end": plans.moment_ms(runtime, body.end, "end") if body.end else None,
        "components": list(body.components) if body.components is not None else None,
        "monitors": list(body.monitors) if body.monitors is not None else None,
        "message": body.message,
    }
    return await _apply(request, window_id, "change", changes)


@router.post("/{window_id}/end", response_model=WindowOut)
async def end_maintenance(request: Request, window_id: WindowId, body: NoteIn) -> WindowOut:
    """End a window in progress now (a window not started yet is cancelled)."""
    return await _apply(request, window_id, "end", {"message": body.message or None})


@router.post("/{window_id}/cancel", response_model=WindowOut)
async def cancel_maintenance(request: Request, window_id: WindowId, body: NoteIn) -> WindowOut:
    """Cancel a window not started yet (one in progress is ended)."""
    return await _apply(request, window_id, "cancel", {"message": body.message or None})


@router.post("/{window_id}/updates", response_model=WindowOut, status_code=201)
async def post_update(request: Request, window_id: WindowId, body: NoteIn) -> WindowOut:
    """Add a note to the window's timeline (shown on the status page)."""
    if not body.message.strip():
        raise ApiError(422, "message must not be empty")
    return await _apply(request, window_id, "post_update", {"body": body.message})


async def _apply(
    request: Request, window_id: str, action: str, arguments: dict[str, Any]
) -> WindowOut:
    runtime = runtime_of(request)
    window = await plans.act(runtime, window_id, action, arguments, principal_of(request).actor)
    return window_out(window, runtime.clock.now_ms())
