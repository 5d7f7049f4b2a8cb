"""Appending to the audit log inside the caller's transaction, listing it and verifying it."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.audit.chain import Anchor, ChainChecker, Entry, Problem, canonical, entry_hash
from uptally.audit.chain import parse_row as _parse
from uptally.clock import Millis
from uptally.store import audit as store
from uptally.store.audit import AuditFilter

SYSTEM = "system"

__all__ = ["SYSTEM", "AuditFilter", "VerifyReport", "append", "cli_actor", "list_entries", "verify"]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    entries: int
    head: tuple[int, str] | None
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def cli_actor() -> str:
    """Who runs a CLI command: the operating-system user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:128]


async def append(
    conn: AsyncConnection,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    *,
    at: Millis | None = None,
) -> Entry:
    """Append an entry in the caller's transaction (committed or rolled back with the change).

    Appenders are serialised by the chain head row, so the chain stays linear with several
    writers and several uptally instances on one PostgreSQL.
    """
    if not actor or len(actor) > 128 or not action or len(action) > 64 or len(target) > 256:
        raise ValueError("audit: actor (1-128), action (1-64) and target (0-256 characters)")
    details = details or {}
    # Round-trip through canonical JSON now, so what is hashed is exactly what is stored.
    text = canonical(details).decode()
    details = json.loads(text)
    when = at if at is not None else time.time_ns() // 1_000_000
    seq, prev_hash = await store.claim_next(conn)
    digest = entry_hash(seq, when, actor, action, target, details, prev_hash)
    row = store.AuditRow(seq, when, actor, action, target, text, prev_hash, digest)
    await store.insert_entry(conn, row)
    return Entry(seq, when, actor, action, target, details, prev_hash, digest)


async def list_entries(conn: AsyncConnection, where: AuditFilter) -> list[Entry]:
    return [_parse(row) for row in await store.list_entries(conn, where)]


async def verify(conn: AsyncConnection, anchors: tuple[Anchor, ...] = ()) -> VerifyReport:
    """Walk the whole chain; report the first bad entry (edited, deleted, reordered)."""
    # The head is read before and after the walk, so entries appended meanwhile are told apart
    # from ones written around the chain head (see ChainChecker.finish).
    checker = ChainChecker(anchors, head=await store.head(conn))
    async for row in store.walk(conn):
        if not checker.feed(row):
            break
    problem = checker.finish(await store.head(conn))
    return VerifyReport(checker.count, checker.last, problem)
