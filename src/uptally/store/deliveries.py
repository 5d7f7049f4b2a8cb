"""Deliveries of outbox events: one per (event, target), per-target queues with leases, attempts.

Several instances share the work safely: a target's queue is leased with a conditional UPDATE
(on PostgreSQL after `FOR UPDATE SKIP LOCKED`) and a delivery is unique per (event, target).
Callers own the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import outbox
from uptally.store.tables_incidents import deliveries, delivery_attempts, delivery_queues

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
SUPPRESSED = "suppressed"


# -- creating deliveries -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    event: str
    event_seq: int
    target: str
    kind: str
    state: str
    created_at: Millis
    payload: str | None = None


async def add_deliveries(
    db: Database, conn: AsyncConnection, items: Sequence[NewDelivery], now: Millis
) -> None:
    """Create deliveries (an existing (event, target) pair is left alone) and their queues."""
    if not items:
        return
    await conn.execute(
        insert_ignore(db, deliveries, ["event", "target"]),
        [
            {
                "id": d.id,
                "event": d.event,
                "event_seq": d.event_seq,
                "target": d.target,
                "kind": d.kind,
                "state": d.state,
                "attempts": 0,
                "created_at": d.created_at,
                "payload": d.payload,
            }
            for d in items
        ],
    )
    targets = sorted({d.target for d in items if d.state == PENDING})
    if targets:
        await conn.execute(
            insert_ignore(db, delivery_queues, ["target"]),
            [{"target": t, "next_at": now} for t in targets],
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """A delivery tried before its event could be stored (database writes were failing)."""

    id: str
    event: str
    target: str
    kind: str
    created_at: Millis
    state: str  # delivered | failed | pending (only transient failures so far)
    attempts: tuple[Attempt, ...]


async def add_sent(db: Database, conn: AsyncConnection, sent: Sequence[Sent], now: Millis) -> None:
    """Record deliveries made from memory, in the transaction that stores their events (after
    them): the fan-out then finds each (event, target) taken and sends nothing twice."""
    if not sent:
        return
    events = sorted({s.event for s in sent})
    query = select(outbox.c.id, outbox.c.seq).where(outbox.c.id.in_(events))
    seqs = {r.id: r.seq for r in await conn.execute(query)}
    await conn.execute(
        insert_ignore(db, deliveries, ["event", "target"]),
        [
            {
                "id": s.id,
                "event": s.event,
                "event_seq": seqs.get(s.event, 0),
                "target": s.target,
                "kind": s.kind,
                "state": s.state,
                "attempts": len(s.attempts),
                "created_at": s.created_at,
                "delivered_at": s.attempts[-1].at if s.state == DELIVERED else None,
                "last_error": s.attempts[-1].error if s.attempts else None,
            }
            for s in sent
        ],
    )
    waiting = sorted({s.target for s in sent if s.state == PENDING})
    if waiting:
        await conn.execute(
            insert_ignore(db, delivery_queues, ["target"]),
            [{"target": t, "next_at": now} for t in waiting],
        )
    tried = [a for s in sent for a in s.attempts]
    if tried:
        await _insert_attempts(conn, tried)


# -- leasing queues ------------------------------------------------------------------------


async def claim_queues(
    db: Database,
    conn: AsyncConnection,
    owner: str,
    now: Millis,
    lease_ms: int,
    limit: int,
    exclude: Iterable[str] = (),
) -> list[str]:
    """Lease up to `limit` queues that have due pending deliveries and no live lease."""
    excluded = list(exclude)
    free = or_(delivery_queues.c.lease_until.is_(None), delivery_queues.c.lease_until < now)
    query = (
        select(delivery_queues.c.target)
        .where(delivery_queues.c.next_at <= now, free)
        .where(
            exists().where(
                deliveries.c.target == delivery_queues.c.target, deliveries.c.state == PENDING
            )
        )
        .order_by(delivery_queues.c.next_at)
        .limit(limit)
    )
    if excluded:
        query = query.where(delivery_queues.c.target.not_in(excluded))
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    candidates = [r[0] for r in await conn.execute(query)]
    claimed: list[str] = []
    for target in candidates:
        # Conditional: if another instance leased it meanwhile, nothing is updated.
        result = await conn.execute(
            update(delivery_queues)
            .where(delivery_queues.c.target == target, free)
            .values(lease_owner=owner, lease_until=now + lease_ms)
        )
        if result.rowcount:
            claimed.append(target)
    return claimed


async def renew_leases(
    conn: AsyncConnection, owner: str, targets: Sequence[str], until: Millis
) -> None:
    if targets:
        await conn.execute(
            update(delivery_queues)
            .where(
                delivery_queues.c.target.in_(list(targets)),
                delivery_queues.c.lease_owner == owner,
            )
            .values(lease_until=until)
        )


async def release_queue(
    conn: AsyncConnection,
    target: str,
    owner: str,
    *,
    next_at: Millis,
    failing_since: Millis | None,
    last_error: str | None,
) -> None:
    await conn.execute(
        update(delivery_queues)
        .where(delivery_queues.c.target == target, delivery_queues.c.lease_owner == owner)
        .values(
            lease_owner=None,
            lease_until=None,
            next_at=next_at,
            failing_since=failing_since,
            last_error=last_error,
        )
    )


async def release_all(conn: AsyncConnection, owner: str) -> None:
    await conn.execute(
        update(delivery_queues)
        .where(delivery_queues.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def queue_state(conn: AsyncConnection, target: str) -> tuple[Millis | None, str | None]:
    """(failing since, last error) of a target's queue."""
    row = (
        await conn.execute(
            select(delivery_queues.c.failing_since, delivery_queues.c.last_error).where(
                delivery_queues.c.target == target
            )
        )
    ).first()
    return (row.failing_since, row.last_error) if row else (None, None)


