"""Consistent snapshots of the live database: SQLite's online backup API, `pg_dump`.

Each snapshot comes with what the manifest records about the same instant: the schema
revision, the row count of every table and the audit chain head.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.store.database import Database


class BackupError(Exception):
    """A backup or restore cannot be made (missing database, tool, or a refused target)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    revision: str | None
    tables: dict[str, int] = field(default_factory=dict)
    audit_head: dict[str, Any] | None = None


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def snapshot_sqlite(source: Path, target: Path) -> Snapshot:
    """Copy a live SQLite database with the online backup API (consistent under writes)."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            # All pages in one step: a single read transaction, so the copy is one instant even
            # while serve writes (in steps, every concurrent write would restart the copy).
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            return describe_sqlite(dst)
        finally:
            dst.close()
    finally:
        src.close()


def describe_sqlite(conn: sqlite3.Connection) -> Snapshot:
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    tables = {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    head = None
    if "audit_head" in tables:
        row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        head = {"seq": row[0], "hash": row[1]} if row else None
    return Snapshot(revision, tables, head)


async def describe_postgres(conn: AsyncConnection) -> Snapshot:
    names = [
        row[0]
        for row in await conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        )
    ]
    tables: dict[str, int] = {}
    for name in names:
        tables[name] = int(
            (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
        )
    revision = None
    if "alembic_version" in tables:
        revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    head = None
    if "audit_head" in tables:
        row = (await conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1"))).first()
        head = {"seq": int(row.seq), "hash": row.hash} if row else None
    return Snapshot(revision, tables, head)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: from PATH, else the newest under /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match[1]) if match else 0

    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=version)
    if not candidates:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools")
    return candidates[-1]


def libpq_env(url: str) -> tuple[str, dict[str, str]]:
    """The database name and the libpq environment (password never on the command line)."""
    parsed = make_url(url)
    env = dict(os.environ)
    given = {
        "PGHOST": parsed.host or parsed.query.get("host"),
        "PGPORT": str(parsed.port) if parsed.port else None,
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
    }
    env.update({key: value for key, value in given.items() if isinstance(value, str) and value})
    ssl = parsed.query.get("ssl") or parsed.query.get("sslmode")
    if isinstance(ssl, str):
        env["PGSSLMODE"] = ssl
    return parsed.database or "", env


async def run_tool(args: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()
        raise BackupError(f"{Path(args[0]).name} failed: {' / '.join(message[-3:])}")
    return stdout.decode(errors="replace")


async def dump_postgres(db: Database, target: Path) -> Snapshot:
    """pg_dump (custom format) of an exported snapshot, described within the same snapshot."""
    name, env = libpq_env(db.url)
    async with db.engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            exported = (await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
            snapshot = await describe_postgres(conn)
            await run_tool(
                [
                    pg_tool("pg_dump"),
                    "--format=custom",
                    "--compress=0",  # gzip (and encryption) follow, as for SQLite
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={exported}",
                    f"--file={target}",
                    f"--dbname={name}",
                ],
                env,
            )
    return snapshot
