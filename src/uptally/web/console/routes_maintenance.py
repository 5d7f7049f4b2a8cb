"""Maintenance in the console: windows now, upcoming (with a calendar) and past; schedule one
(one-off or recurring, warned of short notice), end early, extend, cancel, as the API does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from uptally.clock import Millis, to_datetime
from uptally.maintenance.service import WindowError
from uptally.maintenance.windows import WindowStatus, WindowView
from uptally.store import maintenance as store
from uptally.web import maintenance_plans as plans
from uptally.web.console import render
from uptally.web.console.session import Responder, Viewer, principal
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError

router = APIRouter(prefix="/console/maintenance", include_in_schema=False)
WindowId = Annotated[str, Path(min_length=1, max_length=80)]
CALENDAR_DAYS = 35
EXTEND = {"30m": 30 * 60_000, "1h": 3_600_000, "2h": 2 * 3_600_000}
NOTICES = {
    "scheduled": "Maintenance scheduled: subscribers are told.",
    "ended": "Maintenance ended.",
    "cancelled": "Maintenance cancelled.",
    "extended": "Maintenance extended.",
    "series": "Recurring maintenance saved; no occurrence is scheduled yet (they are scheduled "
    "a week ahead).",
}
FIELDS = ("title", "kind", "start", "end", "rrule", "duration", "until", "message")


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    windows: list[WindowView]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _span(window: WindowView, timezone: str) -> str:
    """Thu 3 Dec 20:00 to 22:00 CET, shown with a dash (the end's day too if it differs)."""
    zone = ZoneInfo(timezone)
    start = to_datetime(window.scheduled_for).astimezone(zone)
    end = to_datetime(window.completed_at or window.scheduled_until).astimezone(zone)
    head = f"{start:%a} {start.day} {start:%b} {start:%H:%M}"
    tail = f"{end:%H:%M} {end.tzname()}"
    if end.date() != start.date():
        tail = f"{end:%a} {end.day} {end:%b} {tail}"
    return f"{head} – {tail}"


def _calendar(windows: list[WindowView], now: Millis, timezone: str) -> list[Day]:
    """Upcoming and current windows by the local days they touch (within CALENDAR_DAYS)."""
    zone = ZoneInfo(timezone)
    today = to_datetime(now).astimezone(zone).date()
    days: dict[date, list[WindowView]] = {}
    for window in sorted(windows, key=lambda w: w.scheduled_for):
        first = to_datetime(max(window.scheduled_for, now)).astimezone(zone).date()
        last = to_datetime(window.scheduled_until - 1).astimezone(zone).date()
        day = first
        while day <= last and (day - today).days < CALENDAR_DAYS:
            days.setdefault(day, []).append(window)
            day += timedelta(days=1)
    return [Day(day, days[day]) for day in sorted(days)]


async def _page(
    request: Request,
    signed: Any,
    status: int = 200,
    values: dict[str, Any] | None = None,
    form_error: str = "",
    warning: str = "",
) -> Response:
    runtime = runtime_of(request)
    config, now = runtime.config, runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        ahead = await store.list_windows(
            conn,
            since=now,
            states={WindowStatus.SCHEDULED.value, WindowStatus.IN_PROGRESS.value},
            limit=200,
            newest_first=False,
        )
        past = await store.list_windows(
            conn,
            until=now,
            states={WindowStatus.COMPLETED.value, WindowStatus.CANCELLED.value},
            limit=20,
        )
    active = [w for w in ahead if w.status == WindowStatus.IN_PROGRESS or w.active_at(now)]
    upcoming = [w for w in ahead if w not in active]
    titles = {c.id: c.title for c in config.components}
    return await render.page(
        request,
        signed,
        "maintenance_list.html",
        nav="maintenance",
        status=status,
        active=active,
        upcoming=upcoming,
        past=past,
        calendar=_calendar(ahead, now, config.site.timezone),
        covers=lambda w: [titles.get(c, c) for c in w.components] + list(w.monitors),
        components=config.components,
        monitors=config.monitors,
        tz=config.site.timezone,
        span=lambda w: _span(w, config.site.timezone),
        values=values or {"kind": "once", "components": [], "monitors": []},
        form_error=form_error,
        warning=warning,
        notice_hours=config.site.maintenance_notice / 3_600_000,
        notice=NOTICES.get(request.query_params.get("done", "")),
    )


@router.get("")
async def maintenance(request: Request, signed: Viewer) -> Response:
    return await _page(request, signed)


def _window_in(values: dict[str, Any]) -> plans.WindowIn:
    """The API's request from the form (naive times: the site's wall clock, as in the API)."""
    recurring = values["kind"] == "recurring"
    body: dict[str, Any] = {
        "title": values["title"],
        "components": values["components"],
        "monitors": values["monitors"],
        "message": values["message"],
        "start": values["start"] or None,
    }
    if recurring:
        body.update(rrule=values["rrule"] or None, duration=values["duration"] or None)
        body["until"] = values["until"] or None
        if body["rrule"] is None:
            raise ApiError(422, "a recurring window needs a recurrence rule")
        if body["duration"] is None:
            raise ApiError(422, "a recurring window needs a duration, e.g. 2h")
    else:
        body["end"] = values["end"] or None
        if body["start"] is None or body["end"] is None:
            raise ApiError(422, "give the start and the end")
    try:
        return plans.WindowIn.model_validate(body)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ()))
        raise ApiError(422, f"{where}: {problem.get('msg', 'invalid')}") from None