# -- delivering ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    id: str
    event: str
    event_seq: int
    target: str
    kind: str
    attempts: int
    created_at: Millis
    at: Millis  # when the event happened
    subject: str
    data: dict[str, Any]


async def next_pending(conn: AsyncConnection, target: str, limit: int) -> list[Pending]:
    rows = await conn.execute(
        select(
            deliveries.c.id,
            deliveries.c.event,
            deliveries.c.event_seq,
            deliveries.c.kind,
            deliveries.c.attempts,
            deliveries.c.created_at,
            deliveries.c.payload,
            outbox.c.at,
            outbox.c.subject,
            outbox.c.data,
        )
        .select_from(deliveries.outerjoin(outbox, outbox.c.id == deliveries.c.event))
        .where(deliveries.c.target == target, deliveries.c.state == PENDING)
        .order_by(deliveries.c.event_seq, deliveries.c.id)
        .limit(limit)
    )
    found: list[Pending] = []
    for r in rows:
        if r.data is not None:
            data, at, subject = json.loads(r.data), r.at, r.subject
        else:  # a delivery of its own (e.g. a confirmation mail)
            payload = json.loads(r.payload or "{}")
            data, at, subject = payload, r.created_at, str(payload.get("subject", ""))
        found.append(
            Pending(
                r.id,
                r.event,
                r.event_seq,
                target,
                r.kind,
                r.attempts,
                r.created_at,
                at,
                subject,
                data,
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery: str
    at: Millis
    duration_ms: float
    outcome: str  # delivered | transient | permanent
    status: int | None
    error: str | None
    state: str  # the delivery's state after this attempt


async def record_attempts(conn: AsyncConnection, attempts: Sequence[Attempt]) -> None:
    if not attempts:
        return
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state"),
            attempts=deliveries.c.attempts + 1,
            delivered_at=bindparam("b_delivered_at"),
            last_error=bindparam("b_error"),
        ),
        [
            {
                "b_id": a.delivery,
                "b_state": a.state,
                "b_delivered_at": a.at if a.state == DELIVERED else None,
                "b_error": a.error,
            }
            for a in attempts
        ],
    )
    await _insert_attempts(conn, attempts)


async def _insert_attempts(conn: AsyncConnection, attempts: Sequence[Attempt]) -> None:
    await conn.execute(
        insert(delivery_attempts),
        [
            {
                "delivery": a.delivery,
                "at": a.at,
                "duration_ms": a.duration_ms,
                "outcome": a.outcome,
                "status": a.status,
                "error": a.error,
            }
            for a in attempts
        ],
    )


async def cancel_pending(conn: AsyncConnection, target: str, reason: str) -> int:
    """Give up every pending delivery of a target (channel removed, subscriber gone)."""
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.target == target, deliveries.c.state == PENDING)
        .values(state=FAILED, last_error=reason)
    )
    return int(result.rowcount)


async def requeue(db: Database, conn: AsyncConnection, delivery: str, now: Millis) -> str | None:
    """A failed delivery pending again, its queue due now; its target, or None if it was not
    failed (conditional: two retries at once requeue it once)."""
    result = await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery, deliveries.c.state == FAILED)
        .values(state=PENDING, delivered_at=None)
    )
    if not result.rowcount:
        return None
    target = (
        await conn.execute(select(deliveries.c.target).where(deliveries.c.id == delivery))
    ).scalar_one()
    await due_now(db, conn, target, now)
    return str(target)


