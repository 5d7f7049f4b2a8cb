"""Outbox dispatch: deliveries per second to a local webhook receiver with 10 channels, and the
latency from a state change to its delivery.

    python bench/outbox.py [--events 2000] [--rate 50] [--skip-pg]

Throughput: --events events are in the outbox; the notifier (the same code as `uptally serve`)
fans each out to 10 webhook channels (nginx on 127.0.0.1 as the receiver) and delivers every
one, in order per channel, recording each attempt. Reported: deliveries/s (POSTs answered and
recorded) and events/s (each delivered to all 10 channels). Reference measured in the same run:
the receiver driven by a plain aiohttp client over 10 sequential connections, as the dispatcher
has one in-order queue per channel. Aim: >= 2,000 deliveries/s on SQLite.

Latency: a full runtime; events enter through the writer (as a state change would) at --rate
per second for 5 s; for each delivery, the time from the event to the receiver's answer.
Aim: p99 < 1 s with a healthy receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from _support import nginx, percentile, table
from uptally.clock import SystemClock
from uptally.config import parse_config
from uptally.config.schema import Config
from uptally.events import Event, EventKind
from uptally.ingest.writer import Work
from uptally.metrics import Metrics
from uptally.notify.service import Notifier
from uptally.runtime import Runtime
from uptally.store import outbox
from uptally.store.database import Database

CHANNELS = 10
PG_ADMIN = os.environ.get("UPTALLY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def config(port: int) -> Config:
    lines = [
        "site: {title: bench}",
        "probe: {enabled: false}",
        "notifications:",
        "  channels:",
    ]
    lines += [
        f'    - {{id: c{n}, url: "webhook+http://127.0.0.1:{port}/c{n}", events: ["*"]}}'
        for n in range(CHANNELS)
    ]
    return parse_config("\n".join(lines) + "\n", "bench.yaml")


def events(count: int) -> list[Event]:
    now = SystemClock().now_ms()
    payload = {"monitor": "api", "locations": ["local", "eu-west"], "reason": "timeout"}
    return [Event(EventKind.MONITOR_DOWN, now, "api", {**payload, "n": n}) for n in range(count)]


async def delivered(db: Database) -> int:
    async with db.connect() as conn:
        result = await conn.exec_driver_sql(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'"
        )
        return int(result.scalar() or 0)


async def wait_delivered(db: Database, expected: int, timeout: float = 600) -> None:
    async with asyncio.timeout(timeout):
        while await delivered(db) < expected:
            await asyncio.sleep(0.05)


async def reference(port: int, seconds: float = 3.0) -> float:
    """Requests/s the receiver answers for a plain client with 10 sequential connections."""
    body = b'{"id":"x","event":"monitor.down","at":"2026-01-01T00:00:00.000Z","data":{}}'
    stop = time.perf_counter() + seconds
    done = 0

    async def loop(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with session.post(f"http://127.0.0.1:{port}/c{n}", data=body) as response:
                await response.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(loop(session, n) for n in range(CHANNELS)))
        return done / (time.perf_counter() - started)


async def throughput(url: str, port: int, count: int) -> tuple[float, float]:
    db = Database(url)
    await db.migrate()
    async with db.begin() as conn:
        await outbox.append_events(conn, events(count), SystemClock().now_ms())
    cfg = config(port)
    notifier = Notifier(db, SystemClock(), Metrics(), lambda: cfg, lambda: None)
    started = time.perf_counter()
    task = asyncio.create_task(notifier.run())
    await wait_delivered(db, count * CHANNELS)
    took = time.perf_counter() - started
    await notifier.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await db.close()
    return count * CHANNELS / took, count / took


async def latency(url: str, port: int, rate: int, seconds: float = 5.0) -> list[float]:
    runtime = Runtime(config(port), Database(url), metrics=Metrics(), run_probe=False)
    await runtime.start()
    sent = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        due = int((time.perf_counter() - started) * rate)
        if sent < due:
            runtime.ingest.submit_work(Work(events=events(due - sent)))
            sent = due
        await asyncio.sleep(0.005)
    await wait_delivered(runtime.db, sent * CHANNELS)
    async with runtime.db.connect() as conn:
        rows = await conn.exec_driver_sql(
            "SELECT d.delivered_at - o.at FROM deliveries d JOIN outbox o ON o.id = d.event"
        )
        took = [float(r[0]) for r in rows]
    await runtime.stop()
    return took


async def pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"uptally_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"postgresql+asyncpg://{base}/{name}", name


async def drop_pg(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=50, help="events/s for the latency run")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    rows = [("", "deliveries/s", "events/s", "latency p50", "latency p99")]
    with nginx() as (port, _pids):
        raw = await reference(port)
        rows.append(("receiver, plain client (reference)", f"{raw:,.0f}", "", "", ""))
        kinds = ["sqlite"] if args.skip_pg else ["sqlite", "postgresql"]
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix="uptally-bench-outbox-") as directory:
                if kind == "sqlite":
                    urls = [f"sqlite+aiosqlite:///{directory}/{n}.db" for n in range(2)]
                    names: list[str] = []
                else:
                    made = [await pg_database() for _ in range(2)]
                    urls, names = [u for u, _ in made], [n for _, n in made]
                try:
                    per_delivery, per_event = await throughput(urls[0], port, args.events)
                    took = await latency(urls[1], port, args.rate)
                finally:
                    for name in names:
                        await drop_pg(name)
            rows.append(
                (
                    f"uptally dispatcher, {kind}",
                    f"{per_delivery:,.0f}",
                    f"{per_event:,.0f}",
                    f"{percentile(took, 0.5):,.0f} ms",
                    f"{percentile(took, 0.99):,.0f} ms",
                )
            )
            print(f"{kind}: {len(took)} deliveries timed at {args.rate} events/s", flush=True)
    print(f"\n{CHANNELS} webhook channels, {args.events} events for throughput\n")
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
