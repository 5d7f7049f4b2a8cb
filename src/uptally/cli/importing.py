"""`uptally import …`: the sub-command that each importer registers its source on."""

from __future__ import annotations

import typer

from uptally.cli.app import app

import_app = typer.Typer(
    help="Import another tool's monitors as uptally YAML (stdout) with a mapping report (stderr).",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
