"""The console's overview at 10,000 monitors, and its live state over Server-Sent Events.

    python bench/console.py [--requests 100] [--seconds 10] [--idle 400]

`uptally serve` runs as a real process (probe off) on a database with 10,000 monitors, their
last 24 h of hourly rollups and 30 days of outages. Measured over real HTTP on 127.0.0.1:

- the overview's time to answer (sequential requests, so it is the server's time plus a
  loopback round trip): page 1, a page deep in the list, a state filter, a search; against the
  admin API's page of 100 monitors (/api/v1/monitors?limit=100) in the same run;
- while an agent pushes 1,000 state changes a second (POST /api/v1/probes/results, each
  result flips a monitor between up and down), how long a marked change takes from its POST to
  each open console: with 1 console, then with 50 (aim: p99 < 1 s with 50);
- the server's resident memory per idle event stream (aim: < 50 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _support import cpu_seconds, free_port, percentile, table

MONITORS = 10_000
FLIPPING = 2_000  # monitors the agent flips (located at `eu`)
DAY = 86_400_000
HOUR = 3_600_000
EMAIL = "bench@example.com"
PASSWORD = "bench-console-password-7Q"
ADMIN = "bench-admin-token-5Hq2LmZx9Wv4Rt8Ys1Nb"
PROBE = "bench-probe-7Gk2Qx9Lm4Zt1Wv8Rc3Yb6"
RATE = 1_000  # changes per second while consoles listen
TICK_S = 0.1


def config_text() -> str:
    lines = [
        "site: {title: Bench Cloud, timezone: Europe/Berlin}",
        "probe: {enabled: false}",
        "locations: [{name: eu, token_env: BENCH_EU}]",
        "monitors:",
        "  - {id: mark, kind: tcp, host: 127.0.0.1, port: 9, locations: [eu], confirm: 1}",
    ]
    for i in range(MONITORS - 1):
        where = ", locations: [eu], confirm: 1" if i < FLIPPING else ""
        lines.append(
            f"  - {{id: svc-{i:05d}, name: Service {i:05d}, kind: tcp, host: 10.0.{i // 250}.1, "
            f"port: {1000 + i % 250}, tags: [team-{i % 20}]{where}}}"
        )
    lines.append("components:")
    lines += [
        f"  - {{id: c{c:03d}, name: Component {c:03d}, "
        f"monitors: [{', '.join(f'svc-{i:05d}' for i in range(c * 50, c * 50 + 50))}]}}"
        for c in range(min(100, (MONITORS - 1) // 50))
    ]
    return "\n".join(lines) + "\n"


async def seed(config_path: Path, data: Path) -> None:
    """A user, 24 h of hourly rollups for every monitor, 30 days of outages, current states."""
    from uptally.accounts import users
    from uptally.accounts.roles import Role
    from uptally.config import load_config
    from uptally.evaluator import Outage
    from uptally.ids import new_id
    from uptally.results import Result
    from uptally.runtime import Runtime
    from uptally.store import outages as outage_store
    from uptally.store import rollups as rollup_store
    from uptally.store.database import Database, database_url
    from uptally.store.rollups import Rollup

    runtime = Runtime(load_config(config_path), Database(database_url(data)), run_probe=False)
    await runtime.start()
    now = runtime.clock.now_ms()
    rng = random.Random(1)
    ids = [m.id for m in runtime.config.monitors]
    async with runtime.db.begin() as conn:
        await users.create(conn, EMAIL, Role.ADMIN, PASSWORD, "bench", now, runtime.config.console)
        items = []
        for _ in range(500):
            start = now - rng.randint(1, 29) * DAY - rng.randint(0, DAY)
            end = start + rng.randint(60_000, 3 * HOUR)
            items.append(Outage(new_id(start), rng.choice(ids), start, end, True, {}, "timeout"))
        await outage_store.save_outages(runtime.db, conn, items, now)
    for first in range(0, len(ids), 1000):
        rolls = []
        for monitor in ids[first : first + 1000]:
            for h in range(25):
                rollup = Rollup(monitor, "local", now - now % HOUR - h * HOUR)
                for _ in range(6):
                    rollup.add(True, rng.uniform(20, 120))
                rolls.append(rollup)
        async with runtime.db.begin() as conn:
            await rollup_store.save_rollups(runtime.db, conn, rolls)
    for n, monitor in enumerate(ids[:FLIPPING]):  # current states: mostly up, a few down
        ok = n % 97 != 0
        runtime.ingest.submit(Result(f"s{n}", monitor, "eu", now, ok, 30.0, None, ""))
    await runtime.ingest.drained()
    await runtime.stop()


def start_server(config: Path, data: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uptally",
            "serve",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BENCH_EU": PROBE, "UPTALLY_ADMIN_TOKEN": ADMIN},
    )
    assert process.stdout is not None
    while "listening on" not in (line := process.stdout.readline()):
        if not line:
            raise SystemExit("uptally serve did not start")
    return process, f"http://127.0.0.1:{port}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def sign_in(url: str, limit: int = 100) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(limit=limit),
    )
    form = {"email": EMAIL, "password": PASSWORD, "next": "/console/"}
    async with http.post(url + "/console/login", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()
    return http


async def timings(http: aiohttp.ClientSession, url: str, count: int, **kw: object) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        async with http.get(url, **kw) as response:  # type: ignore[arg-type]
            await response.read()
            assert response.status == 200, response.status
        times.append((time.perf_counter() - started) * 1000)
    return times


async def page_times(base: str, count: int) -> list[tuple[str, list[float]]]:
    http = await sign_in(base)
    async with http:
        # the monitor index is built once per config (a page never measured below)
        await timings(http, base + "/console/?page=100", 3)
        headers = {"Authorization": f"Bearer {ADMIN}"}
        found = [
            (
                "baseline: GET /api/v1/monitors?limit=100",
                await timings(http, base + "/api/v1/monitors?limit=100", count, headers=headers),
            )
        ]
        for label, path in (
            ("GET /console/ (page 1 of 100)", "/console/"),
            ("GET /console/?page=60", "/console/?page=60"),
            ("GET /console/?state=down", "/console/?state=down"),
            ("GET /console/?q=service+012", "/console/?q=service+012"),
            ("GET /console/?tag=team-3&page=2", "/console/?tag=team-3&page=2"),
        ):
            found.append((label, await timings(http, base + path, count)))
    return found


class Agent:
    """Pushes RATE state changes a second (each result flips a monitor), and flips `mark`
    every 0.5 s, remembering when each mark flip was sent."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.marks: list[tuple[float, str]] = []  # (sent, state)
        self.sent = 0
        self.failed = 0
        self.committed: list[float] = []  # ms from sending a mark's POST to its answer
        self._ok = [True] * FLIPPING

    async def run(self, seconds: float) -> None:
        from uptally.ids import new_id

        headers = {"Authorization": f"Bearer {PROBE}"}
        per_tick = int(RATE * TICK_S)
        cursor = 0
        stop = time.monotonic() + seconds
        next_tick = time.monotonic()
        next_mark = time.monotonic()
        slots = asyncio.Semaphore(8)
        posts: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < stop:
                now = int(time.time() * 1000)
                results = []
                for k in range(per_tick):
                    index = (cursor + k) % FLIPPING
                    self._ok[index] = not self._ok[index]
                    results.append(
                        {
                            "id": new_id(now),
                            "monitor": f"svc-{index:05d}",
                            "at": now,
                            "ok": self._ok[index],
                            "latency_ms": 20.0,
                        }
                    )
                cursor += per_tick
                mark = None
                if time.monotonic() >= next_mark:
                    next_mark += 0.5
                    mark = "down" if len(self.marks) % 2 == 0 else "up"
                    results.append(
                        {"id": new_id(now), "monitor": "mark", "at": now, "ok": mark == "up"}
                    )
                body = {"location": "eu", "sent_at": now, "results": results}
                # Sent without waiting for the answer (at most 8 in flight): the rate holds
                # even when a POST takes longer than a tick.
                await slots.acquire()
                if mark is not None:
                    self.marks.append((time.monotonic(), mark))
                post = self._post(http, body, headers, per_tick, slots, mark is not None)
                posts.add(asyncio.create_task(post))
                posts = {p for p in posts if not p.done()}
                next_tick += TICK_S
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            await asyncio.gather(*posts)

    async def _post(
        self,
        http: aiohttp.ClientSession,
        body: dict[str, object],
        headers: dict[str, str],
        flips: int,
        slots: asyncio.Semaphore,
        marked: bool,
    ) -> None:
        started = time.monotonic()
        try:
            async with http.post(
                self.base + "/api/v1/probes/results", json=body, headers=headers
            ) as r:
                if r.status == 200:
                    self.sent += flips
                    if marked:  # answered once written: ingest's own latency
                        self.committed.append((time.monotonic() - started) * 1000)
                else:
                    self.failed += 1
        finally:
            slots.release()