async def due_now(db: Database, conn: AsyncConnection, target: str, now: Millis) -> None:
    """Look at the target's queue now, even while it backs off (an operator asked)."""
    await conn.execute(
        insert_ignore(db, delivery_queues, ["target"]), [{"target": target, "next_at": now}]
    )
    await conn.execute(
        update(delivery_queues)
        .where(delivery_queues.c.target == target, delivery_queues.c.next_at > now)
        .values(next_at=now)
    )


@dataclass(frozen=True, slots=True)
class QueueView:
    target: str
    next_at: Millis
    failing_since: Millis | None
    last_error: str | None


async def queues(conn: AsyncConnection, targets: Sequence[str]) -> dict[str, QueueView]:
    """The queues of these targets: when each is looked at next, since when it fails."""
    if not targets:
        return {}
    q = delivery_queues.c
    rows = await conn.execute(
        select(q.target, q.next_at, q.failing_since, q.last_error).where(
            q.target.in_(list(targets))
        )
    )
    return {r.target: QueueView(r.target, r.next_at, r.failing_since, r.last_error) for r in rows}


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    event: str
    target: str
    kind: str
    state: str
    attempts: int
    created_at: Millis
    delivered_at: Millis | None
    last_error: str | None


async def list_deliveries(
    conn: AsyncConnection,
    *,
    target: str | None = None,
    state: str | None = None,
    event: str | None = None,
    delivery: str | None = None,
    limit: int = 100,
) -> list[DeliveryRow]:
    query = select(deliveries)
    if delivery is not None:
        query = query.where(deliveries.c.id == delivery)
    if target is not None:
        query = query.where(deliveries.c.target == target)
    if state is not None:
        query = query.where(deliveries.c.state == state)
    if event is not None:
        query = query.where(deliveries.c.event == event)
    rows = await conn.execute(
        query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)
    )
    return [
        DeliveryRow(
            r.id,
            r.event,
            r.target,
            r.kind,
            r.state,
            r.attempts,
            r.created_at,
            r.delivered_at,
            r.last_error,
        )
        for r in rows
    ]


async def list_attempts(conn: AsyncConnection, delivery: str) -> list[Attempt]:
    rows = await conn.execute(
        select(delivery_attempts)
        .where(delivery_attempts.c.delivery == delivery)
        .order_by(delivery_attempts.c.seq)
    )
    return [
        Attempt(r.delivery, r.at, r.duration_ms, r.outcome, r.status, r.error, "") for r in rows
    ]


async def pending_counts(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(
        select(deliveries.c.target, func.count())
        .where(deliveries.c.state == PENDING)
        .group_by(deliveries.c.target)
    )
    return {r[0]: int(r[1]) for r in rows}


async def count_pending(conn: AsyncConnection, target: str) -> int:
    query = select(func.count()).where(deliveries.c.target == target, deliveries.c.state == PENDING)
    return int((await conn.execute(query)).scalar() or 0)


async def timeliness(
    conn: AsyncConnection, now: Millis, window: Millis, within: Millis
) -> dict[str, tuple[int, int]]:
    """Per target, over deliveries recorded in the last `window`: (on time, late).

    On time: delivered within `within` of the event being recorded. Late: delivered later, or
    still not delivered (or given up) once `within` has passed. Undecided ones do not count.
    """
    age = now - deliveries.c.created_at
    took = deliveries.c.delivered_at - deliveries.c.created_at
    on_time = case((took <= within, 1), else_=0)
    late = case(
        (deliveries.c.state == DELIVERED, case((took > within, 1), else_=0)),
        (age > within, 1),
        else_=0,
    )
    rows = await conn.execute(
        select(deliveries.c.target, func.sum(on_time), func.sum(late))
        .where(deliveries.c.created_at >= now - window, deliveries.c.state != SUPPRESSED)
        .group_by(deliveries.c.target)
    )
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in rows}


async def prune(conn: AsyncConnection, before: Millis) -> int:
    """Forget finished deliveries and attempts recorded before `before`."""
    gone = await conn.execute(
        delete(deliveries).where(deliveries.c.created_at < before, deliveries.c.state != PENDING)
    )
    await conn.execute(delete(delivery_attempts).where(delivery_attempts.c.at < before))
    return int(gone.rowcount)
