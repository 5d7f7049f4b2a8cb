"""The console's SLA page: a period's report per policy, component and customer, the monthly
uptime against the target as SVG, the CSV the API and the CLI give, error budgets and burn
rates. Every figure comes from uptally.sla.service, as the API's do."""

from __future__ import annotations

import calendar
import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from uptally.sla import service
from uptally.sla.burn import window_lengths
from uptally.sla.export import (
    budget_document,
    burn_document,
    report_csv,
    report_document,
    window_label,
)
from uptally.sla.periods import Period, parse_period, period_at
from uptally.web.console import render
from uptally.web.console.session import Viewer
from uptally.web.console.sla_chart import Chart, Month, chart
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console", include_in_schema=False)
_YEAR = re.compile(r"^\d{4}$")
HISTORY = 12  # months in the chart


def exact(value: Any) -> str:
    """A figure as the API has it, never rounded further (60.0 reads as 60)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


render.ENV.filters["exact"] = exact


def chosen(text_year: str, text_month: str, zone: str, now: int) -> tuple[Period, str]:
    """The period asked for (a month, or a whole year with month=all), else the current month
    with a message saying why."""
    current = period_at("month", now, zone)
    if not text_year and not text_month:
        return current, ""
    if not _YEAR.match(text_year.strip()):
        return current, "Enter the year as four digits, e.g. 2026."
    month = text_month.strip() or f"{current.first_month:02d}"
    label = text_year.strip() if month == "all" else f"{text_year.strip()}-{month}"
    try:
        return parse_period(label, zone), ""
    except ValueError as error:
        return current, str(error).capitalize() + "."


def series(history: list[dict[str, Any]], policy: str, component: str) -> list[Month]:
    """One row's months from the reports' documents (the same numbers the API gives)."""
    months: list[Month] = []
    for document in history:
        period = document["period"]
        short = calendar.month_abbr[int(period["label"][5:7])]
        row = next(
            (r for r in document["rows"] if r["policy"] == policy and r["component"] == component),
            None,
        )
        if row is None or row["measured_from"] is None:
            months.append(Month(period["label"], short, None, None))
        else:
            months.append(Month(period["label"], short, row["uptime_percent"], row["met"]))
    return months


def _month_value(period: Period) -> str:
    return "all" if period.kind == "year" else f"{period.first_month:02d}"


@router.get("/sla")
async def sla_page(request: Request, signed: Viewer, year: str = "", month: str = "") -> Response:
    runtime = runtime_of(request)
    config = runtime.config
    zone = config.site.timezone
    now = runtime.clock.now_ms()
    period, problem = chosen(year[:8], month[:8], zone, now)
    report = await service.report(runtime.db, config, period, now)
    document = report_document(report)
    last = period if period.kind == "month" else parse_period(f"{period.year}-12", zone)
    history = [
        report_document(r) for r in await service.monthly(runtime.db, config, last, HISTORY, now)
    ]
    charts: list[tuple[dict[str, Any], Chart]] = [
        (row, chart(series(history, row["policy"], row["component"]), row["target"]))
        for row in document["rows"]
    ]
    budgets = [
        budget_document(row) for row in await service.current_budgets(runtime.db, config, now)
    ]
    burns = [
        burn_document(row, config.sla.burn_alerts)
        for row in await service.current_burn_rates(runtime.db, config, now)
    ]
    owed = [c for c in document["customers"] if c["credit_percent"]]
    return await render.page(
        request,
        signed,
        "sla_page.html",
        nav="sla",
        title="SLA",
        period=document["period"],
        year_value=year if problem else str(period.year),
        month_value=month if problem else _month_value(period),
        months=[(f"{i:02d}", calendar.month_name[i]) for i in range(1, 13)],
        problem=problem,
        rows=document["rows"],
        customers=document["customers"],
        owed=owed,
        outage_count=sum(len(row["outages"]) for row in document["rows"]),
        charts=charts,
        budgets=budgets,
        burns=burns,
        windows=[window_label(n) for n in window_lengths(config)],
        policies=config.sla.policies,
        csv_query=f"period={report.period.label}",
    )


@router.get("/sla/report.csv")
async def sla_csv(request: Request, signed: Viewer, period: str = "") -> Response:
    """The same CSV as GET /api/v1/sla/report?format=csv and `uptally sla report --format csv`."""
    runtime = runtime_of(request)
    try:
        wanted = parse_period(period[:16], runtime.config.site.timezone)
    except ValueError as error:
        return PlainTextResponse(str(error), status_code=422, headers=render.NO_STORE)
    report = await service.report(runtime.db, runtime.config, wanted, runtime.clock.now_ms())
    headers = {
        **render.NO_STORE,
        "Content-Disposition": f'attachment; filename="sla-{wanted.label}.csv"',
    }
    return PlainTextResponse(report_csv(report), media_type="text/csv", headers=headers)
