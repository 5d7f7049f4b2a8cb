"""`backup restore`: a verified backup into the configured database, never over data unasked."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.backup.dumps import BackupError, libpq_env, pg_tool, run_tool, sqlite_path
from uptally.backup.manifest import Manifest, backup_path
from uptally.backup.verify import Verification, inspect_pg_archive, inspect_sqlite, unpack
from uptally.secrets import Keyring
from uptally.store.database import Database, alembic_config
from uptally.store.files import private_sqlite

_BOOKKEEPING = {"alembic_version", "meta"}  # present in a database that never held data


def known_revision(revision: str | None) -> bool:
    if revision is None:
        return False
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


async def _tables(conn: AsyncConnection) -> list[str]:
    if conn.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    else:
        query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    return [row[0] for row in await conn.execute(text(query))]


async def holds_data(db: Database) -> list[str]:
    """Tables of the target that hold rows (bookkeeping tables aside)."""
    if db.is_sqlite and not await asyncio.to_thread(sqlite_path(db.url).exists):
        return []
    async with db.connect() as conn:
        found = []
        for name in await _tables(conn):
            if name in _BOOKKEEPING:
                continue
            if (await conn.execute(text(f'SELECT 1 FROM "{name}" LIMIT 1'))).first():
                found.append(name)
        return sorted(found)


async def restore_backup(
    path: Path, db: Database, keyring: Keyring | None, *, force: bool, actor: str
) -> Manifest:
    """Verify, then restore; raise BackupError with the reason when anything is off, InUse
    when a serve (or another restore) holds the database."""
    result = Verification(backup_path(path))
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="uptally-restore-"))
    try:
        raw = work / "snapshot"
        if not await unpack(result, keyring, raw):
            raise BackupError("; ".join(result.problems))
        manifest = result.manifest
        assert manifest is not None
        kind = "sqlite" if db.is_sqlite else "postgresql"
        if manifest.database != kind:
            raise BackupError(f"a {manifest.database} backup cannot be restored into {kind}")
        if not known_revision(manifest.schema_revision):
            raise BackupError(
                f"the backup has schema {manifest.schema_revision}, unknown to this uptally "
                "(made by a newer version?)"
            )
        if db.is_sqlite:
            await asyncio.to_thread(inspect_sqlite, result, raw)
        else:
            await inspect_pg_archive(result, raw)
        if not result.ok:
            raise BackupError("; ".join(result.problems))
        # Held to the end: replacing data under a running serve would leave it working on what
        # it has in memory (a revoked token would work again); InUse says who holds it.
        claim = await db.claim(exclusive=True)
        try:
            await _replace(db, raw, manifest, force=force, actor=actor)
        finally:
            await claim.release()
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    return manifest


async def _replace(db: Database, raw: Path, manifest: Manifest, *, force: bool, actor: str) -> None:
    occupied = await holds_data(db)
    if occupied and not force:
        raise BackupError(
            f"the target database is not empty ({', '.join(occupied[:5])} hold data); "
            "restore into an empty data directory or database, or pass --force to replace it"
        )
    await db.engine.dispose()
    if db.is_sqlite:
        await asyncio.to_thread(_restore_sqlite, raw, sqlite_path(db.url))
    else:
        await _restore_postgres(db, raw)
    await db.migrate()  # an older backup is brought to this version's schema, as serve would
    async with db.begin() as conn:
        await audit.append(
            conn,
            actor,
            "backup.restored",
            f"backup:{manifest.file}",
            {"sha256": manifest.sha256, "created_at": manifest.created_at, "forced": force},
        )


def _restore_sqlite(raw: Path, target: Path) -> None:
    private_sqlite(target)
    source = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
    try:
        destination = sqlite3.connect(target, timeout=30)
        try:
            # The backup API replaces the target's pages under its write lock, WAL and all.
            source.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()


async def _restore_postgres(db: Database, raw: Path) -> None:
    async with db.begin() as conn:
        for name in await _tables(conn):
            await conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
    name, env = libpq_env(db.url)
    await run_tool(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={name}",
            str(raw),
        ],
        env,
    )
