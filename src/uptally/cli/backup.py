"""`uptally backup create|verify|restore|prune` and `uptally dr drill`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from uptally.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    DataDirOption,
    app,
    err,
    out,
    run_async,
)
from uptally.cli.common import (
    FormatOption,
    OptionalConfig,
    backup_dir,
    check_format,
    database,
    keyring,
    settings,
)
from uptally.durations import format_duration_ms

backup_app = typer.Typer(help="Backups: create, verify, restore, prune.", no_args_is_help=True)
dr_app = typer.Typer(help="Disaster recovery drills.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")
app.add_typer(dr_app, name="dr")

DEFAULT_DIR = Path("uptally-data")
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A backup (or its manifest).")]


@backup_app.command("create")
def backup_create(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Directory (default: backup.dir, else DATA_DIR/backups)."),
    ] = None,
    encrypt: Annotated[
        bool | None, typer.Option("--encrypt/--no-encrypt", help="Default: backup.encrypt.")
    ] = None,
) -> None:
    """Back up the database (consistent while serve runs); print the backup's path."""
    from uptally.backup.create import create_backup
    from uptally.backup.dumps import BackupError
    from uptally.secrets import SecretKeyError

    loaded = settings(config)
    target = backup_dir(loaded, data_dir, out_dir)
    sealed = loaded.backup.encrypt if encrypt is None else encrypt
    ring = keyring()
    if sealed and ring is None:
        err.print(
            "--encrypt needs UPTALLY_SECRET_KEY (or UPTALLY_SECRET_KEY_FILE)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)
    db = database(data_dir)

    async def run() -> Path:
        try:
            with err.status("backing up…"):
                return (await create_backup(db, target, ring, encrypt=sealed)).path
        finally:
            await db.close()

    try:
        path = run_async(run())
    except (BackupError, SecretKeyError, OSError) as error:
        err.print(f"backup failed: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(str(path), markup=False, soft_wrap=True)


@backup_app.command("verify")
def backup_verify(
    file: FileArgument,
    config: OptionalConfig = None,
    output: FormatOption = "table",
) -> None:
    """Check a backup's checksum, decrypt, decompress and open it; exit 1 on any problem."""
    from uptally.backup.verify import verify_backup

    check_format(output)
    settings(config)
    ring = keyring()
    with err.status("verifying…"):
        result = run_async(verify_backup(file, ring))
    if output == "json":
        out.print_json(
            json.dumps(
                {
                    "ok": result.ok,
                    "backup": str(result.backup),
                    "checks": [
                        {"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks
                    ],
                }
            )
        )
    else:
        _checks_table([(c.name, c.ok, c.detail) for c in result.checks])
        verdict = "[bold green]OK[/]" if result.ok else "[bold red]FAILED[/]"
        out.print(f"{verdict} {result.backup}")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@backup_app.command("restore")
def backup_restore(
    file: FileArgument,
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    force: Annotated[bool, typer.Option(help="Replace a database that holds data.")] = False,
) -> None:
    """Verify a backup and restore it into the --data-dir (or UPTALLY_DATABASE_URL) database.

    Stop serve first: restoring under a running instance replaces its data behind its back.
    """
    from uptally import audit
    from uptally.backup.dumps import BackupError
    from uptally.backup.restore import restore_backup
    from uptally.secrets import SecretKeyError

    settings(config)
    ring = keyring()
    db = database(data_dir, must_exist=False)

    async def run() -> str:
        try:
            with err.status("restoring…"):
                manifest = await restore_backup(
                    file, db, ring, force=force, actor=audit.cli_actor()
                )
            return manifest.created_at
        finally:
            await db.close()

    try:
        created = run_async(run())
    except (BackupError, SecretKeyError, OSError) as error:
        err.print(f"restore refused: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    where = db.url.split("@")[-1]
    out.print(f"restored the backup of {created} into {where}", markup=False, soft_wrap=True)


@backup_app.command("prune")
def backup_prune(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    directory: Annotated[Path | None, typer.Option("--dir", help="Backup directory.")] = None,
) -> None:
    """Delete backups beyond retention (backup.keep: daily, weekly, monthly)."""
    from uptally.backup.rotation import rotate

    loaded = settings(config)
    removed = rotate(backup_dir(loaded, data_dir, directory), loaded.backup.keep)
    for path in removed:
        out.print(f"removed {path}", markup=False, soft_wrap=True)
    out.print(f"{len(removed)} backup(s) removed", markup=False, soft_wrap=True)


@dr_app.command("drill")
def dr_drill(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    directory: Annotated[Path | None, typer.Option("--dir", help="Backup directory.")] = None,
    output: FormatOption = "table",
) -> None:
    """Restore the newest backup into a scratch database, verify it, report RTO/RPO.

    Exit 1 when the backup is bad or a target (dr.rto, dr.rpo) is missed.
    """
    from uptally import audit
    from uptally.backup.drill import DrillReport, run_drill

    check_format(output)
    loaded = settings(config)
    ring = keyring()
    source = backup_dir(loaded, data_dir, directory)
    db = database(data_dir)

    async def run() -> DrillReport:
        try:
            with err.status("drilling: restoring the newest backup…"):
                return await run_drill(db, source, ring, loaded.dr, actor=audit.cli_actor())
        finally:
            await db.close()

    report: DrillReport = run_async(run())
    if output == "json":
        out.print_json(json.dumps(report.as_json()))
    else:
        _checks_table(report.checks)
        rto = format_duration_ms(report.rto_ms) if report.rto_ms is not None else "-"
        rpo = format_duration_ms(report.rpo_ms) if report.rpo_ms is not None else "-"
        verdict = "[bold green]PASSED[/]" if report.ok else "[bold red]FAILED[/]"
        out.print(f"{verdict} RTO {rto}, RPO {rpo}")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


def _checks_table(checks: list[tuple[str, bool, str]]) -> None:
    table = Table("check", "result", "detail")
    for name, ok, detail in checks:
        table.add_row(name, "[green]ok[/]" if ok else "[red]FAILED[/]", detail)
    out.print(table)
