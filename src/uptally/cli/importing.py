"""`uptally import gatus|statuspage SOURCE [--apply]`: other tools' setup as uptally's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from uptally.cli.app import EXIT_FAILED, EXIT_USAGE, DataDirOption, app, err, out, run_async
from uptally.cli.common import OptionalConfig
from uptally.importers.report import Report, render

import_app = typer.Typer(
    help="Import from other tools: uptally YAML on stdout, what was mapped on stderr.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

# The sections `config apply` manages in the database; the rest belongs in the config file.
MANAGED_SECTIONS = ("monitors", "components", "status_pages")

SourceArgument = Annotated[Path, typer.Argument(help="The file (or directory) to import.")]
ApplyOption = Annotated[
    bool,
    typer.Option(
        "--apply",
        help="Create the monitors and components in the database (as `uptally config apply`) "
        "instead of printing YAML.",
    ),
]


@import_app.command("gatus")
def gatus(
    source: SourceArgument,
    apply: ApplyOption = False,
    config: OptionalConfig = None,
    data_dir: DataDirOption = Path("uptally-data"),
) -> None:
    """A Gatus config.yaml (or a directory of them): endpoints, conditions, groups, alerting,
    external endpoints, maintenance."""
    from uptally.importers import gatus as importer

    try:
        report = importer.convert(importer.read(source))
    except importer.GatusError as error:
        fail(str(error))
    finish(report, apply, config, data_dir)


@import_app.command("statuspage")
def statuspage(
    source: Annotated[
        str,
        typer.Argument(
            help="A directory with summary.json and incidents.json, one such file, or the "
            "address of a live page (https://status.example.com)."
        ),
    ],
    apply: ApplyOption = False,
    config: OptionalConfig = None,
    data_dir: DataDirOption = Path("uptally-data"),
) -> None:
    """Statuspage v2 JSON (a directory with summary.json and incidents.json, one file, or a live
    page's address): components and groups, and with --apply the incident history at its
    original times."""
    from uptally.importers import statuspage as importer

    try:
        if source.startswith(("http://", "https://")):
            data = run_async(importer.fetch(source))
        else:
            data = importer.read(Path(source))
        imported = importer.convert(data)
    except importer.StatuspageError as error:
        fail(str(error))
    report = imported.report
    past = imported.incidents
    if past:
        first, last = min(i.started_at for i in past), max(i.started_at for i in past)
        from uptally.clock import iso

        what = "imports" if apply else "would import (with --apply)"
        err.print(
            f"{what} {len(past)} incident(s) with {sum(len(i.updates) for i in past)} update(s), "
            f"{iso(first)} to {iso(last)}",
            markup=False,
            soft_wrap=True,
        )
    finish(report, apply, config, data_dir)
    if apply and past:
        run_async(_write_history(data_dir, past))


async def _write_history(data_dir: Path, past: Any) -> None:
    from uptally.cli.common import opened
    from uptally.clock import SystemClock
    from uptally.importers.history import write

    async with opened(data_dir) as db:
        done = await write(db, past, SystemClock().now_ms())
    for line in done.refused:
        err.print(f"not imported: {line}", markup=False, soft_wrap=True)
    if done.refused:
        raise typer.Exit(EXIT_FAILED)
    out.print(
        f"imported {done.incidents} incident(s) with {done.updates} update(s) and "
        f"{done.outages} backfilled outage(s); {done.skipped} already present",
        markup=False,
    )


def finish(report: Report, apply: bool, config: Path | None, data_dir: Path) -> None:
    """Check the document with uptally's loader, show the report, then print or apply it."""
    from uptally.config import ConfigError, parse_config
    from uptally.config.export import render as render_yaml

    text = render_yaml(report.document, f"uptally import {report.source}")
    render(report, err)
    try:
        parse_config(text, f"<import {report.source}>")
    except ConfigError as error:  # a bug of the importer: say so, never write it
        sys.stdout.write(text)
        for line in error.lines():
            err.print(line, markup=False, soft_wrap=True)
        err.print("the imported document does not validate; nothing was applied", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    if not apply:
        sys.stdout.write(text)
        return
    managed = {k: v for k, v in report.document.items() if k in MANAGED_SECTIONS}
    rest = sorted(k for k in report.document if k not in MANAGED_SECTIONS)
    if rest:
        err.print(
            f"not applied (they belong in the config file): {', '.join(rest)}; "
            "run without --apply to see them",
            markup=False,
            soft_wrap=True,
        )
    apply_document(managed, report.source, config, data_dir)


def apply_document(data: dict[str, Any], source: str, config: Path | None, data_dir: Path) -> None:
    """Through `uptally config apply`'s own path: plan, audit, one transaction."""
    from uptally.cli.configs import _apply, _load
    from uptally.config import Config, ConfigError
    from uptally.config.export import render as render_yaml
    from uptally.config.loader import read_yaml

    name = f"<import {source}>"
    _, lines = read_yaml(render_yaml(data, name), name)
    try:
        provisioned = _load(config) if config is not None else Config()
    except ConfigError as error:
        for line in error.lines():
            err.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    run_async(_apply(Path(name), data, lines, provisioned, data_dir, False, False))


def fail(message: str) -> NoReturn:
    err.print(message, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)
