"""The `uptally` command line; each module registers its commands on the one Typer app."""

from uptally.cli import core
from uptally.cli.app import app

__all__ = ["app", "core", "main"]


def main() -> None:
    app()
