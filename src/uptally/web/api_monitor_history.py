"""Admin API: a monitor's configuration changes, and the monitors deleted through the API."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request

from uptally.clock import iso
from uptally.config.managed import MONITOR
from uptally.managed.history import monitor_changes
from uptally.store import managed as managed_store
from uptally.web.auth import require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import is_id
from uptally.web.schemas import ErrorOut, Model

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


class ConfigChangeOut(Model):
    at: str
    actor: str
    action: str  # monitor.created|updated|deleted, config.loaded|reloaded
    source: Literal["api", "config"]
    changes: dict[str, Any] | None  # JSON pointer -> {before, after}; null for the file


class ConfigChangeList(Model):
    changes: list[ConfigChangeOut]


class DeletedMonitorOut(Model):
    id: str
    kind: str
    deleted_at: str
    deleted_by: str


class DeletedMonitorList(Model):
    monitors: list[DeletedMonitorOut]


@router.get("/{monitor_id}/changes", response_model=ConfigChangeList)
async def list_changes(request: Request, monitor_id: str) -> ConfigChangeList:
    """Changes of the monitor's configuration, newest first: through the API (with what
    changed, secrets as digests) and by the config file (which load changed it). A deleted
    monitor keeps its history."""
    runtime = runtime_of(request)
    if not is_id(monitor_id):
        raise ApiError(404, f"no monitor {monitor_id!r}")
    async with runtime.db.connect() as conn:
        found = await monitor_changes(conn, monitor_id)
    known = found or runtime.config.monitor(monitor_id) is not None
    if not known and await runtime.changes.row(MONITOR, monitor_id) is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    return ConfigChangeList(
        changes=[
            ConfigChangeOut(
                at=iso(c.at) or "",
                actor=c.actor,
                action=c.action,
                source=c.source,
                changes=c.changes,
            )
            for c in found
        ]
    )


async def deleted_monitors(request: Request) -> DeletedMonitorList:
    """`GET /api/v1/monitors?deleted=true`: the tombstones of monitors deleted through the API,
    the most recently deleted first (their results and outages are kept)."""
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        rows = await managed_store.deleted(conn, MONITOR.name)
    return DeletedMonitorList(
        monitors=[
            DeletedMonitorOut(
                id=row.id,
                kind=str(row.document.get("kind", "")),
                deleted_at=iso(row.deleted_at) or "",
                deleted_by=row.updated_by,
            )
            for row in rows
            if runtime.config.monitor(row.id) is None  # not made again (nor adopted by the file)
        ]
    )
