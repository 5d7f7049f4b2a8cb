"""The Typer application, shared options and helpers of every `uptally` command."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from uptally import __version__
from uptally.config import Config, ConfigError, load_config

app = typer.Typer(
    name="uptally",
    help="Self-hosted availability monitoring: probes, verified downtime, status page, SLA ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Output to a file or a pipe (logs, scripts) is never wrapped or cut: Rich would otherwise
# assume 80 columns and shorten a token id in a table to `c57e8e400…`.
UNBOUNDED = 1_000_000


def _console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        console.width = UNBOUNDED  # tables take their natural width
        console.soft_wrap = True  # and lines their own length
    return console


out = _console()
err = _console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The YAML config file.")]
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir", help="Where SQLite and local state live.", envvar="UPTALLY_DATA_DIR"
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"uptally {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """uptally: availability you can prove."""


def print_table(table: Table) -> None:
    """Print a table whole: on a narrow terminal a long id or number folds onto the next line,
    it is never cut short (copied from a terminal or a log, it must still work)."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    out.print(table)


def load_or_exit(config: Path, console: Console) -> Config:
    try:
        return load_config(config)
    except ConfigError as error:
        for line in error.lines():
            console.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


def _event_loop() -> Any:
    """uvloop (more checks and pings per second) unless `UPTALLY_EVENT_LOOP=asyncio`: the
    standard loop serves a saturated status page more evenly (see bench/statuspage.py)."""
    if os.environ.get("UPTALLY_EVENT_LOOP", "uvloop").lower() == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop

        return uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.new_event_loop


def run_async(coroutine: Any) -> Any:
    with asyncio.Runner(loop_factory=_event_loop()) as runner:
        return runner.run(coroutine)
