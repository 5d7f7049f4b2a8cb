"""The `uptally` command line; each module registers its commands on the one Typer app."""

from uptally.cli import backup, core, probe, trust
from uptally.cli.app import app

__all__ = ["app", "backup", "core", "main", "probe", "trust"]


def main() -> None:
    app()
