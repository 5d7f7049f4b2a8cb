"""Alembic environment: migrations run on the connection uptally hands over."""

from __future__ import annotations

from alembic import context

from uptally.store import (
    tables_accounts,  # noqa: F401  (registers its tables)
    tables_incidents,  # noqa: F401  (registers its tables)
    tables_maintenance,  # noqa: F401  (registers its tables)
    tables_managed,  # noqa: F401  (registers its tables)
    tables_trust,  # noqa: F401  (registers its tables)
)
from uptally.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - uptally always passes its connection
    raise RuntimeError("run migrations through uptally (Database.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
