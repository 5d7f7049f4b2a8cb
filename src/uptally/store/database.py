"""Connecting to SQLite (WAL, in the data directory) or PostgreSQL, and migrating the schema."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert

from uptally.store.files import private_dir, private_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"
# PostgreSQL advisory lock key of a claim: each serve holds it shared, a restore exclusively.
# Distinct from the others: 727_274 migrations, 727_275 scheduled backups, 727_276-7 timers.
CLAIM_KEY = 727_273
# A hung PostgreSQL (stopped, or a network that drops packets) must fail a wait, not block it:
# connecting, waiting for a pooled connection, and every statement have a deadline (a
# request answers 503 and the writer retries). Migrations may run long and have none.
CONNECT_TIMEOUT_S = 5.0
POOL_TIMEOUT_S = 5.0
COMMAND_TIMEOUT_S = 10.0


class DatabaseError(Exception):
    """The database cannot be used (unreachable, wrong URL, newer schema)."""


class InUse(DatabaseError):
    """Another uptally process holds the database (a running serve, or a restore)."""


class Claim:
    """This process's hold on a database, until `release` (or the process ends)."""

    def __init__(self, fd: int | None = None, conn: AsyncConnection | None = None) -> None:
        self._fd = fd
        self._conn = conn

    async def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the lock goes with the descriptor; the file stays
            self._fd = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection for good, not back into the pool: its session and locks end."""
    await conn.invalidate()
    await conn.close()


def database_url(data_dir: str | Path | None) -> str:
    """UPTALLY_DATABASE_URL if set, else SQLite at DATA_DIR/uptally.db."""
    url = os.environ.get("UPTALLY_DATABASE_URL")
    if url:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        return url
    directory = Path(data_dir or "uptally-data")
    return f"sqlite+aiosqlite:///{directory / 'uptally.db'}"


SQLITE_HEAP_LIMIT = 16 << 20  # bytes, for the whole process (PRAGMA soft_heap_limit)


class Database:
    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas(synchronous))
        else:
            self.engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=POOL_TIMEOUT_S,
                connect_args={"timeout": CONNECT_TIMEOUT_S, "command_timeout": COMMAND_TIMEOUT_S},
            )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def begin(self) -> Any:
        """A connection in a transaction: `async with db.begin() as conn:` (commits on exit)."""
        return self.engine.begin()

    def connect(self) -> Any:
        return self.engine.connect()

    @property
    def sqlite_file(self) -> Path | None:
        path = self.url.split(":///", 1)[1] if self.is_sqlite else ""
        return Path(path) if path and path != ":memory:" else None

    async def claim(self, *, exclusive: bool) -> Claim:
        """Hold the database for as long as this process uses it, or raise InUse.

        `serve` claims it shared, a restore exclusively: a restore is refused while any serve
        runs, and a serve while a restore runs. On SQLite, where one serve owns a data directory,
        every claim is exclusive: a lock file beside the database, held with flock(2)."""
        path = self.sqlite_file
        if path is not None:
            return Claim(
                fd=await asyncio.to_thread(_lock_file, path.with_name(path.name + ".lock"))
            )
        if self.is_sqlite:
            return Claim()  # in memory: nobody else can see it
        conn = await self.engine.connect()
        try:
            call = "pg_try_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
            got = (await conn.execute(text(f"SELECT {call}({CLAIM_KEY})"))).scalar()
            await conn.commit()  # the lock is the session's; no transaction stays open
        except BaseException:
            await _discard(conn)
            raise
        if not got:
            await _discard(conn)
            held_by = "uptally serve is running on it" if exclusive else "it is being restored"
            raise InUse(f"the database {self.url.split('@')[-1]} is in use: {held_by}")
        return Claim(conn=conn)

    async def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent; safe with several instances)."""
        path = self.sqlite_file
        if path is not None:
            await asyncio.to_thread(private_sqlite, path)
        engine = self.engine
        if not self.is_sqlite:  # without COMMAND_TIMEOUT_S: a migration may rewrite a big table
            engine = create_async_engine(
                self.url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_S}
            )
        try:
            async with engine.begin() as conn:
                if not self.is_sqlite:
                    # Several instances starting at once on one PostgreSQL: one at a time.
                    await conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                await conn.run_sync(_upgrade)
        finally:
            if engine is not self.engine:
                await engine.dispose()

    async def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database without blocking writers."""
        if self.is_sqlite:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()

    def insert(self, table: Table) -> Insert:
        """An INSERT that supports on_conflict_* on this dialect."""
        if self.is_sqlite:
            return sqlite.insert(table)
        return postgresql.insert(table)


def upsert(db: Database, table: Table, keys: Sequence[str], columns: Sequence[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET columns = excluded.columns."""
    return _upsert(db.is_sqlite, table, tuple(keys), tuple(columns))


@functools.lru_cache(maxsize=256)
def _upsert(is_sqlite: bool, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    # Built once per shape: making the statement (its `excluded` alias, its cache key) cost
    # more than executing it for the small batches of the write path.
    statement: Any = sqlite.insert(table) if is_sqlite else postgresql.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in columns}
    )


def insert_ignore(db: Database, table: Table, keys: Sequence[str]) -> Any:
    statement: Any = db.insert(table)
    return statement.on_conflict_do_nothing(index_elements=list(keys))


def _lock_file(path: Path) -> int:
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise InUse(
            f"the data directory {path.parent} is in use by another uptally process{by}"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run in the background (Database.checkpoint), not inside a writer's commit,
        # where they stall everyone waiting for that commit (heartbeat p99 went 18 → 170 ms).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        # SQLite's own memory (page caches of the pooled connections, prepared statements) is
        # bounded for the whole process: past the limit it recycles cache pages instead of
        # growing (measured 9 -> 23 MB over a 30-minute soak at 10,000 monitors without it).
        cursor.execute(f"PRAGMA soft_heap_limit={SQLITE_HEAP_LIMIT}")
        cursor.close()

    return on_connect


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def connection_dialect(conn: AsyncConnection) -> str:
    return conn.dialect.name
