"""The state commands as scripts see them: the same options, a missing database, whole tables."""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from tests.conftest import _pg_admin, _pg_base
from tests.procs import run_cli
from uptally.cli.app import app, print_table

cli_app = importlib.import_module("uptally.cli.app")  # the module: uptally.cli.app is the app

NOT_STATE = {"validate", "check", "probe"}  # they read no database
STATELESS = {("secrets", "webhook-secret")}  # prints a new random secret, reads nothing
MISSING = [
    ["export-site", "--out", "site"],
    ["sla", "report", "--period", "2026-01"],
    ["sla", "ledger", "--period", "2026-01"],
    ["sla", "budget"],
    ["audit", "verify"],
    ["tokens", "create", "--name", "ci", "--scope", "read"],
    ["tokens", "list"],
    ["tokens", "revoke", "0123456789ab"],
    ["secrets", "set", "channel:ops"],
    ["secrets", "list"],
    ["secrets", "rotate"],
    ["backup", "create"],
    ["dr", "drill"],
]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """In an empty working directory with a config file, SQLite, and a secret key."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    monkeypatch.delenv("UPTALLY_DATA_DIR", raising=False)
    monkeypatch.setenv("UPTALLY_SECRET_KEY", base64.b64encode(b"k" * 32).decode())
    (tmp_path / "c.yaml").write_text("monitors: [{id: beat, kind: heartbeat, period: 1h}]\n")
    return CliRunner()


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command under a group (Typer's own click: duck-typed), with its path."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_state_command_takes_config_and_data_dir() -> None:
    commands = dict(_commands(typer.main.get_command(app)))
    assert ("backup", "verify") in commands
    for path, command in commands.items():
        options = {option for param in command.params for option in param.opts}
        if path[0] not in NOT_STATE and path not in STATELESS:
            assert {"--config", "--data-dir"} <= options, " ".join(path)


def test_backup_verify_accepts_a_data_dir(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["backup", "verify", "missing.tar", "--config", "c.yaml", "--data-dir", "data"]
    )
    assert result.exit_code == 1, result.output  # verified and failed, not a usage error
    assert "missing.tar" in result.output


@pytest.mark.parametrize("args", MISSING, ids=" ".join)
def test_a_state_command_without_a_database_says_so_and_creates_nothing(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    result = runner.invoke(
        app, [*args, "--config", "c.yaml", "--data-dir", "data"], input="a secret\n"
    )
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "no database at data/uptally.db (give --data-dir, or start serve once)"
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["c.yaml"]


@pytest.mark.parametrize("args", [["export-site", "--out", "site"], ["tokens", "list"]])
def test_a_file_that_is_not_an_uptally_database_is_named_and_left_alone(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "uptally.db").touch()  # what export-site used to leave behind
    result = runner.invoke(app, [*args, "--config", "c.yaml", "--data-dir", "data"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        "data/uptally.db is not an uptally database (give --data-dir, or start serve once)"
    ]
    assert [path.name for path in (tmp_path / "data").iterdir()] == ["uptally.db"]
    assert (tmp_path / "data" / "uptally.db").stat().st_size == 0
    assert not (tmp_path / "site").exists()


@pytest.mark.pg
def test_an_unusable_postgresql_database_is_named_in_one_line(
    runner: CliRunner, pg_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _pg_base()
    missing = f"uptally_missing_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("UPTALLY_DATABASE_URL", f"{base}/{missing}")
    result = runner.invoke(app, ["audit", "verify", "--config", "c.yaml"])
    assert result.exit_code == 2, result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"cannot open the database (127.0.0.1:5432/{missing}): ")
    assert "does not exist" in line
    empty = f"uptally_empty_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin([f"CREATE DATABASE {empty}"]))
    try:
        monkeypatch.setenv("UPTALLY_DATABASE_URL", f"{base}/{empty}")
        result = runner.invoke(app, ["export-site", "--out", "site", "--config", "c.yaml"])
        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            f"no uptally database at 127.0.0.1:5432/{empty} (start serve once)"
        ]
    finally:
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {empty} WITH (FORCE)"]))


# -- tables ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_table_piped_to_a_script_keeps_every_id_whole(
    tmp_path: Path, sqlite_template: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(sqlite_template, data / "uptally.db")
    for name in ("deploy-pipeline-of-the-billing-service", "grafana-dashboards-of-the-sre-team"):
        code, output = await run_cli(
            "tokens", "create", "--name", name, "--scope", "read", "--scope", "write",
            "--expires", "90d", "--data-dir", str(data),
        )  # fmt: skip
        assert code == 0, output
    code, output = await run_cli("tokens", "list", "--data-dir", str(data))  # stdout is a pipe
    assert code == 0, output
    assert max(len(line) for line in output.splitlines()) > 80
    assert "…" not in output
    ids = re.findall(r"│ ([0-9a-f]{12}) │", output)
    assert len(ids) == 2, output
    assert "deploy-pipeline-of-the-billing-service" in output
    code, output = await run_cli("tokens", "revoke", ids[0], "--data-dir", str(data))
    assert code == 0, output


def test_a_table_on_a_narrow_terminal_folds_ids_instead_of_cutting_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(
        cli_app, "out", Console(file=screen, width=30, force_terminal=True, color_system=None)
    )
    table = Table("id", "name", "scopes")
    table.add_column("sha256", no_wrap=True)
    token_id, digest = "c57e8e400a1b", "9f86d081884c7d659a2feaa0c55ad015"
    table.add_row(token_id, "a rather long token name", "read write", digest)
    print_table(table)
    assert "…" not in screen.getvalue()
    rows = [line.split("│")[1:-1] for line in screen.getvalue().splitlines() if "│" in line]
    columns = ["".join(row[i].strip() for row in rows) for i in range(4)]
    assert columns[0] == token_id
    assert columns[3] == digest
