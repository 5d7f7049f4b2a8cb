"""Past incidents written at their original times, with backfilled outages, in one transaction.

History is replayed through the same pure transitions as live incidents (declare, then each
update at its own time), but nothing is announced: no outbox events, no commitments — the
people subscribed heard about these incidents years ago.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from uptally import audit
from uptally.clock import Millis, iso
from uptally.evaluator import Outage
from uptally.ids import new_id
from uptally.importers.statuspage import PastIncident
from uptally.incidents.model import Impact, Status
from uptally.incidents.transitions import Change, IncidentError, declare, post_update
from uptally.status import ComponentStatus
from uptally.store import incidents as store
from uptally.store import outages as outage_store
from uptally.store.database import Database
from uptally.store.tables_incidents import incidents as incidents_table

ACTOR = "import:statuspage"


@dataclass(frozen=True, slots=True)
class Written:
    incidents: int
    updates: int
    outages: int
    skipped: int  # already there (same title and start): a second run changes nothing
    refused: list[str]  # incidents uptally cannot take, each with why


async def write(db: Database, past: Sequence[PastIncident], now: Millis) -> Written:
    written = updates = outages = skipped = 0
    refused: list[str] = []
    async with db.begin() as conn:
        rows = await conn.execute(select(incidents_table.c.title, incidents_table.c.started_at))
        present = {(r.title, r.started_at) for r in rows}
        for item in past:
            if (" ".join(item.title.split()), item.started_at) in present:
                skipped += 1
                continue
            try:
                made = _replay(item)
            except IncidentError as error:
                refused.append(f"incident {item.title!r} ({item.source_id}): {error}")
                continue
            await store.insert_incident(conn, made[0].incident)
            last = made[0].incident
            for change in made:
                last = change.incident
                if change.update is not None:
                    await store.insert_update(conn, change.update)
                    updates += 1
            await store.save_incident(conn, last)
            if (
                item.impact in ("major", "critical")
                and item.components
                and item.resolved_at is not None
                and item.resolved_at > item.started_at
            ):
                for component in item.components:
                    # One interval per component, from the start to the resolution: Statuspage
                    # keeps no measured downtime, so this is the incident's span.
                    outage = Outage(
                        new_id(item.started_at),
                        "",
                        item.started_at,
                        item.resolved_at,
                        True,
                        {},
                        f"imported from Statuspage: {item.title}"[:500],
                    )
                    await outage_store.insert_manual(conn, outage, component, now)
                    outages += 1
            await audit.append(
                conn,
                ACTOR,
                "incident.imported",
                f"incident:{last.id}",
                {
                    "source": "statuspage",
                    "source_id": item.source_id,
                    "title": last.title,
                    "started_at": iso(last.started_at),
                    "updates": len(item.updates),
                },
                at=now,
            )
            written += 1
    return Written(written, updates, outages, skipped, refused)


def _replay(item: PastIncident) -> list[Change]:
    first = item.updates[0] if item.updates else None
    at = first.at if first else item.started_at
    changes = [
        declare(
            new_id(item.started_at),
            title=item.title,
            status=Status(first.status) if first else Status.RESOLVED,
            impact=Impact(item.impact),
            components=_statuses(item.components, first.components if first else {}),
            message=first.body if first else None,
            actor=ACTOR,
            now=at,
            update_id=new_id(at),
            started_at=item.started_at,
        )
    ]
    for update in item.updates[1:]:
        changes.append(
            post_update(
                changes[-1].incident,
                status=Status(update.status),
                message=update.body,
                components=_statuses(update.components, update.components) or None,
                actor=ACTOR,
                now=update.at,
                update_id=new_id(update.at),
            )
        )
    return changes


def _statuses(
    names: Sequence[str] | dict[str, str], given: dict[str, str]
) -> dict[str, ComponentStatus | None]:
    return {name: ComponentStatus(given[name]) if name in given else None for name in names}
