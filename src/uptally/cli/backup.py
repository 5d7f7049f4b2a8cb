"""`uptally backup create|list|verify|restore|prune` and `uptally dr drill`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    print_table,
    run_async,
)
from uptally.cli.common import (
    REPORT_FORMATS,
    FormatOption,
    OptionalConfig,
    ReportFormatOption,
    backup_dir,
    check_format,
    keyring,
    opened,
    salted,
    settings,
)
from uptally.durations import format_duration_ms

if TYPE_CHECKING:  # imported when used: other commands need not load them
    from uptally.backup.manifest import Manifest

backup_app = typer.Typer(
    help="Backups: create, list, verify, restore, prune.", no_args_is_help=True
)
dr_app = typer.Typer(help="Disaster recovery drills.", no_args_is_help=True)
app.add_typer(backup_app, name="backup")
app.add_typer(dr_app, name="dr")

DEFAULT_DIR = Path("uptally-data")
FileArgument = Annotated[Path, typer.Argument(metavar="FILE", help="A backup (or its manifest).")]
LIST_COLUMNS = [
    "created_at",
    "file",
    "size",
    "schema_revision",
    "encrypted",
    "sha256",
    "database",
    "location",
    "path",
]


@backup_app.command("create")
def backup_create(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Directory (default: backup.dir, else DATA_DIR/backups)."),
    ] = None,
    encrypt: Annotated[
        bool | None,
        typer.Option(
            "--encrypt/--no-encrypt",
            help="Default: backup.encrypt, else encrypted whenever UPTALLY_SECRET_KEY is set.",
        ),
    ] = None,
    s3: Annotated[
        bool | None,
        typer.Option("--s3/--no-s3", help="Copy it to backup.s3 (default: when configured)."),
    ] = None,
) -> None:
    """Back up the database (consistent while serve runs); print the backup's path.

    With backup.s3, the backup is then copied to the bucket and the remote copies rotated;
    when that fails the local backup stays, and the exit code is 1.
    """
    from uptally.backup.create import Created, create_backup
    from uptally.backup.dumps import BackupError
    from uptally.backup.offsite import Bucket, Copied, OffsiteError, copy_offsite
    from uptally.clock import SystemClock
    from uptally.secrets import SecretKeyError

    loaded = settings(config)
    target = backup_dir(loaded, data_dir, out_dir)
    ring = keyring()
    sealed = loaded.backup.encrypts(ring is not None) if encrypt is None else encrypt
    offsite = loaded.backup.s3 if s3 is not False else None
    if s3 and offsite is None:
        err.print("--s3 needs a backup.s3 block in the --config file", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if sealed and ring is None:
        err.print(
            "--encrypt needs UPTALLY_SECRET_KEY (or UPTALLY_SECRET_KEY_FILE)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        bucket = Bucket(offsite) if offsite is not None else None
    except OffsiteError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None

    async def run() -> tuple[Created, Copied | None]:
        async with opened(data_dir) as db:
            with err.status("backing up…"):
                created = await create_backup(db, target, await salted(ring, db), encrypt=sealed)
        if bucket is None:
            return created, None
        with err.status(f"copying to {bucket}…"):
            copied = await copy_offsite(
                bucket,
                created.path,
                created.manifest,
                loaded.backup.s3_keep,
                SystemClock().now_ms(),
            )
        return created, copied

    try:
        created, copied = run_async(run())
    except (BackupError, SecretKeyError, OSError) as error:
        err.print(f"backup failed: {error}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    out.print(str(created.path), markup=False, soft_wrap=True)
    if copied is not None and not copied.ok:
        err.print(f"off-site copy failed: {copied.detail}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    if copied is not None:
        err.print(f"copied to {copied.detail}", markup=False, soft_wrap=True)
        for key in copied.removed:
            err.print(f"removed off-site copy {key}", markup=False, soft_wrap=True)


@backup_app.command("list")
def backup_list(
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    directory: Annotated[Path | None, typer.Option("--dir", help="Backup directory.")] = None,
    s3: Annotated[
        str | None,
        typer.Option(
            "--s3",
            metavar="s3://BUCKET[/PREFIX]",
            help="Off-site backups to list too (default: backup.s3, when configured).",
        ),
    ] = None,
    output: ReportFormatOption = "table",
) -> None:
    """List the backups in the directory and off-site, oldest first.

    Each has its creation time, size, schema revision, encryption, SHA-256 and location (the
    path or s3:// URL that `backup restore` takes). Exit 1 when the bucket cannot be read.
    """
    from uptally.backup.manifest import list_backups
    from uptally.backup.offsite import Bucket, OffsiteError, at_location, describe
    from uptally.sla.export import table_csv

    check_format(output, REPORT_FORMATS)
    loaded = settings(config)
    source = backup_dir(loaded, data_dir, directory)
    try:
        given = at_location(loaded.backup.s3, s3) if s3 is not None else loaded.backup.s3
        bucket = Bucket(given) if given is not None else None
    except OffsiteError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    found = [("local", str(path), manifest) for path, manifest in list_backups(source)]
    if bucket is not None:
        try:
            with err.status(f"listing {bucket}…"):
                remote = run_async(bucket.list_backups())
        except Exception as error:  # boto3's errors share no base class worth naming
            err.print(f"cannot list {bucket}: {describe(error)}", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
        found += [("s3", bucket.url(item.key), item.manifest) for item in remote]
    found.sort(key=lambda item: (item[2].created_at_ms, item[0]))
    rows = [_listed(location, path, manifest) for location, path, manifest in found]
    if output == "json":
        out.print_json(json.dumps({"backups": rows}))
        return
    if output == "csv":
        out.print(table_csv(LIST_COLUMNS, rows), end="", markup=False, soft_wrap=True)
        return
    table = Table(title=f"Backups in {source}" + (f" and {bucket}" if bucket else ""))
    for name in ("Created (UTC)", "File", "Size", "Schema", "Encrypted", "SHA-256", "Location"):
        table.add_column(name, justify="right" if name == "Size" else "left", no_wrap=True)
    for row in rows:
        table.add_row(
            row["created_at"],
            row["file"],
            f"{row['size']:,}",
            row["schema_revision"] or "-",
            "yes" if row["encrypted"] else "no",
            row["sha256"][:12],
            row["location"],
        )
    print_table(table)


def _listed(location: str, path: str, manifest: Manifest) -> dict[str, Any]:
    """One row of `backup list` (JSON and CSV; the table shortens the SHA-256)."""
    return {
        "created_at": manifest.created_at,
        "file": manifest.file,
        "size": manifest.size,
        "schema_revision": manifest.schema_revision,
        "encrypted": manifest.encrypted,
        "sha256": manifest.sha256,
        "database": manifest.database,
        "location": location,
        "path": path,
    }


@backup_app.command("verify")
def backup_verify(
    file: FileArgument,
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,  # taken like every state command's; not needed here
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
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="A backup (or its manifest), or an off-site one: s3://BUCKET/KEY.",
        ),
    ],
    config: OptionalConfig = None,
    data_dir: DataDirOption = DEFAULT_DIR,
    force: Annotated[bool, typer.Option(help="Replace a database that holds data.")] = False,
) -> None:
    """Verify a backup and restore it into the --data-dir (or UPTALLY_DATABASE_URL) database.

    An s3:// backup is downloaded first, with backup.s3's endpoint and credentials (without
    backup.s3: boto3's defaults). Refused (exit 2) while serve runs on the database.
    """
    import tempfile

    from uptally import audit
    from uptally.backup.dumps import BackupError
    from uptally.backup.offsite import Bucket, OffsiteError, describe, parse_url
    from uptally.backup.restore import restore_backup
    from uptally.config.schema import BackupS3
    from uptally.secrets import SecretKeyError
    from uptally.store.database import Database, InUse, database_url

    loaded = settings(config)
    ring = keyring()
    remote: tuple[Bucket, str] | None = None
    if file.startswith("s3://"):
        try:
            name, key = parse_url(file)
            given = loaded.backup.s3
            s3 = given.model_copy(update={"bucket": name}) if given else BackupS3(bucket=name)
            remote = Bucket(s3), key
        except OffsiteError as error:
            err.print(str(error), markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
    db = Database(database_url(data_dir))  # the one command that may create it

    async def fetch(work: Path) -> Path:
        if remote is None:
            return Path(file)
        bucket, key = remote
        try:
            with err.status(f"downloading {file}…"):
                return await bucket.download(key, work)
        except Exception as error:  # boto3's errors share no base class worth naming
            raise OffsiteError(f"cannot download {file}: {describe(error)}") from None

    async def run() -> str:
        try:
            with tempfile.TemporaryDirectory(prefix="uptally-download-") as work:
                path = await fetch(Path(work))
                with err.status("restoring…"):
                    manifest = await restore_backup(
                        path, db, ring, force=force, actor=audit.cli_actor()
                    )
            return manifest.created_at
        finally:
            await db.close()

    try:
        created = run_async(run())
    except InUse as error:
        err.print(f"restore refused: {error}; stop it first", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (BackupError, SecretKeyError, OffsiteError, OSError) as error:
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

    async def run() -> DrillReport:
        async with opened(data_dir) as db:
            with err.status("drilling: restoring the newest backup…"):
                return await run_drill(db, source, ring, loaded.dr, actor=audit.cli_actor())

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
    print_table(table)
