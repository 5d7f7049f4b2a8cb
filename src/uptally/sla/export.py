"""Reports and ledgers as the documents the API, the CLI and billing systems read (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from uptally.clock import iso
from uptally.config.schema import BurnAlert
from uptally.durations import format_duration_ms
from uptally.sla.budget import firing
from uptally.sla.burn import BurnRow
from uptally.sla.latency import ERROR_BOUND
from uptally.sla.ledger import Availability, Counted, minutes, percent
from uptally.sla.periods import Period
from uptally.sla.report import BudgetRow, CustomerRow, LatencyRow, Report, Row

ROW_COLUMNS = [
    "policy",
    "component",
    "target",
    "uptime_percent",
    "downtime_minutes",
    "excluded_minutes",
    "met",
    "credit_percent",
    "outages",
    "measured_from",
    "not_monitored_minutes",
]
LEDGER_COLUMNS = [
    "period",
    "customer",
    "name",
    "plan",
    "policy",
    "components",
    "uptime_percent",
    "met",
    "credit_percent",
    "fee",
    "currency",
    "credit_amount",
]


def period_document(period: Period, now: int | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "label": period.label,
        "kind": period.kind,
        "start": iso(period.start),
        "end": iso(period.end),
        "timezone": period.timezone,
    }
    if now is not None:
        document["final"] = now >= period.end
        document["measured_until"] = iso(min(now, period.end))
    return document


def _measures(found: Availability) -> dict[str, Any]:
    return {
        "uptime_percent": percent(found.uptime),
        "downtime_minutes": minutes(found.downtime_ms),
        "excluded_minutes": minutes(found.excluded_ms),
        "not_monitored_minutes": minutes(found.not_monitored_ms),
        "measured_minutes": minutes(found.span_ms),
        "measured_from": iso(found.measured_from),  # null: nothing of the period was measured
    }


def _outage(item: Counted) -> dict[str, Any]:
    return {
        "id": item.id,
        "monitor": item.monitor,
        "component": item.component,
        "start": iso(item.start),
        "end": iso(item.end),
        "verified": item.verified,
        "source": item.source,
        "counted_minutes": minutes(item.counted_ms),
        "weight": float(item.weight),
    }


def row_document(row: Row) -> dict[str, Any]:
    found = row.availability
    measures = _measures(found)
    return {
        "policy": row.policy.id,
        "component": row.component,
        "target": row.policy.target,
        "uptime_percent": measures["uptime_percent"],
        "downtime_minutes": measures["downtime_minutes"],
        "excluded_minutes": measures["excluded_minutes"],
        "met": row.met,
        "credit_percent": row.credit_percent,
        "outages": [_outage(item) for item in found.counted],
        "measured_minutes": measures["measured_minutes"],
        "measured_from": measures["measured_from"],
        "not_monitored_minutes": measures["not_monitored_minutes"],
        "periods": [
            {
                "label": part.period.label,
                **_measures(part.availability),
                "met": part.met,
                "credit_percent": part.credit_percent,
            }
            for part in row.parts
        ],
    }


def customer_document(row: CustomerRow, period: Period) -> dict[str, Any]:
    return {
        "period": period.label,
        "customer": row.customer.id,
        "name": row.customer.name,
        "plan": row.plan,
        "policy": row.policy,
        "components": row.components,
        "uptime_percent": None if row.uptime is None else percent(row.uptime),
        "met": row.met,
        "credit_percent": row.credit_percent,
        "fee": None if row.fee is None else str(row.fee),
        "currency": row.currency,
        "credit_amount": None if row.credit_amount is None else str(row.credit_amount),
    }


def latency_document(row: LatencyRow) -> dict[str, Any]:
    latency = row.latency
    return {
        "scope": row.scope,
        "id": row.id,
        "count": latency.count,
        "p50_ms": _ms(latency.p50),
        "p95_ms": _ms(latency.p95),
        "p99_ms": _ms(latency.p99),
        "targets_ms": row.targets,
        "met": row.met,
        "uncertain": row.uncertain,
        "error_bound_percent": round(ERROR_BOUND * 100, 1),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def report_document(report: Report) -> dict[str, Any]:
    return {
        "period": period_document(report.period, report.now),
        "rows": [row_document(row) for row in report.rows],
        "customers": [customer_document(row, report.period) for row in report.customers],
        "latency": [latency_document(row) for row in report.latency],
    }


def ledger_document(report: Report) -> dict[str, Any]:
    """What a billing system consumes: the credit of every customer for the period."""
    return {
        "period": period_document(report.period, report.now),
        "customers": [customer_document(row, report.period) for row in report.customers],
    }


def budget_document(row: BudgetRow) -> dict[str, Any]:
    budget = row.budget
    return {
        "policy": row.policy.id,
        "component": row.component,
        "period": row.period.label,
        "target": row.policy.target,
        "uptime_percent": percent(row.so_far.uptime),
        "allowed_minutes": minutes(budget.allowed_ms),
        "consumed_minutes": minutes(budget.consumed_ms),
        "remaining_minutes": minutes(budget.remaining_ms),
        "remaining_percent": round(float(budget.remaining * 100), 3),
        "exhausted": budget.exhausted,
    }


def burn_document(row: BurnRow, alerts: Sequence[BurnAlert]) -> dict[str, Any]:
    """A row of burn rates, with each alert's windows and whether it fires now."""
    return {
        "policy": row.policy.id,
        "component": row.component,
        "target": row.policy.target,
        "rates": {window_label(n): round(float(rate), 3) for n, rate in row.rates.items()},
        "alerts": [
            {
                "long_window": window_label(a.long),
                "short_window": window_label(a.short),
                "factor": a.factor,
                "firing": firing(row.rates, a),
            }
            for a in alerts
        ],
    }


def window_label(ms: int) -> str:
    """A window's length as alerts and metrics name it: 1h, 5m, 1d12h."""
    return format_duration_ms(ms).replace(" ", "")


def table_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(str(v["id"]) if isinstance(v, dict) else str(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def report_csv(report: Report) -> str:
    """The report's rows (outages as their ids, space-separated)."""
    return table_csv(ROW_COLUMNS, report_document(report)["rows"])


def ledger_csv(report: Report) -> str:
    return table_csv(LEDGER_COLUMNS, ledger_document(report)["customers"])
