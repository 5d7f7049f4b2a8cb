"""Windows written in the config file, kept in step with the database at start and on reload.

Config windows are the operator's own: short notice is flagged, never refused. A window removed
from the file is cancelled (or ended, if it is in progress); a window that already ended is left
as it was. Every change is audit-logged like one made through the API.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.config.schema import Config, MaintenanceWindow
from uptally.maintenance.recurrence import local_ms, wall_clock
from uptally.maintenance.series import Recurring, SeriesPlan, series_row
from uptally.maintenance.service import Maintenance, Plan, WindowError
from uptally.maintenance.windows import OPEN_STATES, WindowStatus
from uptally.store import maintenance as store

log = logging.getLogger(__name__)
CONFIG = "config"


def window_id(window: MaintenanceWindow) -> str:
    """The window's id, or one derived from its title and start (stable across restarts)."""
    if window.id:
        return window.id
    start = window.start.isoformat() if window.start else ""
    return "cfg-" + hashlib.sha256(f"{window.title}|{start}".encode()).hexdigest()[:12]


def _naive_local(moment: datetime, zone: str) -> datetime:
    return wall_clock(local_ms(moment, zone), zone) if moment.tzinfo else moment


async def sync_config(
    service: Maintenance, recurring: Recurring, conn: AsyncConnection, config: Config, actor: str
) -> None:
    zone = config.site.timezone
    now = service.clock.now_ms()
    one_off: dict[str, Plan] = {}
    series: dict[str, SeriesPlan] = {}
    everything = ([c.id for c in config.components], [m.id for m in config.monitors])
    for window in config.maintenance:
        message = window.message or ""
        components, monitors = list(window.components), list(window.monitors)
        if not components and not monitors:  # a site-wide window
            components, monitors = list(everything[0]), list(everything[1])
        if window.recurring:
            assert window.duration is not None
            series[window_id(window)] = SeriesPlan(
                window_id(window),
                window.title,
                window.rrule,
                window.cron,
                _naive_local(window.start, zone) if window.start else None,
                window.duration,
                local_ms(window.until, zone) if window.until else None,
                components,
                monitors,
                message,
            )
        else:
            assert window.start is not None
            assert window.end is not None
            one_off[window_id(window)] = Plan(
                window.title,
                local_ms(window.start, zone),
                local_ms(window.end, zone),
                components,
                monitors,
                message,
            )
    for wid, plan in one_off.items():
        try:
            await _one_off(service, conn, wid, plan, actor, now)
        except WindowError as error:
            log.warning("maintenance window %s from the config: %s", wid, error)
    listed = await store.list_windows(conn, states=OPEN_STATES, limit=100_000, with_updates=False)
    for view in listed:
        if view.source == CONFIG and view.series is None and view.id not in one_off:
            await service.end(conn, view.id, actor, "Removed from the configuration.")
    for sid, planned in series.items():
        try:
            await _series(recurring, conn, planned, zone, actor)
        except WindowError as error:
            log.warning("recurring maintenance window %s from the config: %s", sid, error)
    for row in await store.list_series(conn):
        if row.source == CONFIG and row.id not in series:
            await recurring.cancel(conn, row.id, actor)


async def _one_off(
    service: Maintenance, conn: AsyncConnection, wid: str, plan: Plan, actor: str, now: int
) -> None:
    found = await store.get_window(conn, wid)
    if found is None:
        if plan.end > now:
            await service.create(conn, plan, actor, window_id=wid, source=CONFIG)
        return
    if found.status not in OPEN_STATES:
        return
    # A start in the past is not moved: the timer records the window as it was planned.
    moved = found.status == WindowStatus.SCHEDULED and plan.start != found.scheduled_for
    await service.change(
        conn,
        wid,
        actor,
        title=plan.title,
        start=plan.start if moved and plan.start >= now else None,
        end=plan.end if plan.end > now else None,
        components=plan.components,
        monitors=plan.monitors,
        message=plan.message,
        refuse_short=False,
    )
    if plan.end <= now:
        await service.end(conn, wid, actor, "Ended by the configuration.")


async def _series(
    recurring: Recurring, conn: AsyncConnection, plan: SeriesPlan, zone: str, actor: str
) -> None:
    row = await store.get_series(conn, plan.id)
    if row is None:
        await recurring.create(conn, plan, actor, source=CONFIG)
        return
    if row.source != CONFIG:
        raise WindowError(f"a recurring window {plan.id!r} was made through the API already")
    wanted = series_row(
        plan, CONFIG, zone, created=(row.created_at, row.updated_at, row.created_by)
    )
    if row.cancelled_at is not None or not row.same_plan(wanted):
        await recurring.replace(conn, wanted, actor)
    else:
        await recurring.materialise(conn, row, actor)
