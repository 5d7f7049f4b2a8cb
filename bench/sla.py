"""The SLA ledger: a month's report and a month's latency percentiles, at scale.

    python bench/sla.py [--components 1000] [--monitors 1000]

Report: 1,000 components (2 monitors each) with 10 outages each, 50 maintenance windows and
100 customers on plans, for one month, on SQLite: the report computed in memory and end to
end (loading outages and windows from the database). Aim < 1 s. The reference is per-minute
sampling (is any outage of the component open at this minute, outside maintenance?), measured
on 10 components and scaled: slower, and only approximately right.

Latency: a month (720 hourly rollups) of 1-minute checks on 1,000 monitors, each rollup with a
log-bucket histogram: p50/p95/p99 per monitor from the rollups, end to end from SQLite. Aim
< 1 s. The reference is exact percentiles from the raw latencies (43,200 per monitor, what
sorting results would cost), measured on 20 monitors and scaled; the rollup estimate's error
against it is reported too (bound: ±4.4 %).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from _support import table
from uptally import histogram
from uptally.config import parse_config
from uptally.sla.latency import ERROR_BOUND, summarize
from uptally.sla.periods import parse_period
from uptally.sla.report import build_report
from uptally.store import sla as sla_store
from uptally.store.database import Database

M = 60_000
H = 60 * M
PERIOD = "2026-03"
ZONE = "Europe/Berlin"


def config_text(components: int, monitors_for_latency: int) -> str:
    lines = [f"site: {{timezone: {ZONE}}}", "monitors:"]
    lines += [
        f"  - {{id: m{i:04d}, kind: http, url: 'http://127.0.0.1:9/'}}"
        for i in range(max(2 * components, monitors_for_latency))
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:04d}, monitors: [m{2 * i:04d}, m{2 * i + 1:04d}]}}"
        for i in range(components)
    ]
    lines += [
        "sla:",
        "  policies:",
        "    - id: scale",
        "      target: 99.9",
        "      credits:",
        "        - {below: 99.9, credit: 10}",
        "        - {below: 99.0, credit: 25}",
        "        - {below: 95.0, credit: 70}",
        "  plans:",
        "    - {id: free}",
        "    - {id: scale, policy: scale, fee: 499, currency: EUR}",
        "  customers:",
    ]
    rng = random.Random(1)
    for i in range(100):
        if i % 10 == 0:
            lines.append(f"    - {{id: k{i:03d}, plan: free}}")
            continue
        chosen = sorted(rng.sample(range(components), 20))
        names = ", ".join(f"c{c:04d}" for c in chosen)
        lines.append(f"    - {{id: k{i:03d}, plan: scale, components: [{names}]}}")
    return "\n".join(lines) + "\n"


def fill_outages(path: Path, components: int, start: int, end: int) -> list[tuple[int, int, str]]:
    """10 outages per component (on either monitor, some overlapping) and 50 windows."""
    rng = random.Random(2)
    rows = []
    made: list[tuple[int, int, str]] = []
    for c in range(components):
        for k in range(10):
            monitor = f"m{2 * c + rng.randrange(2):04d}"
            begin = rng.randrange(start - 2 * H, end)
            length = int(rng.expovariate(1 / (20 * M)))
            verified = rng.random() > 0.1
            rows.append(
                (
                    f"o{c}-{k}",
                    monitor,
                    None,
                    begin,
                    begin + length,
                    verified,
                    "{}",
                    "",
                    "detected",
                    0,
                    0,
                )
            )
            made.append((begin, begin + length, monitor))
    windows = []
    for w in range(50):
        begin = rng.randrange(start, end)
        covered = json.dumps([f"c{rng.randrange(components):04d}" for _ in range(5)])
        windows.append(
            (
                f"w{w}",
                None,
                "api",
                "maintenance",
                "",
                "completed",
                begin,
                begin + 2 * H,
                begin,
                begin + 2 * H,
                covered,
                "[]",
                False,
                0,
                0,
                "bench",
            )
        )
    with sqlite3.connect(path) as db:
        db.executemany("INSERT INTO outages VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.executemany(
            "INSERT INTO maintenance_windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", windows
        )
    return made


def hour_histograms(rng: random.Random, variants: int = 400) -> list[dict[int, int]]:
    """Hourly histograms of 60 checks with a log-normal latency around 80 ms."""
    pool = []
    for _ in range(variants):
        counts: dict[int, int] = {}
        for _ in range(60):
            histogram.add(counts, rng.lognormvariate(math.log(80), 0.35))
        pool.append(counts)
    return pool


def fill_rollups(path: Path, monitors: int, start: int, hours: int) -> list[dict[int, int]]:
    rng = random.Random(3)
    pool = hour_histograms(rng)
    texts = [json.dumps(histogram.encode(h), separators=(",", ":")) for h in pool]
    with sqlite3.connect(path) as db:
        for m in range(monitors):
            rows = []
            for hour in range(hours):
                i = rng.randrange(len(pool))
                rows.append((f"m{m:04d}", "local", start + hour * H, 60, 0, 0.0, 0.0, texts[i]))
            db.executemany("INSERT INTO rollups VALUES (?,?,?,?,?,?,?,?)", rows)
    return pool


def faster(reference: float, measured: float) -> str:
    return f"{reference / measured:.0f}x faster"


def sampled_downtime(
    outages: list[tuple[int, int, str]], windows: list[tuple[int, int]], start: int, end: int
) -> int:
    """Per-minute sampling: minutes at whose start an outage is open outside maintenance."""
    down = 0
    for minute in range(start, end, M):
        if any(a <= minute < b for a, b in windows):
            continue
        if any(a <= minute < b for a, b, _ in outages):
            down += 1
    return down


async def bench(components: int, latency_monitors: int) -> None:
    config = parse_config(config_text(components, latency_monitors))
    period = parse_period(PERIOD, ZONE)
    now = period.end + H
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-sla-"))
    path = directory / "uptally.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    made = fill_outages(path, components, period.start, period.end)

    started = time.perf_counter()
    async with db.connect() as conn:
        inputs = await sla_store.load_inputs(conn, config, period.start, period.end)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    report = build_report(config, period, inputs, now)
    computed = time.perf_counter() - started
    assert len(report.rows) == components
    assert len(report.customers) == 100

    sample = 10
    by_monitor: dict[str, list[tuple[int, int, str]]] = {}
    verified = {(s.outage.monitor, s.outage.start) for s in inputs.outages if s.outage.verified}
    for begin, stop, monitor in made:
        if (monitor, begin) in verified:
            by_monitor.setdefault(monitor, []).append((begin, stop, monitor))
    chosen = config.components[:sample]
    spans = {
        c.id: [s for w in inputs.windows if c.id in w.components and (s := w.span())]
        for c in chosen
    }
    own = {c.id: [o for m in c.monitors for o in by_monitor.get(m, [])] for c in chosen}
    started = time.perf_counter()
    sampled = [sampled_downtime(own[c.id], spans[c.id], period.start, period.end) for c in chosen]
    naive = (time.perf_counter() - started) / sample * components
    exact = [float(report.rows[i].availability.downtime_ms) / M for i in range(sample)]
    worst = max(abs(a - b) for a, b in zip(sampled, exact, strict=True))

    print(f"\nMonthly report: {components} components x 10 outages, 50 windows, 100 customers")
    print(
        table(
            [
                ("", "seconds", "vs sampling"),
                ("load from SQLite", f"{loaded:.3f}", ""),
                ("compute (exact intervals)", f"{computed:.3f}", faster(naive, computed)),
                ("end to end", f"{loaded + computed:.3f}", faster(naive, loaded + computed)),
                ("per-minute sampling (scaled from 10)", f"{naive:.2f}", "1x"),
            ]
        )
    )
    print(f"sampling error on those 10 components: up to {worst:.2f} minutes per month")

    hours = 720
    started_fill = time.perf_counter()
    pool = fill_rollups(path, latency_monitors, period.start, hours)
    filled = time.perf_counter() - started_fill
    wanted = [f"m{m:04d}" for m in range(latency_monitors)]
    started = time.perf_counter()
    async with db.connect() as conn:
        merged = await sla_store.latency_histograms(conn, wanted, period.start, period.end)
    hourly = time.perf_counter() - started
    started = time.perf_counter()
    days = await sla_store.compact_latency(db, period.end + 9 * 86_400_000, max_days=40)
    compacting = (time.perf_counter() - started) / max(days, 1)
    started = time.perf_counter()
    async with db.connect() as conn:
        merged = await sla_store.latency_histograms(conn, wanted, period.start, period.end)
    fetched = time.perf_counter() - started
    started = time.perf_counter()
    summaries = {m: summarize(h) for m, h in merged.items()}
    summarized = time.perf_counter() - started
    assert len(summaries) == latency_monitors
    assert all(s.count == hours * 60 for s in summaries.values())

    # the reference: raw latencies, sorted, for a few monitors (the same distributions)
    rng = random.Random(4)
    sample = 20
    started = time.perf_counter()
    errors = []
    for _ in range(sample):
        raw = []
        counts: dict[int, int] = {}
        for _ in range(hours):
            hour = [rng.lognormvariate(math.log(80), 0.35) for _ in range(60)]
            raw.extend(hour)
        raw.sort()
        exact = raw[math.ceil(0.99 * len(raw)) - 1]
        for value in raw:
            histogram.add(counts, value)
        estimate = summarize(counts).p99 or 0.0
        errors.append(abs(estimate - exact) / exact)
    raw_seconds = (time.perf_counter() - started) / sample * latency_monitors
    del pool
    print(
        f"\nLatency percentiles: {latency_monitors} monitors x {hours} hourly rollups "
        f"(a month of 1-minute checks), SQLite"
    )
    print(
        table(
            [
                ("", "seconds", "vs raw"),
                ("from hourly rollups only", f"{hourly:.3f}", faster(raw_seconds, hourly)),
                ("read and merge days and edge hours", f"{fetched:.3f}", ""),
                ("p50/p95/p99 from histograms", f"{summarized:.3f}", ""),
                (
                    "end to end",
                    f"{fetched + summarized:.3f}",
                    faster(raw_seconds, fetched + summarized),
                ),
                ("exact from raw latencies (scaled from 20)", f"{raw_seconds:.2f}", "1x"),
            ]
        )
    )
    print(
        f"p99 error of the estimate: up to {max(errors) * 100:.2f} % "
        f"(bound {ERROR_BOUND * 100:.1f} %); compacting one settled day (background, once a "
        f"day) took {compacting:.3f} s; filling the rollups took {filled:.1f} s"
    )
    await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=1000)
    parser.add_argument("--monitors", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(bench(args.components, args.monitors))


if __name__ == "__main__":
    main()
