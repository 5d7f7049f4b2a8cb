"""`uptally config export` and `config apply`: the configuration as code, both ways."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from uptally.cli.app import EXIT_FAILED, EXIT_USAGE, DataDirOption, app, err, out, run_async
from uptally.cli.common import OptionalConfig, opened
from uptally.config import Config, ConfigError
from uptally.config.loader import ConfigIssue, line_of, read_yaml, show_path
from uptally.config.pointers import PathKey

if TYPE_CHECKING:
    from pydantic import BaseModel

    from uptally.managed.changes import Change, ManagedObjects
    from uptally.managed.plan import Step
    from uptally.store.database import Database

config_app = typer.Typer(
    help="Configuration as code: export the effective config, apply a file to the database.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

SOURCES = ("all", "file", "db")
_MS = re.compile(r"^(\d+)ms$")
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000))


@config_app.command("export")
def export(
    config: OptionalConfig = None,
    data_dir: DataDirOption = Path("uptally-data"),
    source: Annotated[str, typer.Option("--source", help="all, file or db")] = "all",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here, not stdout.")] = None,
) -> None:
    """Print the effective configuration as YAML that `uptally validate` accepts.

    `file`: what the config file declares, normalised; `db`: only the monitors and components
    managed in the database (meant for `config apply`; components naming the file's monitors
    do not validate on their own); `all`: both. `${secret:…}` references stay references;
    `${env:…}` references stay as written where the field takes text, and are written expanded
    (with a note on stderr) where it does not (a port, a duration)."""
    from uptally.config.export import declared, render

    if source not in SOURCES:
        _fail(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    data: dict[str, Any] = {}
    provisioned = Config()
    if source in ("file", "all"):
        if config is None:
            _fail(f"--source {source} needs --config")
        try:
            text = config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            _fail(f"{config}: cannot read the file: {error}")
        try:
            data, notes = declared(text, str(config), os.environ)
            provisioned = _load(config)
        except ConfigError as error:
            _lines(error.lines())
            raise typer.Exit(EXIT_USAGE) from None
        for note in notes:
            err.print(note, markup=False, soft_wrap=True)
    if source in ("db", "all"):
        managed = run_async(_read_managed(data_dir))
        _add_managed(data, managed, provisioned)
    text = render(data, f"uptally config export --source {source}")
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text, encoding="utf-8")


def _load(config: Path) -> Config:
    from uptally.config import load_config

    return load_config(config)


async def _read_managed(data_dir: Path) -> dict[str, list[BaseModel]]:
    from uptally.managed.load import load

    async with opened(data_dir) as db, db.connect() as conn:
        loaded = await load(conn)
    return {
        name: [objects[key] for key in sorted(objects)] for name, objects in loaded.objects.items()
    }


def _add_managed(
    data: dict[str, Any], managed: dict[str, list[BaseModel]], provisioned: Config
) -> None:
    from uptally.config.export import objects
    from uptally.config.managed import KINDS

    for name, items in managed.items():
        kind = KINDS[name]
        kept = []
        for item in items:
            origin = provisioned.origin(kind.section, kind.key_of(item))
            if origin is None:
                kept.append(item)
            else:
                err.print(
                    f"{origin}: {kind.name} {kind.key_of(item)!r} is also managed in the "
                    "database; the file's is written",
                    markup=False,
                    soft_wrap=True,
                )
        if kept:
            data[kind.section] = [*data.get(kind.section, []), *objects(kept)]


@config_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="YAML with monitors: and/or components:.")],
    config: OptionalConfig = None,
    data_dir: DataDirOption = Path("uptally-data"),
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete managed objects FILE does not list.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes only.")] = False,
) -> None:
    """Make the monitors and components managed in the database match FILE.

    Creates what is missing, updates what differs and, with --prune, deletes the managed
    objects of each section FILE has that it does not list; all in one audited transaction, or
    nothing. Objects the config file (--config) provisions are refused; give it so that
    FILE may name its monitors and locations. A running `serve` picks the change up within a
    second. `${env:…}` in FILE is expanded when it is read (the database stores values)."""
    try:
        text = file.read_text(encoding="utf-8")
        data, lines = read_yaml(text, str(file))
        provisioned = _load(config) if config is not None else Config()
    except (OSError, UnicodeDecodeError) as error:
        _fail(f"{file}: cannot read the file: {error}")
    except ConfigError as error:
        _lines(error.lines())
        raise typer.Exit(EXIT_USAGE) from None
    if data is None:
        data = {}
    run_async(_apply(file, data, lines, provisioned, data_dir, prune, dry_run))


async def _apply(
    file: Path,
    data: Any,
    lines: dict[PathKey, int],
    provisioned: Config,
    data_dir: Path,
    prune: bool,
    dry_run: bool,
) -> None:
    from uptally.audit import cli_actor
    from uptally.config.managed import DocumentInvalid
    from uptally.managed.changes import InUse, PreconditionFailed

    async with opened(data_dir) as db:
        objects = await _objects(db, provisioned)
        try:
            steps = await objects.apply_plan(data, cli_actor(), prune=prune, dry_run=True)
            _show(steps)
            if dry_run or not steps:
                if steps:
                    out.print("dry run: nothing changed")
                return
            done = await objects.apply_plan(data, cli_actor(), prune=prune)
        except DocumentInvalid as error:
            issues = [_issue(lines, p.pointer, p.message) for p in error.problems]
            _lines(ConfigError(str(file), issues).lines())
            raise typer.Exit(EXIT_USAGE) from None
        except InUse as error:
            _fail(f"{file}: {error}")
        except PreconditionFailed as error:
            err.print(f"nothing changed: {error}; run it again", markup=False, soft_wrap=True)
            raise typer.Exit(EXIT_FAILED) from None
    if done != steps:
        out.print("the database changed meanwhile; applied instead:")
        _show(done)
    out.print(f"applied {_count(done)}", markup=False)


async def _objects(db: Database, provisioned: Config) -> ManagedObjects:
    from uptally.clock import SystemClock
    from uptally.config.managed import KINDS, merge
    from uptally.managed.changes import ManagedObjects
    from uptally.managed.load import load

    async with db.connect() as conn:
        loaded = await load(conn)
    managed = {
        name: [obj for key, obj in objects.items() if not provisioned.origin(section, key)]
        for name, objects in loaded.objects.items()
        for section in [KINDS[name].section]
    }
    effective = merge(provisioned, managed)
    return ManagedObjects(db, SystemClock(), lambda: effective, _nothing_runs_here)


async def _nothing_runs_here(changes: Sequence[Change]) -> None:
    """No scheduler runs in this process: a running serve reads the change through the
    revision counter within a second."""


def _show(steps: list[Step]) -> None:
    from uptally.managed.plan import Action

    if not steps:
        out.print("no changes")
        return
    colour = {Action.CREATE: "green", Action.UPDATE: "yellow", Action.DELETE: "red"}
    for step in steps:
        head = f"{step.action.value} {step.kind.name} {step.id}"
        style = colour[step.action]
        if step.action is not Action.UPDATE:
            out.print(head, style=style, markup=False, highlight=False)
            continue
        for change in step.fields():
            line = f"{head}: {change.pointer} {_value(change.pointer, change.before)} -> "
            line += _value(change.pointer, change.after)
            out.print(line, style=style, markup=False, highlight=False)
    out.print(f"{_count(steps)} planned", markup=False)


def _count(steps: list[Step]) -> str:
    from uptally.managed.plan import Action

    names = {Action.CREATE: "to create", Action.UPDATE: "to update", Action.DELETE: "to delete"}
    parts = [
        f"{sum(1 for s in steps if s.action is a)} {names[a]}"
        for a in Action
        if any(s.action is a for s in steps)
    ]
    return f"{len(steps)} change{'s' if len(steps) != 1 else ''} ({', '.join(parts)})"


def _value(pointer: str, value: Any) -> str:
    from uptally.managed.diff import SECRET_KEYS

    if value is None:
        return "(default)"
    if pointer.split("/")[1] in SECRET_KEYS:
        return "(hidden)"
    if isinstance(value, str):
        match = _MS.match(value)
        if match:
            ms = int(match[1])
            for unit, size in _UNITS:
                if ms and ms % size == 0:
                    return f"{ms // size}{unit}"
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _issue(lines: dict[PathKey, int], pointer: str, message: str) -> ConfigIssue:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    path: PathKey = tuple(int(p) if p.isdigit() else p for p in parts)
    return ConfigIssue(line_of(lines, path), show_path(path), message)


def _lines(lines: list[str]) -> None:
    for line in lines:
        err.print(line, markup=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    err.print(message, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)
