"""`uptally import uptime-kuma SOURCE [--apply]`: a kuma.db or 1.x JSON backup as uptally YAML."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from uptally.cli.app import EXIT_FAILED, EXIT_USAGE, DataDirOption, err, run_async
from uptally.cli.common import OptionalConfig
from uptally.cli.importing import import_app

APPLIED = ("monitors", "components")  # what `config apply` takes; the rest is the file's


@import_app.command("uptime-kuma")
def uptime_kuma(
    source: Annotated[Path, typer.Argument(help="kuma.db (read-only) or a 1.x JSON backup.")],
    apply: Annotated[
        bool, typer.Option("--apply", help="Apply monitors and components as `config apply`.")
    ] = False,
    config: OptionalConfig = None,
    data_dir: DataDirOption = Path("uptally-data"),
) -> None:
    """Print Uptime Kuma's monitors, notifications, status pages and maintenance as uptally
    YAML, and on stderr what was mapped, approximated (how) and left out (why).

    With --apply, the monitors and components go into the database through the same path as
    `uptally config apply` (nothing is pruned); the other sections are config-file sections:
    run without --apply to get them."""
    from uptally.cli.configs import _apply, _lines, _load
    from uptally.config import Config, ConfigError, parse_config
    from uptally.config.export import render
    from uptally.importers.kuma_source import SourceError
    from uptally.importers.report import render as show_report
    from uptally.importers.uptime_kuma import import_uptime_kuma

    try:
        report = import_uptime_kuma(source)
    except SourceError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    show_report(report)
    text = render(report.document, f"uptally import uptime-kuma {source.name}")
    try:
        parse_config(text, "<imported>", environ={})
    except ConfigError as error:  # each object was checked alone: this is a clash between them
        err.print("the imported document does not validate:", markup=False)
        _lines(error.lines())
        raise typer.Exit(EXIT_FAILED) from None
    if not apply:
        sys.stdout.write(text)
        return
    data = {key: report.document[key] for key in APPLIED if key in report.document}
    rest = [key for key in report.document if key not in APPLIED]
    if rest:
        err.print(
            f"not applied (sections of the config file): {', '.join(rest)}; "
            "run without --apply to get them as YAML",
            markup=False,
            soft_wrap=True,
        )
    provisioned = _load(config) if config is not None else Config()
    run_async(_apply(source, data, {}, provisioned, data_dir, False, False))