async def console(
    http: aiohttp.ClientSession,
    base: str,
    seen: list[tuple[float, str]],
    ready: asyncio.Event,
    counted: list[int] | None,
    resyncs: list[int],
) -> None:
    """One open console: when `mark` was seen in each state (and how many changes arrived)."""
    timeout = aiohttp.ClientTimeout(total=None)
    async with http.get(base + "/console/events", timeout=timeout) as response:
        event = ""
        async for raw in response.content:
            line = raw.decode()
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "ready":
                    ready.set()
                elif event == "resync":
                    resyncs[0] += 1
            elif line.startswith("data:") and event == "states":
                at = time.monotonic()
                seen.extend(
                    (at, state) for state in ("down", "up") if f'"mark":{{"state":"{state}"' in line
                )
                if counted is not None:
                    counted[0] += line.count('{"state"')


def delays(marks: list[tuple[float, str]], seen: list[tuple[float, str]]) -> list[float]:
    """For each mark flip: ms from its POST until this console first saw that state after it."""
    found = []
    for sent, state in marks:
        first = next((at for at, s in seen if s == state and at >= sent), None)
        if first is not None:
            found.append((first - sent) * 1000)
    return found


async def delivery(base: str, pid: int, consoles: int, seconds: float) -> dict[str, float]:
    http = await sign_in(base, limit=0)
    async with http:
        seen: list[list[tuple[float, str]]] = [[] for _ in range(consoles)]
        readies = [asyncio.Event() for _ in range(consoles)]
        counted, resyncs = [0], [0]
        tasks = [
            asyncio.create_task(
                console(http, base, seen[n], readies[n], counted if n == 0 else None, resyncs)
            )
            for n in range(consoles)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        agent = Agent(base)
        started, cpu = time.monotonic(), cpu_seconds(pid)
        await agent.run(seconds)
        await asyncio.sleep(1.5)  # the last flips arrive
        elapsed = time.monotonic() - started
        cpu = (cpu_seconds(pid) - cpu) / elapsed
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    marks = agent.marks[:-1]  # the last one may not have arrived by the end
    all_delays = [d for n in range(consoles) for d in delays(marks, seen[n])]
    expected = len(marks) * consoles
    return {
        "p50": percentile(all_delays, 0.50),
        "p99": percentile(all_delays, 0.99),
        "max": max(all_delays, default=float("nan")),
        "seen": len(all_delays) / expected if expected else float("nan"),
        "sent_rate": agent.sent / seconds,
        "change_rate": counted[0] / elapsed,
        "failed": agent.failed,
        "resyncs": resyncs[0],
        "cpu": cpu,
        "post_p50": percentile(agent.committed, 0.5),
        "post_p99": percentile(agent.committed, 0.99),
    }


async def idle_cost(base: str, pid: int, connections: int) -> tuple[int, int, float]:
    """RSS before and after opening `connections` idle event streams; KiB per stream."""
    http = await sign_in(base, limit=0)
    async with http:
        await asyncio.sleep(1)
        before = rss_kib(pid)
        readies = [asyncio.Event() for _ in range(connections)]
        tasks = [
            asyncio.create_task(console(http, base, [], readies[n], None, [0]))
            for n in range(connections)
        ]
        await asyncio.gather(*(r.wait() for r in readies))
        await asyncio.sleep(2)
        after = rss_kib(pid)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return before, after, (after - before) / connections


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100, help="per overview variant")
    parser.add_argument("--seconds", type=float, default=10.0, help="per delivery run")
    parser.add_argument("--idle", type=int, default=400, help="idle streams for the RSS cost")
    parser.add_argument("--monitors", type=int, default=10_000)
    args = parser.parse_args()
    global MONITORS
    MONITORS = args.monitors
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-console-"))
    config = directory / "console.yaml"
    config.write_text(config_text())
    data = directory / "data"
    began = time.monotonic()
    asyncio.run(seed(config, data))
    print(f"seeded {MONITORS} monitors in {time.monotonic() - began:.0f} s", flush=True)
    process, base = start_server(config, data)
    try:
        pages = asyncio.run(page_times(base, args.requests))
        idle = asyncio.run(idle_cost(base, process.pid, args.idle))
        one = asyncio.run(delivery(base, process.pid, 1, args.seconds))
        fifty = asyncio.run(delivery(base, process.pid, 50, args.seconds))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(120)
    print(f"\noverview at {MONITORS} monitors, {args.requests} sequential requests each\n")
    baseline = percentile(pages[0][1], 0.5)
    rows: list[tuple[str, ...]] = [("", "first ms", "p50 ms", "p99 ms", "p50 / baseline")]
    for label, times in pages:
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        rows.append((label, f"{times[0]:.1f}", f"{p50:.1f}", f"{p99:.1f}", f"{p50 / baseline:.2f}"))
    print(table(rows))
    print(
        "aim: p50 < 150 ms, p99 < 400 ms (first: the first request of each, before the shared "
        "uptime, latency and order caches hold what it shows)\n"
    )
    print(
        f"state changes to open consoles over SSE, {args.seconds:.0f} s each; the agent posted "
        f"{one['sent_rate']:.0f} and {fifty['sent_rate']:.0f} flips/s; changes/s: as the first "
        "console received them\n"
    )
    rows = [
        ("", "p50 ms", "p99 ms", "max ms", "seen", "changes/s", "resyncs", "server CPU"),
    ]
    for label, run in (("1 console (baseline)", one), ("50 consoles", fifty)):
        rows.append(
            (
                label,
                f"{run['p50']:.0f}",
                f"{run['p99']:.0f}",
                f"{run['max']:.0f}",
                f"{run['seen']:.0%}",
                f"{run['change_rate']:.0f}",
                f"{run['resyncs']:.0f}",
                f"{run['cpu']:.0%}",
            )
        )
    for label, run in (("  its POST answered (written), 1", one), ("  ... with 50", fifty)):
        rows.append((label, f"{run['post_p50']:.0f}", f"{run['post_p99']:.0f}", *[""] * 5))
    print(table(rows))
    print(f"p99 with 50 / with 1: {fifty['p99'] / one['p99']:.2f}; aim: p99 < 1000 ms with 50\n")
    before, after, per = idle
    print(
        f"idle event streams: RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB with "
        f"{args.idle} open: {per:.1f} KiB each (aim: < 50 KiB)"
    )


if __name__ == "__main__":
    main()
