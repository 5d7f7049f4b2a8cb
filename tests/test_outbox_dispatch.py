"""The outbox dispatcher against real receivers: retries, order, isolation, several instances."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.conftest import config_from
from tests.receivers import HttpReceiver, Received, poll_until
from uptally.clock import SystemClock
from uptally.config import Config
from uptally.events import Event, EventKind
from uptally.metrics import Metrics
from uptally.notify.service import Notifier
from uptally.store import deliveries as store
from uptally.store import outbox
from uptally.store.database import Database
from uptally.store.outbox_cursors import Cursor, advanced

RETRY = "retry: {first: 20ms, max: 80ms}"


def config(url: str, channels: dict[str, str], retry: str = RETRY) -> Config:
    lines = "\n".join(
        f'    - {{id: {name}, url: "webhook+{url}{path}", events: ["*"]}}'
        for name, path in channels.items()
    )
    return config_from(
        f"""
monitors: [{{id: api, kind: http, url: "http://127.0.0.1:9/"}}]
components: [{{id: api, monitors: [api]}}]
notifications:
  {retry}
  channels:
{lines}
"""
    )


@contextlib.asynccontextmanager
async def notifier(db_url: str, cfg: Config, **settings: object) -> AsyncIterator[Notifier]:
    """A notifier on its own connection pool (like another uptally instance)."""
    db = Database(db_url)
    await db.migrate()
    running = Notifier(db, SystemClock(), Metrics(), lambda: cfg, lambda: None)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        await running.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await db.close()


async def emit(
    db_url: str, count: int, kind: EventKind = EventKind.MONITOR_DOWN, **data: object
) -> list[str]:
    db = Database(db_url)
    await db.migrate()
    events = [
        Event(kind, 1_000 + n, "api", {"monitor": "api", "n": n, **data}) for n in range(count)
    ]
    async with db.begin() as conn:
        await outbox.append_events(conn, events, SystemClock().now_ms())
    await db.close()
    return [e.id for e in events]


def deliveries_of(requests: list[Received]) -> list[tuple[str, str]]:
    """(delivery id, event id) of each request, in arrival order."""
    return [(r.headers["X-Uptally-Delivery"], r.json()["id"]) for r in requests]


def exactly_once_in_order(receiver: HttpReceiver, path: str, event_ids: list[str]) -> None:
    ok = deliveries_of(receiver.ok(path))
    assert [event for _, event in ok] == event_ids  # every event once, in outbox order
    assert len({delivery for delivery, _ in ok}) == len(ok)  # one delivery id per event
    ids = {event: delivery for delivery, event in ok}
    for request in receiver.requests:
        if request.path == path:  # failed attempts repeat the delivery id of the same event
            assert ids[request.json()["id"]] == request.headers["X-Uptally-Delivery"]


async def test_a_receiver_failing_for_a_while_gets_every_event_once_in_order_and_blocks_no_one(
    db_url: str,
) -> None:
    steady_done: Callable[[], bool]
    flaky_calls = 0

    def answer(_n: int, path: str) -> int:
        # The flaky channel fails (at least 3 times) until the steady one has everything:
        # proof that it waits alone.
        nonlocal flaky_calls
        if path != "/flaky":
            return 200
        flaky_calls += 1
        return 503 if flaky_calls <= 3 or not steady_done() else 200

    async with HttpReceiver(answer) as receiver:
        cfg = config(receiver.url, {"flaky": "/flaky", "steady": "/steady"})
        event_ids = await emit(db_url, 20)
        steady_done = lambda: len(receiver.ok("/steady")) >= 20  # noqa: E731
        async with notifier(db_url, cfg) as running:
            await receiver.wait_for(lambda: len(receiver.ok("/flaky")) >= 20)
            metrics = running.dispatcher.metrics
        exactly_once_in_order(receiver, "/steady", event_ids)
        exactly_once_in_order(receiver, "/flaky", event_ids)
        assert any(r.status == 503 for r in receiver.requests)
        assert metrics.deliveries.labels("flaky", "delivered")._value.get() == 20
        assert metrics.delivery_attempts.labels("flaky", "transient")._value.get() >= 1
    db = Database(db_url)
    async with db.connect() as conn:
        rows = await store.list_deliveries(conn, target="channel:flaky", limit=100)
        first = next(r for r in rows if r.event == event_ids[0])
        attempts = await store.list_attempts(conn, first.id)
    await db.close()
    assert {r.state for r in rows} == {"delivered"}
    assert [a.outcome for a in attempts][-1] == "delivered"
    assert len(attempts) == first.attempts >= 2  # every attempt is recorded
    assert attempts[0].status == 503


async def test_4xx_is_permanent_but_408_429_and_5xx_are_retried_until_given_up(
    db_url: str,
) -> None:
    seen: dict[str, int] = {}

    def answer(_n: int, path: str) -> int:
        seen[path] = seen.get(path, 0) + 1
        return {"/gone": 404, "/busy": 429 if seen[path] <= 2 else 200, "/down": 503}[path]

    async with HttpReceiver(answer) as receiver:
        cfg = config(
            receiver.url,
            {"gone": "/gone", "busy": "/busy", "down": "/down"},
            "retry: {first: 20ms, max: 80ms, give_up_after: 600ms}",
        )
        [event] = await emit(db_url, 1)
        async with notifier(db_url, cfg) as running:
            db = running.dispatcher.db

            async def settled() -> bool:
                async with db.connect() as conn:
                    rows = await store.list_deliveries(conn, event=event)
                return {r.state for r in rows} == {"delivered", "failed"} and len(rows) == 3

            await poll_until(settled)
            async with db.connect() as conn:
                rows = {r.target: r for r in await store.list_deliveries(conn, event=event)}
    assert len([r for r in receiver.requests if r.path == "/gone"]) == 1  # never retried
    assert rows["channel:gone"].state == "failed"
    assert rows["channel:gone"].last_error is not None
    assert rows["channel:gone"].last_error.startswith("HTTP 404")
    assert rows["channel:busy"].state == "delivered"
    assert rows["channel:busy"].attempts == 3
    assert rows["channel:down"].attempts >= 2
    assert (rows["channel:down"].last_error or "").startswith("gave up after")


async def test_events_suppressed_by_maintenance_are_recorded_but_never_sent(db_url: str) -> None:
    async with HttpReceiver() as receiver:
        cfg = config(receiver.url, {"ops": "/ops"})
        [quiet] = await emit(db_url, 1, suppressed={"maintenance": "w1"})
        [loud] = await emit(db_url, 1)
        async with notifier(db_url, cfg) as running:
            rows: dict[str, str] = {}

            async def settled() -> bool:
                async with running.dispatcher.db.connect() as conn:
                    rows.update({r.event: r.state for r in await store.list_deliveries(conn)})
                return rows.get(loud) == "delivered"

            await poll_until(settled)
            suppressed = running.dispatcher.metrics.deliveries.labels("ops", "suppressed")
            assert suppressed._value.get() == 1
    assert [r.json()["id"] for r in receiver.requests] == [loud]
    assert rows == {quiet: "suppressed", loud: "delivered"}


async def test_several_instances_share_the_queues_and_deliver_each_event_once(
    db_url: str,
) -> None:
    async with HttpReceiver() as receiver:
        channels = {f"c{n}": f"/c{n}" for n in range(6)}
        cfg = config(receiver.url, channels)
        event_ids = await emit(db_url, 30)
        async with notifier(db_url, cfg) as one, notifier(db_url, cfg):
            await receiver.wait_for(lambda: len(receiver.requests) >= 180)
            await asyncio.sleep(0)
            owner = one.dispatcher.owner
        assert owner
        for path in channels.values():
            exactly_once_in_order(receiver, path, event_ids)
        assert len(receiver.requests) == 180  # no duplicates at all without a crash


def test_a_cursor_remembers_missing_sequence_numbers_for_a_while() -> None:
    cursor = Cursor("dispatch", 10)
    moved = advanced(cursor, [11, 13, 14], now=1_000, gap_ttl=5_000)
    assert (moved.seq, moved.gaps) == (14, {12: 1_000})
    filled = advanced(moved, [12, 15], now=2_000, gap_ttl=5_000)
    assert (filled.seq, filled.gaps) == (15, {})
    forgotten = advanced(moved, [], now=7_000, gap_ttl=5_000)
    assert (forgotten.seq, forgotten.gaps) == (14, {})


@pytest.mark.parametrize("count", [0])
def test_nothing_to_do_is_cheap(count: int) -> None:
    assert advanced(Cursor("x", 5), [], 0, 1) == Cursor("x", 5)
