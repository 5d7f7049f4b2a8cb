"""The console's trust pages: the landing page and the audit log with "verify chain".

The audit log is read as `GET /api/v1/audit` reads it (same filters; below the admin role,
personal data is masked), and verified as `uptally audit verify` verifies it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.routing import APIRouter
from starlette.responses import Response

from uptally import audit, tokens, vault
from uptally.accounts import users
from uptally.accounts.roles import Role
from uptally.accounts.sessions import Signed
from uptally.audit import personal
from uptally.audit.log import VerifyReport
from uptally.backup import schedule as backup_schedule
from uptally.store import audit as audit_store
from uptally.web.console import render
from uptally.web.console.session import Viewer
from uptally.web.console.trust_format import ago, summary, when
from uptally.web.deps import millis, runtime_of
from uptally.web.errors import ApiError

router = APIRouter(prefix="/console/trust", include_in_schema=False)

PAGE = 50
FILTERS = ("actor", "action", "target", "since", "until")
_LIMITS = {"actor": 128, "action": 64, "target": 256, "since": 40, "until": 40}


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    at: str
    at_iso: str
    actor: str
    action: str
    target: str
    details: str


@dataclass(frozen=True, slots=True)
class Listing:
    rows: list[Row]
    values: dict[str, str]  # the filters as given
    errors: dict[str, str]  # per filter field
    older: str | None  # links to the next pages, None at an end
    newer: str | None
    masked: bool


@dataclass(frozen=True, slots=True)
class Figures:
    """The landing page's figure per area (admin areas only for admins)."""

    entries: int
    users: int = 0
    disabled: int = 0
    tokens: int = 0
    secrets: int = 0
    newest_backup: str = ""
    currency: str = ""  # the backup-currency monitor's state; "" when backups are off


@router.get("")
async def landing(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        head = await audit_store.head(conn)
        figures = Figures(head[0] if head else 0)
        admin = users.role_of(signed.user) is Role.ADMIN
        if admin:
            people = await users.listed(conn)
            figures = Figures(
                figures.entries,
                users=len(people),
                disabled=sum(users.state_of(u, now) == "disabled" for u in people),
                tokens=sum(
                    t.revoked_at is None and (t.expires_at is None or t.expires_at > now)
                    for t in await tokens.listed(conn)
                ),
                secrets=len(await vault.listed(conn)),
            )
    schedule = runtime.backups
    if schedule is not None and admin:
        newest = await asyncio.to_thread(backup_schedule.newest, schedule.directory)
        figures = replace(
            figures,
            newest_backup=ago(newest.created_at_ms, now) if newest else "never",
            currency=runtime.monitor_state(schedule.settings.monitor).value,
        )
    return await render.page(
        request, signed, "trust_index.html", nav="trust", sub="", figures=figures
    )


def _filters(query: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    values = {name: query.get(name, "").strip()[: _LIMITS[name]] for name in FILTERS}
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {name: values[name] or None for name in ("actor", "action", "target")}
    for name in ("since", "until"):
        try:
            parsed[name] = millis(values[name] or None, name)
        except ApiError:
            errors[name] = "Not a time: use 2026-10-01 14:30 or 2026-10-01T14:30:00Z (UTC)."
    if not errors and parsed["since"] and parsed["until"] and parsed["since"] > parsed["until"]:
        errors["until"] = "The end lies before the start."
    return values, errors, parsed


def _cursor(query: dict[str, str], name: str) -> int | None:
    text = query.get(name, "")
    return int(text) if text.isdigit() and len(text) < 19 else None


async def listing(request: Request, signed_admin: bool) -> Listing:
    query = dict(request.query_params)
    values, errors, parsed = _filters(query)
    if errors:
        return Listing([], values, errors, None, None, not signed_admin)
    before, after = _cursor(query, "before"), _cursor(query, "after")
    upward = after is not None and before is None  # "newer": read oldest first, then flip
    where = audit.AuditFilter(
        **parsed,
        after=after if upward else None,
        before=before,
        limit=PAGE + 1,
        newest_first=not upward,
    )
    async with runtime_of(request).db.connect() as conn:
        entries = await audit.list_entries(conn, where)
    more = len(entries) > PAGE
    entries = entries[:PAGE]
    if upward:
        entries.reverse()
    shown = [entry.as_json() for entry in entries]
    if not signed_admin:
        shown = [personal.redacted(entry) for entry in shown]
    rows = [
        Row(
            e["seq"],
            when(entry.at),
            e["at"],
            e["actor"],
            e["action"],
            e["target"],
            summary(e["details"]),
        )
        for entry, e in zip(entries, shown, strict=True)
    ]
    kept = {name: value for name, value in values.items() if value}
    older = newer = None
    if rows and (more or upward):
        older = "?" + urlencode({**kept, "before": rows[-1].seq})
    if rows and (before is not None or (upward and more)):
        newer = "?" + urlencode({**kept, "after": rows[0].seq})
    return Listing(rows, values, errors, older, newer, not signed_admin)


@router.get("/audit")
async def audit_page(request: Request, signed: Viewer) -> Response:
    return await _audit_page(request, signed, None)


@router.post("/audit/verify")
async def verify_chain(request: Request, signed: Viewer) -> Response:
    """Walk the whole chain, as `uptally audit verify` does (read-only, so any role may)."""
    async with runtime_of(request).db.connect() as conn:
        report = await audit.verify(conn)
    return await _audit_page(request, signed, report)


async def _audit_page(request: Request, signed: Signed, report: VerifyReport | None) -> Response:
    found = await listing(request, users.role_of(signed.user) is Role.ADMIN)
    return await render.page(
        request,
        signed,
        "trust_audit.html",
        nav="trust",
        sub="audit",
        status=422 if found.errors else 200,
        listing=found,
        report=report,
    )
