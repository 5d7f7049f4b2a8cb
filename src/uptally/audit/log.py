"""Appending to the audit log inside the caller's transaction, listing it and verifying it."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.audit.chain import Anchor, ChainChecker, Entry, Problem, canonical, entry_hash
from uptally.audit.chain import parse_row as _parse
from uptally.clock import Millis
from uptally.store import audit as store
from uptally.store.audit import AuditFilter

SYSTEM = "system"

__all__ = [
    "SYSTEM",
    "AuditFilter",
    "VerifyReport",
    "append",
    "append_many",
    "cli_actor",
    "list_entries",
    "verify",
]


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
    (entry,) = await append_many(conn, actor, [(action, target, details)], at=at)
    return entry


async def append_many(
    conn: AsyncConnection,
    actor: str,
    items: Sequence[tuple[str, str, dict[str, Any] | None]],
    *,
    at: Millis | None = None,
) -> list[Entry]:
    """`append` of several (action, target, details) in order, with a few statements."""
    if not items:
        return []
    if not actor or len(actor) > 128:
        raise ValueError("audit: actor (1-128), action (1-64) and target (0-256 characters)")
    for action, target, _ in items:
        if not action or len(action) > 64 or len(target) > 256:
            raise ValueError("audit: actor (1-128), action (1-64) and target (0-256 characters)")
    when = at if at is not None else time.time_ns() // 1_000_000
    seq, prev_hash = await store.claim_next(conn, len(items))
    rows: list[store.AuditRow] = []
    entries: list[Entry] = []
    for action, target, given in items:
        # Round-trip through canonical JSON now, so what is hashed is exactly what is stored.
        text = canonical(given or {}).decode()
        details = json.loads(text)
        digest = entry_hash(seq, when, actor, action, target, details, prev_hash)
        rows.append(store.AuditRow(seq, when, actor, action, target, text, prev_hash, digest))
        entries.append(Entry(seq, when, actor, action, target, details, prev_hash, digest))
        seq, prev_hash = seq + 1, digest
    await store.insert_entries(conn, rows)
    return entries


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
