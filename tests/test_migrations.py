"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from uptally.store import (
    tables_accounts,  # noqa: F401  (registers its tables)
    tables_incidents,  # noqa: F401  (registers its tables)
    tables_maintenance,  # noqa: F401  (registers its tables)
    tables_managed,  # noqa: F401  (registers its tables)
    tables_trust,  # noqa: F401  (registers its tables)
)
from uptally.store.database import Database
from uptally.store.tables import metadata


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrating_a_fresh_database_matches_the_declared_tables(db: Database) -> None:
    async with db.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


async def test_migrating_twice_changes_nothing(db: Database) -> None:
    await db.migrate()
    async with db.connect() as conn:
        assert await conn.run_sync(_differences) == []
