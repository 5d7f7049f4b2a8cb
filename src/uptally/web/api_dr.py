"""Admin API: the history of disaster-recovery drills (`uptally dr drill` records them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from uptally.clock import iso
from uptally.store import drills
from uptally.web.auth import require_admin
from uptally.web.deps import runtime_of
from uptally.web.schemas import ErrorOut
from uptally.web.schemas_trust import DrillList, DrillOut

router = APIRouter(
    prefix="/api/v1/dr",
    tags=["dr"],
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)


@router.get("/drills", response_model=DrillList)
async def list_drills(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> DrillList:
    """Drills, newest first: achieved RTO/RPO against the targets, and every check."""
    async with runtime_of(request).db.connect() as conn:
        rows = await drills.list_drills(conn, limit)
    return DrillList(
        drills=[
            DrillOut(
                id=row.id,
                at=iso(row.at) or "",
                backup=row.backup,
                backup_created_at=iso(row.backup_created_at),
                rto_s=None if row.rto_ms is None else row.rto_ms / 1000,
                rpo_s=None if row.rpo_ms is None else row.rpo_ms / 1000,
                rto_target_s=row.rto_target_ms / 1000,
                rpo_target_s=row.rpo_target_ms / 1000,
                ok=row.ok,
                checks=list(row.report.get("checks", [])),
            )
            for row in rows
        ]
    )
