"""Shared fixtures: real SQLite files and a real PostgreSQL, a fake clock, a config builder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from uptally.clock import FakeClock
from uptally.config import Config, parse_config
from uptally.store.database import Database

# Console fixtures (`console`, `browser`) for every test module.
pytest_plugins = ["tests.console_support"]

PG_ADMIN = os.environ.get("UPTALLY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_TEMPLATE = f"uptally_test_template_{os.getpid()}"  # concurrent sessions keep apart
REQUIRE_PG = os.environ.get("UPTALLY_REQUIRE_PG") == "1"


def _pg_base() -> str:
    return PG_ADMIN.rsplit("/", 1)[0]


async def _pg_admin(statements: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _build_template() -> None:
    await _pg_admin(
        [
            f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)",
            f"CREATE DATABASE {PG_TEMPLATE}",
        ]
    )
    db = Database(f"postgresql+asyncpg://{_pg_base().split('://', 1)[1]}/{PG_TEMPLATE}")
    try:
        await db.migrate()
    finally:
        await db.close()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test gets its own copy."""
    try:
        asyncio.run(_build_template())
    except (OSError, ConnectionError, Exception) as error:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (UPTALLY_REQUIRE_PG=1) but unusable: {error!r}")
        pytest.skip(f"PostgreSQL not available: {error!r}")
    yield PG_TEMPLATE
    with contextlib.suppress(Exception):
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)"]))


async def _migrate_sqlite(path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await db.migrate()
    finally:
        await db.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets its own copy (migrating costs ~0.2 s a time)."""
    path = tmp_path_factory.mktemp("template") / "uptally.db"
    asyncio.run(_migrate_sqlite(path))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL: a copy of a migrated SQLite file, or a PostgreSQL database copied
    from the template."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, tmp_path / "uptally.db")
        yield f"sqlite+aiosqlite:///{tmp_path}/uptally.db"
        return
    template = request.getfixturevalue("pg_template")
    name = f"uptally_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin([f"CREATE DATABASE {name} TEMPLATE {template}"]))
    try:
        yield f"postgresql+asyncpg://{_pg_base().split('://', 1)[1]}/{name}"
    finally:
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def config_from(text: str) -> Config:
    return parse_config(text, "test.yaml")


class _QuietServer:
    """uvicorn on 127.0.0.1:0 inside the test's event loop."""

    def __init__(self, app: object) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            def install_signal_handlers(self) -> None:  # pragma: no cover - older uvicorn
                pass

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        self.server = Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="off",
                loop="none",
                timeout_graceful_shutdown=5,
            )
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> str:
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.005)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


def serve_app(app: object) -> _QuietServer:
    return _QuietServer(app)
