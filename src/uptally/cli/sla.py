"""`uptally sla report|ledger|budget`: the SLA ledger from the command line (table, JSON, CSV)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from uptally.cli.app import (
    EXIT_USAGE,
    ConfigOption,
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
    ReportFormatOption,
    check_format,
    opened,
    settings,
)
from uptally.clock import SystemClock

if TYPE_CHECKING:  # imported when used: other commands need not load SQLAlchemy
    from uptally.config import Config
    from uptally.sla.periods import Period
    from uptally.sla.report import Report

sla_app = typer.Typer(help="The SLA ledger: reports, customer credits, error budgets.")
app.add_typer(sla_app, name="sla", no_args_is_help=True)

DEFAULT_DIR = Path("uptally-data")
PeriodOption = Annotated[
    str, typer.Option("--period", help="YYYY-MM, YYYY-Qn or YYYY (calendar, site timezone).")
]


def _period(config: Config, text: str) -> Period:
    from uptally.sla.periods import parse_period

    try:
        return parse_period(text, config.site.timezone)
    except ValueError as error:
        err.print(str(error), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


async def _report(config: Config, data_dir: Path, period: Period) -> Report:
    from uptally.store import sla as sla_store

    async with opened(data_dir) as db, db.connect() as conn:  # read-only: serve migrates
        return await sla_store.report(conn, config, period, SystemClock().now_ms())


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@sla_app.command("report")
def sla_report(
    period: PeriodOption,
    config: ConfigOption,
    data_dir: DataDirOption = DEFAULT_DIR,
    output: ReportFormatOption = "table",
) -> None:
    """Uptime %, downtime, excluded and not monitored minutes, met and credit % per policy and
    component."""
    from uptally.sla.export import report_csv, report_document

    check_format(output, REPORT_FORMATS)
    loaded = settings(config)
    report = run_async(_report(loaded, data_dir, _period(loaded, period)))
    document = report_document(report)
    if output == "json":
        out.print_json(json.dumps(document))
        return
    if output == "csv":
        out.print(report_csv(report), end="", markup=False, soft_wrap=True)
        return
    info = document["period"]
    state = "final" if info["final"] else f"so far (until {info['measured_until']})"
    table = Table(title=f"SLA {info['label']} ({info['timezone']}, {state})")
    for name in ("Policy", "Component", "Target %", "Uptime %", "Downtime min"):
        table.add_column(name, justify="right" if "%" in name or "min" in name else "left")
    for name in ("Excluded min", "Not monitored min", "Met", "Credit %", "Outages"):
        table.add_column(name, justify="right")
    for name in ("Measured from",):
        table.add_column(name, justify="right")
    for row in document["rows"]:
        table.add_row(
            row["policy"],
            row["component"],
            _number(row["target"]),
            f"{row['uptime_percent']:.4f}",
            _number(row["downtime_minutes"]),
            _number(row["excluded_minutes"]),
            _number(row["not_monitored_minutes"]),
            _yes(row["met"]),
            _number(row["credit_percent"]),
            str(len(row["outages"])),
            row["measured_from"] or "no data",
        )
    print_table(table)
    if document["customers"]:
        print_table(_customers_table(document["customers"]))
    if document["latency"]:
        print_table(_latency_table(document["latency"]))


def _customers_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Credits per customer")
    for name in ("Customer", "Plan", "Policy", "Uptime %", "Met", "Credit %", "Credit"):
        table.add_column(name, justify="right" if name in ("Uptime %", "Credit %") else "left")
    for row in rows:
        amount = row["credit_amount"]
        table.add_row(
            row["customer"],
            row["plan"],
            row["policy"] or "-",
            "-" if row["uptime_percent"] is None else f"{row['uptime_percent']:.4f}",
            _yes(row["met"]),
            _number(row["credit_percent"]),
            "-" if amount is None else f"{amount} {row['currency'] or ''}".strip(),
        )
    return table


def _latency_table(rows: list[dict[str, Any]]) -> Table:
    bound = rows[0]["error_bound_percent"]
    table = Table(title=f"Latency objectives (percentiles within ±{bound} %)")
    for name in ("Scope", "Id", "Checks", "p50 ms", "p95 ms", "p99 ms", "Targets", "Met"):
        table.add_column(name)
    for row in rows:
        targets = ", ".join(f"{k} ≤ {v} ms" for k, v in row["targets_ms"].items())
        met = _yes(row["met"]) + (" (±)" if row["uncertain"] else "")
        table.add_row(
            row["scope"],
            row["id"],
            str(row["count"]),
            _number(row["p50_ms"]),
            _number(row["p95_ms"]),
            _number(row["p99_ms"]),
            targets,
            met,
        )
    return table


@sla_app.command("ledger")
def sla_ledger(
    period: PeriodOption,
    config: ConfigOption,
    data_dir: DataDirOption = DEFAULT_DIR,
    output: ReportFormatOption = "csv",
) -> None:
    """Credits per customer for a period: the ledger a billing system consumes."""
    from uptally.sla.export import ledger_csv, ledger_document

    check_format(output, REPORT_FORMATS)
    loaded = settings(config)
    report = run_async(_report(loaded, data_dir, _period(loaded, period)))
    if output == "json":
        out.print_json(json.dumps(ledger_document(report)))
    elif output == "csv":
        out.print(ledger_csv(report), end="", markup=False, soft_wrap=True)
    else:
        print_table(_customers_table(ledger_document(report)["customers"]))


@sla_app.command("budget")
def sla_budget(
    config: ConfigOption,
    data_dir: DataDirOption = DEFAULT_DIR,
    output: FormatOption = "table",
) -> None:
    """The error budget left in the current period, per policy and component."""
    check_format(output)
    loaded = settings(config)
    rows = run_async(_budgets(loaded, data_dir))
    if output == "json":
        out.print_json(json.dumps({"budgets": rows}))
        return
    table = Table(title="Error budgets (current period)")
    for name in ("Policy", "Component", "Period", "Uptime %", "Allowed min", "Used min", "Left %"):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row["policy"],
            row["component"],
            row["period"],
            f"{row['uptime_percent']:.4f}",
            _number(row["allowed_minutes"]),
            _number(row["consumed_minutes"]),
            _number(row["remaining_percent"]),
        )
    print_table(table)


async def _budgets(config: Config, data_dir: Path) -> list[dict[str, Any]]:
    from uptally.sla import service
    from uptally.sla.export import budget_document

    async with opened(data_dir) as db:
        rows = await service.current_budgets(db, config, SystemClock().now_ms())
    return [budget_document(row) for row in rows]
