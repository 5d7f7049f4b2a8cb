"""Helpers of the state commands (audit, tokens, secrets, backup, dr): config, database, key."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from uptally.cli.app import EXIT_USAGE, err, load_or_exit
from uptally.config import Config

if TYPE_CHECKING:  # imported when used: `uptally validate` need not load SQLAlchemy
    from uptally.secrets import Keyring
    from uptally.store.database import Database

_SCHEMA_QUERY = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"

OptionalConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The YAML config file (backup and dr settings)."),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or json")]
ReportFormatOption = Annotated[str, typer.Option("--format", help="table, json or csv")]
REPORT_FORMATS = ("table", "json", "csv")


def settings(config: Path | None) -> Config:
    return load_or_exit(config, err) if config is not None else Config()


@asynccontextmanager
async def opened(data_dir: Path) -> AsyncIterator[Database]:
    """The database serve uses (UPTALLY_DATABASE_URL, else DATA_DIR/uptally.db), closed after.

    It must exist and hold uptally's schema: `serve` creates it, nothing else does; otherwise
    the command stops with one line (exit 2) and leaves no file or directory behind."""
    from uptally.store.database import Database, database_url

    db = Database(database_url(data_dir))  # touches nothing until used
    try:
        if db.sqlite_file is not None:
            _check_sqlite(db.sqlite_file)
        elif not db.is_sqlite:
            await _check_postgres(db)
        yield db
    finally:
        await db.close()


def _usage_error(message: str) -> NoReturn:
    err.print(message, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def _check_sqlite(path: Path) -> None:
    if not path.is_file():
        _usage_error(f"no database at {path} (give --data-dir, or start serve once)")
    try:
        # Read-only: opening it through SQLAlchemy would turn any file into a WAL database.
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            found = conn.execute(_SCHEMA_QUERY).fetchone()
    except sqlite3.Error as error:
        _usage_error(f"cannot open the database at {path}: {error}")
    if found is None:
        _usage_error(f"{path} is not an uptally database (give --data-dir, or start serve once)")


async def _check_postgres(db: Database) -> None:
    from sqlalchemy import text

    where = db.url.split("@")[-1]
    try:
        async with db.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() "
                        "AND tablename = 'alembic_version'"
                    )
                )
            ).first()
    except Exception as error:  # asyncpg's and SQLAlchemy's connection errors share no base
        first = str(getattr(error, "orig", None) or error).splitlines()[0]
        _usage_error(f"cannot open the database ({where}): {first}")
    if found is None:
        _usage_error(f"no uptally database at {where} (start serve once)")


def keyring() -> Keyring | None:
    from uptally.secrets import SecretKeyError, load_keyring

    try:
        return load_keyring()
    except SecretKeyError as error:
        err.print(f"secret key: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


def backup_dir(config: Config, data_dir: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    if config.backup.dir:
        return Path(config.backup.dir)
    return data_dir / "backups"


def check_format(output: str, allowed: tuple[str, ...] = ("table", "json")) -> None:
    if output not in allowed:
        err.print(
            f"--format must be one of {', '.join(allowed)}, not {output!r}",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)


async def salted(ring: Keyring | None, db: Database) -> Keyring | None:
    """The keyring with this installation's scrypt salt (passphrase keys depend on it)."""
    if ring is None:
        return None
    from uptally.store import meta

    async with db.begin() as conn:
        return ring.with_salt(await meta.installation_salt(db, conn))