@router.post("")
async def schedule(request: Request, signed: Responder) -> Response:
    """Schedule a window; a start within the notice period asks once more, with a warning."""
    runtime = runtime_of(request)
    form = await request.form()
    values: dict[str, Any] = {name: _text(form, name) for name in FIELDS}
    values["kind"] = "recurring" if values["kind"] == "recurring" else "once"
    for many in ("components", "monitors"):
        values[many] = [v for v in form.getlist(many) if isinstance(v, str) and v]
    try:
        body = _window_in(values)
        if body.start is not None and body.rrule is None and _text(form, "short_ok") != "1":
            start = plans.moment_ms(runtime, body.start, "start")
            service, now = runtime.maintenance.service, runtime.clock.now_ms()
            service.check_targets(body.components, body.monitors)
            if service.short_notice(start, now, refuse=True):
                hours = runtime.config.site.maintenance_notice / 3_600_000
                warning = (
                    f"This window starts in less than {hours:g} h: subscribers get short "
                    "notice, and the window is marked so on the status page."
                )
                return await _page(request, signed, 200, values, warning=warning)
        if await plans.schedule(runtime, body, principal(signed).actor) is None:
            return RedirectResponse("/console/maintenance?done=series", status_code=303)
    except ApiError as error:
        return await _page(request, signed, 422, values, form_error=error.message)
    except WindowError as error:
        return await _page(request, signed, 422, values, form_error=str(error))
    return RedirectResponse("/console/maintenance?done=scheduled", status_code=303)


async def _act(
    request: Request, signed: Any, window_id: str, action: str, arguments: dict[str, Any]
) -> Response:
    done = {"end": "ended", "cancel": "cancelled", "change": "extended"}[action]
    try:
        await plans.act(runtime_of(request), window_id, action, arguments, principal(signed).actor)
    except ApiError as error:
        return await _page(request, signed, error.status, form_error=error.message)
    return RedirectResponse(f"/console/maintenance?done={done}", status_code=303)


@router.post("/{window_id}/end")
async def end_now(request: Request, signed: Responder, window_id: WindowId) -> Response:
    return await _act(request, signed, window_id, "end", {"message": None})


@router.post("/{window_id}/cancel")
async def cancel(request: Request, signed: Responder, window_id: WindowId) -> Response:
    return await _act(request, signed, window_id, "cancel", {"message": None})


@router.post("/{window_id}/extend")
async def extend(request: Request, signed: Responder, window_id: WindowId) -> Response:
    """Extend by a step (30 min, 1 h, 2 h) from the current end, or to a given time."""
    runtime = runtime_of(request)
    form = await request.form()
    async with runtime.db.connect() as conn:
        window = await store.get_window(conn, window_id)
    if window is None:
        return await _page(request, signed, 404, form_error=f"no maintenance window {window_id!r}")
    step, until = _text(form, "by"), _text(form, "until")
    try:
        if until:
            end = plans.moment_ms(runtime, datetime.fromisoformat(until), "until")
        elif step in EXTEND:
            end = window.scheduled_until + EXTEND[step]
        else:
            raise ApiError(422, "choose how long to extend, or a new end")
    except ValueError:
        return await _page(request, signed, 422, form_error="the new end is not a time")
    except ApiError as error:
        return await _page(request, signed, 422, form_error=error.message)
    return await _act(request, signed, window_id, "change", {"end": end})
