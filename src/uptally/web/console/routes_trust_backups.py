"""The console's backups page (admin): the backups with size, time and checksum, "create now"
(the scheduled backup of `serve`, made at once: rotated and reported to the backup-currency
heartbeat), "verify" (as `uptally backup verify`), and the last DR drill against its targets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from uptally.accounts.sessions import Signed
from uptally.backup.dumps import BackupError
from uptally.backup.manifest import list_backups
from uptally.backup.verify import Verification, verify_backup
from uptally.durations import format_duration_ms
from uptally.secrets import SecretKeyError
from uptally.store import drills
from uptally.web.console import render
from uptally.web.console.session import Admin
from uptally.web.console.trust_format import ago, size, when
from uptally.web.console.trust_format import field as form_field
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/trust/backups", include_in_schema=False)

SHOWN = 50


@dataclass(frozen=True, slots=True)
class BackupView:
    file: str
    created: str
    age: str
    size: str
    encrypted: bool
    sha256: str


@dataclass(frozen=True, slots=True)
class Currency:
    state: str  # the backup-currency heartbeat monitor's state
    monitor: str
    every: str
    grace: str
    newest: str  # how old the newest backup is


@dataclass(frozen=True, slots=True)
class DrillView:
    at: str
    backup: str
    ok: bool
    rto: str
    rto_target: str
    rto_met: bool
    rpo: str
    rpo_target: str
    rpo_met: bool


def _duration(ms: int | None) -> str:
    return "-" if ms is None else format_duration_ms(ms)


async def _page(request: Request, signed: Signed, status: int = 200, **values: Any) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    schedule = runtime.backups
    found = await asyncio.to_thread(list_backups, schedule.directory) if schedule else []
    shown = [
        BackupView(
            m.file,
            when(m.created_at_ms),
            ago(m.created_at_ms, now),
            size(m.size),
            m.encrypted,
            m.sha256,
        )
        for _, m in reversed(found[-SHOWN:])
    ]
    currency = None
    if schedule is not None:
        settings = schedule.settings
        currency = Currency(
            runtime.monitor_state(settings.monitor).value,
            settings.monitor,
            format_duration_ms(settings.every),
            format_duration_ms(settings.grace),
            ago(found[-1][1].created_at_ms, now) if found else "never",
        )
    async with runtime.db.connect() as conn:
        last = await drills.list_drills(conn, 1)
    drill = None
    if last:
        d = last[0]
        drill = DrillView(
            when(d.at),
            d.backup,
            d.ok,
            _duration(d.rto_ms),
            _duration(d.rto_target_ms),
            d.rto_ms is not None and d.rto_ms <= d.rto_target_ms,
            _duration(d.rpo_ms),
            _duration(d.rpo_target_ms),
            d.rpo_ms is not None and d.rpo_ms <= d.rpo_target_ms,
        )
    for name in ("done", "problem"):
        values.setdefault(name, "")
    values.setdefault("verification", None)
    return await render.page(
        request,
        signed,
        "trust_backups.html",
        nav="trust",
        sub="backups",
        status=status,
        backups=shown,
        total=len(found),
        directory=str(schedule.directory) if schedule else "",
        currency=currency,
        drill=drill,
        **values,
    )


@router.get("")
async def backups_page(request: Request, signed: Admin) -> Response:
    return await _page(request, signed)


@router.post("")
async def create_now(request: Request, signed: Admin) -> Response:
    """A backup now, as the schedule makes them, then verified like `uptally backup verify`."""
    runtime = runtime_of(request)
    schedule = runtime.backups
    if schedule is None:
        return await _page(request, signed, problem="Backups are off: set backup.dir.", status=409)
    try:
        created = await schedule.run_once()
    except (BackupError, SecretKeyError, OSError) as error:
        return await _page(request, signed, problem=f"The backup failed: {error}", status=503)
    if created is None:
        return await _page(
            request, signed, done="Another instance is making a backup right now.", status=409
        )
    checked = await verify_backup(created.path, runtime.keyring)
    return await _page(
        request,
        signed,
        done=f"Backup {created.manifest.file} created ({size(created.manifest.size)}).",
        verification=checked,
    )


@router.post("/verify")
async def verify(request: Request, signed: Admin) -> Response:
    """Checksum, decrypt, decompress and open one backup of the list (named by file)."""
    runtime = runtime_of(request)
    schedule = runtime.backups
    name = form_field(await request.form(), "file", 300)
    found = await asyncio.to_thread(list_backups, schedule.directory) if schedule else []
    path: Path | None = next((p for p, m in found if m.file == name), None)
    if path is None:
        return await _page(request, signed, problem=f"No backup {name!r} here.", status=404)
    checked: Verification = await verify_backup(path, runtime.keyring)
    return await _page(request, signed, verification=checked)
