"""The `uptally` command line; each module registers its commands on the one Typer app."""

from uptally.cli import (
    backup,
    configs,
    core,
    importing,
    importing_kuma,
    probe,
    site,
    sla,
    trust,
    users,
)
from uptally.cli.app import app

__all__ = [
    "app",
    "backup",
    "configs",
    "core",
    "importing",
    "importing_kuma",
    "main",
    "probe",
    "site",
    "sla",
    "trust",
    "users",
]


def main() -> None:
    app()
