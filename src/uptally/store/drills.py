"""Stored disaster-recovery drills: what was restored, achieved RTO/RPO against targets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.tables_trust import dr_drills


@dataclass(frozen=True, slots=True)
class DrillRow:
    id: str
    at: Millis
    backup: str
    backup_created_at: Millis | None
    rto_ms: int | None
    rpo_ms: int | None
    rto_target_ms: int
    rpo_target_ms: int
    ok: bool
    report: dict[str, Any]


async def insert_drill(conn: AsyncConnection, row: DrillRow) -> None:
    await conn.execute(
        insert(dr_drills).values(
            id=row.id,
            at=row.at,
            backup=row.backup[:512],
            backup_created_at=row.backup_created_at,
            rto_ms=row.rto_ms,
            rpo_ms=row.rpo_ms,
            rto_target_ms=row.rto_target_ms,
            rpo_target_ms=row.rpo_target_ms,
            ok=row.ok,
            report=json.dumps(row.report, sort_keys=True, separators=(",", ":")),
        )
    )


async def list_drills(conn: AsyncConnection, limit: int = 50) -> list[DrillRow]:
    rows = await conn.execute(select(dr_drills).order_by(dr_drills.c.at.desc()).limit(limit))
    return [
        DrillRow(
            r.id,
            r.at,
            r.backup,
            r.backup_created_at,
            r.rto_ms,
            r.rpo_ms,
            r.rto_target_ms,
            r.rpo_target_ms,
            bool(r.ok),
            json.loads(r.report),
        )
        for r in rows
    ]
