"""What operators do to notifications by hand (send a test, retry a failed delivery) and the
delivery figures they watch (each channel's share delivered within an hour)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.config.schema import Config
from uptally.ids import new_id
from uptally.notify.targets import CHANNEL
from uptally.store import channels as channel_store
from uptally.store import deliveries as store
from uptally.store.database import Database

TEST_KIND = "channel.test"
HOUR_MS = 3_600_000
SHARE_WINDOW_MS = 24 * HOUR_MS  # deliveries recorded this long ago count in the share
SHARE_WITHIN_MS = HOUR_MS  # on time: delivered this soon after the event (the target ≥ 99 %)


class NotFound(Exception):
    """No such channel or delivery (or, for a retry, none that failed)."""


async def channel_exists(conn: AsyncConnection, config: Config, channel_id: str) -> bool:
    if any(c.id == channel_id for c in config.notifications.channels):
        return True
    return await channel_store.get_channel(conn, channel_id) is not None


async def send_test(db: Database, config: Config, channel_id: str, actor: str, now: Millis) -> str:
    """Queue a test message to the channel (first in its queue, looked at now); audit-logged.
    Returns the delivery id: the delivery log shows how it went."""
    delivery = new_id(now)
    payload = {
        "subject": channel_id,
        "channel": channel_id,
        "message": f"A test message from {config.site.title}, sent by {actor}.",
        "requested_by": actor,
    }
    async with db.begin() as conn:
        if not await channel_exists(conn, config, channel_id):
            raise NotFound(f"no channel {channel_id!r}")
        item = store.NewDelivery(
            delivery,
            delivery,
            0,  # before every event still waiting: a test answers now, even behind a backlog
            CHANNEL + channel_id,
            TEST_KIND,
            store.PENDING,
            now,
            json.dumps(payload),
        )
        await store.add_deliveries(db, conn, [item], now)
        await store.due_now(db, conn, CHANNEL + channel_id, now)
        await audit.append(
            conn, actor, "channel.tested", f"channel:{channel_id}", {"delivery": delivery}, at=now
        )
    return delivery


async def retry(db: Database, delivery: str, actor: str, now: Millis) -> str:
    """Send a failed delivery again (its queue looked at now); audit-logged. Returns its
    target. A retry that fails again transiently past `retry.give_up_after` fails at once."""
    async with db.begin() as conn:
        target = await store.requeue(db, conn, delivery, now)
        if target is None:
            raise NotFound(f"no failed delivery {delivery!r}")
        await audit.append(
            conn, actor, "delivery.retried", f"delivery:{delivery}", {"target": target}, at=now
        )
    return target


@dataclass(frozen=True, slots=True)
class Health:
    """A channel's queue as operators watch it."""

    next_at: Millis | None  # when its queue is looked at next (a retry while it fails)
    failing_since: Millis | None
    last_error: str | None
    on_time: int  # delivered within an hour, of those recorded in the last 24 h
    late: int  # late, given up, or still waiting after an hour

    @property
    def share(self) -> float | None:
        """The share delivered within an hour (None: nothing to judge yet)."""
        judged = self.on_time + self.late
        return None if judged == 0 else self.on_time / judged


async def channel_health(db: Database, channels: Sequence[str], now: Millis) -> dict[str, Health]:
    """Queue state and the 24-hour on-time share of each channel (by id)."""
    targets = [CHANNEL + c for c in channels]
    async with db.connect() as conn:
        queues = await store.queues(conn, targets)
        shares = await timely_shares(conn, now)
    found: dict[str, Health] = {}
    for channel, target in zip(channels, targets, strict=True):
        queue = queues.get(target)
        on_time, late = shares.get(target, (0, 0))
        found[channel] = Health(
            queue.next_at if queue else None,
            queue.failing_since if queue else None,
            queue.last_error if queue else None,
            on_time,
            late,
        )
    return found


async def timely_shares(conn: AsyncConnection, now: Millis) -> dict[str, tuple[int, int]]:
    """Per target, over the last 24 h: (delivered within an hour, late or not delivered)."""
    return await store.timeliness(conn, now, SHARE_WINDOW_MS, SHARE_WITHIN_MS)
