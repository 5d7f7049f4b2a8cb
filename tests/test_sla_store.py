"""Loading the ledger's inputs from a real database: latency from rollups and compacted days."""

from __future__ import annotations

import random

from uptally import histogram
from uptally.sla.periods import parse_period
from uptally.store import rollups as rollup_store
from uptally.store import sla as sla_store
from uptally.store.database import Database
from uptally.store.rollups import HOUR_MS, Rollup

DAY = 24 * HOUR_MS


async def test_compacted_days_give_the_same_histograms_as_hourly_rollups(db: Database) -> None:
    rng = random.Random(5)
    march = parse_period("2026-03", "Europe/Berlin")  # starts 2026-02-28T23:00Z
    rows = []
    for monitor in ("a", "b"):
        for location in ("local", "eu"):
            for hour in range(march.start - 5 * HOUR_MS, march.start + 12 * DAY, HOUR_MS):
                rollup = Rollup(monitor, location, hour)
                for _ in range(rng.randrange(1, 8)):
                    rollup.add(True, rng.lognormvariate(4, 0.5))
                rows.append(rollup)
    async with db.begin() as conn:
        await rollup_store.save_rollups(db, conn, rows)
    start, end = march.start, march.start + 10 * DAY + 7 * HOUR_MS

    def expected(monitor: str) -> dict[int, int]:
        return histogram.merge(
            r.histogram for r in rows if r.monitor == monitor and start <= r.hour < end
        )

    async with db.connect() as conn:
        hourly = await sla_store.latency_histograms(conn, ["a", "b", "c"], start, end)
    assert hourly == {"a": expected("a"), "b": expected("b")}
    now = march.start + 30 * DAY
    # every day from the first rollup (Feb 28) to 8 days before now, empty ones too
    assert await sla_store.compact_latency(db, now, max_days=100) == 22
    assert await sla_store.compact_latency(db, now) == 0  # nothing settled is left
    async with db.connect() as conn:
        compacted = await sla_store.latency_histograms(conn, ["a", "b"], start, end)
        whole_days = await sla_store.latency_histograms(
            conn, ["a"], march.start + 23 * HOUR_MS, march.start + 23 * HOUR_MS + 2 * DAY
        )
    assert compacted == hourly
    assert sum(whole_days["a"].values()) == sum(
        sum(r.histogram.values())
        for r in rows
        if r.monitor == "a" and march.start + 23 * HOUR_MS <= r.hour < march.start + 71 * HOUR_MS
    )


async def test_compaction_waits_until_days_are_settled(db: Database) -> None:
    day = 1_767_225_600_000  # 2026-01-01
    async with db.begin() as conn:
        await rollup_store.save_rollups(
            db, conn, [Rollup("a", "local", day + HOUR_MS, 1, 0, 5.0, 5.0, {12: 1})]
        )
    assert await sla_store.compact_latency(db, day + 5 * DAY) == 0
    assert await sla_store.compact_latency(db, day + 9 * DAY) == 1
    async with db.connect() as conn:
        found = await sla_store.latency_histograms(conn, ["a"], day, day + DAY)
    assert found == {"a": {12: 1}}
