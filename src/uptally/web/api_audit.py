"""Admin API: the audit log, filtered, and its head hash (for anchoring elsewhere)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from uptally import audit
from uptally.audit import personal
from uptally.store import audit as audit_store
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import TimeParam, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut
from uptally.web.schemas_trust import AuditEntryOut, AuditHead, AuditList

router = APIRouter(
    prefix="/api/v1/audit",
    tags=["audit"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)


@router.get("", response_model=AuditList)
async def list_audit(
    request: Request,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description='exact, or a prefix: "token.*"')
    ] = None,
    target: Annotated[str | None, Query(max_length=256)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**62, description="entries after this seq")
    ] = None,
    before: Annotated[
        int | None, Query(ge=0, le=2**62, description="entries before this seq")
    ] = None,
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    """Entries newest first (or oldest first with order=asc); each can be re-hashed by anyone
    with the admin scope. Below it, personal data (e-mail and client addresses, subscriber ids)
    is masked (the list says `redacted`; an entry so changed no longer matches its hash)."""
    runtime = runtime_of(request)
    where = audit.AuditFilter(
        actor=actor,
        action=action,
        target=target,
        since=millis(since, "since"),
        until=millis(until, "until"),
        after=after,
        before=before,
        limit=limit,
        newest_first=order == "desc",
    )
    async with runtime.db.connect() as conn:
        entries = await audit.list_entries(conn, where)
    shown = [entry.as_json() for entry in entries]
    masked = not principal_of(request).allows("admin")
    if masked:
        shown = [personal.redacted(entry) for entry in shown]
    return AuditList(entries=[AuditEntryOut(**entry) for entry in shown], redacted=masked)


@router.get("/head", response_model=AuditHead)
async def audit_head(request: Request) -> AuditHead:
    """The newest entry's seq and hash: record it elsewhere to anchor the chain."""
    async with runtime_of(request).db.connect() as conn:
        head = await audit_store.head(conn)
    if head is None:
        raise ApiError(404, "the audit log is empty")
    return AuditHead(seq=head[0], hash=head[1])
