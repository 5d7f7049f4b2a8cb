"""Helpers of the state commands (audit, tokens, secrets, backup, dr): config, database, key."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from uptally.cli.app import EXIT_USAGE, err, load_or_exit
from uptally.config import Config

if TYPE_CHECKING:  # imported when used: `uptally validate` need not load SQLAlchemy
    from uptally.secrets import Keyring
    from uptally.store.database import Database

OptionalConfig = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="The YAML config file (backup and dr settings)."),
]
FormatOption = Annotated[str, typer.Option("--format", help="table or json")]
ReportFormatOption = Annotated[str, typer.Option("--format", help="table, json or csv")]
REPORT_FORMATS = ("table", "json", "csv")


def settings(config: Path | None) -> Config:
    return load_or_exit(config, err) if config is not None else Config()


def database(data_dir: Path, *, must_exist: bool = True) -> Database:
    """The database serve uses (UPTALLY_DATABASE_URL, else DATA_DIR/uptally.db)."""
    from uptally.store.database import Database, database_url

    url = database_url(data_dir)
    if must_exist and url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        if not path.is_file():
            err.print(
                f"no database at {path} (give --data-dir, or start serve once)",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USAGE)
    return Database(url)


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
