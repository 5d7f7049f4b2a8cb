"""`dr drill`: restore the newest backup into a scratch database, verify it, measure RTO/RPO.

RTO is the time from the start of the drill to a verified copy that serve could open (checksum,
decryption, restore, schema, row counts, audit chain, migrated and answering); RPO is the age
of the newest backup, i.e. what a disaster right now would lose. Both are compared with the
`dr` targets, and the drill is recorded in the live database (`GET /api/v1/dr/drills`).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from uptally import audit
from uptally.backup.dumps import BackupError, describe_postgres, libpq_env, pg_tool, run_tool
from uptally.backup.manifest import Manifest, list_backups
from uptally.backup.verify import Verification, check_snapshot, inspect_sqlite, unpack
from uptally.clock import Clock, Millis, SystemClock
from uptally.config.schema import DisasterRecovery
from uptally.durations import format_duration_ms
from uptally.ids import new_id
from uptally.secrets import Keyring
from uptally.store import drills
from uptally.store.database import Database


@dataclass
class DrillReport:
    at: Millis
    backup: Path | None = None
    manifest: Manifest | None = None
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    rto_ms: int | None = None
    rpo_ms: int | None = None
    rto_target_ms: int = 0
    rpo_target_ms: int = 0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backup": self.backup.name if self.backup else None,
            "backup_created_at": self.manifest.created_at if self.manifest else None,
            "rto_s": None if self.rto_ms is None else self.rto_ms / 1000,
            "rpo_s": None if self.rpo_ms is None else self.rpo_ms / 1000,
            "rto_target_s": self.rto_target_ms / 1000,
            "rpo_target_s": self.rpo_target_ms / 1000,
            "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
        }


async def run_drill(
    db: Database,
    directory: Path,
    keyring: Keyring | None,
    targets: DisasterRecovery,
    *,
    actor: str,
    clock: Clock | None = None,
) -> DrillReport:
    """Drill on the newest backup in `directory`, record it in `db`, and report."""
    clock = clock or SystemClock()
    report = DrillReport(clock.now_ms(), rto_target_ms=targets.rto, rpo_target_ms=targets.rpo)
    started = time.monotonic()
    backups = await asyncio.to_thread(list_backups, directory)
    if not backups:
        report.checks.append(("backup", False, f"no backup with a manifest in {directory}"))
    else:
        report.backup, report.manifest = backups[-1]
        report.rpo_ms = max(0, report.at - report.manifest.created_at_ms)
        report.checks.append(("backup", True, f"{report.backup.name} ({len(backups)} in all)"))
        if await _restore_and_check(db, report, keyring):
            report.rto_ms = round((time.monotonic() - started) * 1000)
    _judge(report)
    await _record(db, report, actor)
    return report


async def _restore_and_check(db: Database, report: DrillReport, keyring: Keyring | None) -> bool:
    assert report.backup is not None
    result = Verification(report.backup)
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="uptally-drill-"))
    try:
        raw = work / "snapshot"
        ok = await unpack(result, keyring, raw)
        if ok and result.manifest is not None and result.manifest.database == "sqlite":
            ok = await asyncio.to_thread(inspect_sqlite, result, raw)
            ok = ok and await _servable(result, f"sqlite+aiosqlite:///{raw}", raw)
        elif ok:
            ok = await _drill_postgres(db, result, raw)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    report.checks.extend(
        (check.name, check.ok, check.detail) for check in result.checks if check.name != "manifest"
    )
    return ok


async def _drill_postgres(db: Database, result: Verification, raw: Path) -> bool:
    scratch = f"uptally_drill_{uuid.uuid4().hex[:12]}"
    url = make_url(db.url).set(database=scratch).render_as_string(hide_password=False)
    await _admin(db, f'CREATE DATABASE "{scratch}"')
    try:
        name, env = libpq_env(url)
        try:
            await run_tool(
                [
                    pg_tool("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    f"--dbname={name}",
                    str(raw),
                ],
                env,
            )
        except BackupError as error:
            return result.add("restore", False, str(error))
        result.add("restore", True, f"into the scratch database {scratch}")
        scratch_db = Database(url)
        try:
            async with scratch_db.connect() as conn:
                snapshot = await describe_postgres(conn)
        finally:
            await scratch_db.close()
        return check_snapshot(result, snapshot.revision, snapshot.tables) and await _servable(
            result, url, None
        )
    finally:
        await _admin(db, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


async def _admin(db: Database, statement: str) -> None:
    async with db.engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(statement))


async def _servable(result: Verification, url: str, sqlite_file: Path | None) -> bool:
    """The audit chain of the copy verifies (up to the manifest's head), and serve could use it."""
    assert result.manifest is not None
    head = result.manifest.audit_head
    anchors = (audit.Anchor(int(head["seq"]), str(head["hash"])),) if head else ()
    if sqlite_file is not None:
        await asyncio.to_thread(_writable, sqlite_file)
    scratch = Database(url)
    try:
        async with scratch.connect() as conn:
            verdict = await audit.verify(conn, anchors)
        if verdict.problem is not None:
            return result.add("audit chain", False, str(verdict.problem))
        result.add("audit chain", True, f"{verdict.entries} entries verified")
        try:
            await scratch.migrate()
            await scratch.ping()
        except Exception as error:
            return result.add("servable", False, f"{type(error).__name__}: {error}")
        return result.add("servable", True, "migrated to this version and answering")
    finally:
        await scratch.close()


def _writable(path: Path) -> None:
    sqlite3.connect(path).close()


def _judge(report: DrillReport) -> None:
    for name, achieved, target in (
        ("RTO", report.rto_ms, report.rto_target_ms),
        ("RPO", report.rpo_ms, report.rpo_target_ms),
    ):
        if achieved is not None:
            shown = f"{format_duration_ms(achieved)} (target {format_duration_ms(target)})"
            report.checks.append((name, achieved <= target, shown))


async def _record(db: Database, report: DrillReport, actor: str) -> None:
    row = drills.DrillRow(
        new_id(report.at),
        report.at,
        report.backup.name if report.backup else "",
        report.manifest.created_at_ms if report.manifest else None,
        report.rto_ms,
        report.rpo_ms,
        report.rto_target_ms,
        report.rpo_target_ms,
        report.ok,
        report.as_json(),
    )
    async with db.begin() as conn:
        await drills.insert_drill(conn, row)
        await audit.append(
            conn,
            actor,
            "dr.drill",
            f"drill:{row.id}",
            {"ok": report.ok, "backup": row.backup, "rto_ms": row.rto_ms, "rpo_ms": row.rpo_ms},
            at=report.at,
        )
