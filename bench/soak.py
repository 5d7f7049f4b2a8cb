"""Soak: N monitors on a real `uptally serve` for M minutes; RSS over time, lateness, outages.

    python bench/soak.py --monitors 10000 --minutes 30 --backend sqlite|postgresql

`serve` runs as a real process (PostgreSQL: a database of its own, created on the server named
by UPTALLY_TEST_PG and dropped afterwards). Most monitors (HTTP and TCP, intervals 30-60 s,
timeout 5 s) watch nginx on 127.0.0.1, which stays up. A few watch targets of this benchmark
that go down (connection refused) and come back on a fixed schedule, so real outages happen.

Every few seconds the resident set size (RSS) of the serve process is read from /proc. The
baseline is the RSS right after start-up (monitors loaded and scheduled); growth is measured
from the end of the warm-up to the end. At the end the outages are read back through the API
(`/api/v1/outages`, from the database) and matched with the targets' schedule:

  * expected: down windows long enough to be confirmed (two failed checks);
  * detected: expected windows with a recorded outage; missed: those without;
  * false: outages the schedule does not explain (a steady target, or a second outage within
    one window). Must be 0.

Scheduling lateness (how late checks start after they are due) is the p99 of
`uptally_scheduler_lateness_seconds` over the measured window (read from /metrics).

Exit 1 when RSS grew more than --max-growth-mib or --max-growth-pct after the warm-up, on any
false or missed outage, or when serve died.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port, nginx, table

TOKEN = "soak-admin-token"
FLAP_TARGETS = 4  # targets that go down and up
FLAP_MONITORS = 10  # monitors per such target (half HTTP, half TCP)
FLAP_INTERVAL_S = 30
FLAP_DOWN_S = 90  # > interval + retry + timeout: always confirmed (confirm: 2)
FLAP_PERIOD_S = 300
FLAP_FIRST_S = 90  # the first target goes down this long after start; the others follow
SLACK_S = 45  # an outage matches a window it overlaps, widened by this on both ends
HTTP_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{'status':'UP'}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Flapper:
    """A TCP/HTTP target that refuses connections during its down windows."""

    index: int
    start: float  # wall clock, s
    port: int = field(default_factory=free_port)
    windows: list[tuple[float, float]] = field(default_factory=list)
    server: asyncio.Server | None = None

    def plan(self, end: float) -> None:
        at = self.start + FLAP_FIRST_S + self.index * (FLAP_PERIOD_S / FLAP_TARGETS)
        while at < end:
            self.windows.append((at, at + FLAP_DOWN_S))
            at += FLAP_PERIOD_S

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", self.port)

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def run(self) -> None:
        for begin, finish in self.windows:
            await asyncio.sleep(max(0.0, begin - time.time()))
            await self.down()
            await asyncio.sleep(max(0.0, finish - time.time()))
            await self.up()

    @staticmethod
    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.read(4096), 5)
            writer.write(HTTP_OK)
            await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()


def config_text(monitors: int, nginx_port: int, flappers: list[Flapper], seed: int) -> str:
    rng = random.Random(seed)
    lines = ["site: {title: soak}", "probe: {concurrency: 1000}", "monitors:"]
    lines.extend(
        _monitor(f"flap{f.index}-{j}", j % 2 == 0, f.port, FLAP_INTERVAL_S)
        for f in flappers
        for j in range(FLAP_MONITORS)
    )
    for i in range(monitors - FLAP_TARGETS * FLAP_MONITORS):
        interval = rng.choice((30, 45, 60))
        lines.append(_monitor(f"steady-{i:05d}", rng.random() < 0.7, nginx_port, interval))
    return "\n".join(lines) + "\n"


def _monitor(key: str, http: bool, port: int, interval: int) -> str:
    common = f"interval: {interval}s, timeout: 5s, retry_interval: 10s, confirm: 2"
    if http:
        return (
            f"  - {{id: {key}, kind: http, url: 'http://127.0.0.1:{port}/health/{key}', {common}, "
            "expect: ['status == 200']}"
        )
    return f"  - {{id: {key}, kind: tcp, host: 127.0.0.1, port: {port}, {common}}}"


LATENESS = re.compile(r'^uptally_scheduler_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)
CHECKS = re.compile(r"^uptally_checks_total\{[^}]*\} (\S+)$", re.M)


async def scrape(
    session: aiohttp.ClientSession, url: str
) -> tuple[list[tuple[float, float]], float]:
    """(lateness buckets as (upper bound, cumulative count), checks run) from /metrics."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    buckets = [(float(le), float(count)) for le, count in LATENESS.findall(text)]
    return buckets, sum(float(v) for v in CHECKS.findall(text))


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> str:
    """The upper bound of the histogram bucket holding quantile q of what was observed between
    two scrapes (what Prometheus' histogram_quantile bounds)."""
    counts = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = counts[-1][1] if counts else 0
    if total <= 0:
        return "n/a"
    for le, cumulative in counts:
        if cumulative >= q * total:
            return "> 60 s" if le == float("inf") else f"<= {le * 1000:g} ms"
    return "n/a"


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def judge_outages(
    outages: list[dict[str, object]], flappers: list[Flapper], end: float, detect_s: float
) -> tuple[int, int, int, list[str]]:
    """(expected, detected, false, notes) from the outages read back and the schedule."""
    windows = {f"flap{f.index}-{j}": f.windows for f in flappers for j in range(FLAP_MONITORS)}
    expected = detected = false = 0
    notes: list[str] = []
    matched: dict[tuple[str, int], int] = {}
    for outage in outages:
        monitor = str(outage["monitor"])
        start = parse_time(str(outage["start"]))
        stop = parse_time(str(outage["end"])) if outage["end"] else end
        hit = next(
            (
                i
                for i, (begin, finish) in enumerate(windows.get(monitor, []))
                if start <= finish + SLACK_S and stop >= begin - SLACK_S
            ),
            None,
        )
        if hit is None:
            false += 1
            notes.append(f"false outage: {monitor} {outage['start']} .. {outage['end']}")
            continue
        matched[(monitor, hit)] = matched.get((monitor, hit), 0) + 1
        if matched[(monitor, hit)] > 1:
            false += 1
            notes.append(f"split outage: {monitor} {outage['start']} .. {outage['end']}")
    for monitor, monitor_windows in windows.items():
        for i, (begin, finish) in enumerate(monitor_windows):
            if finish + detect_s > end:  # still going, or ended too late to be confirmed
                continue
            expected += 1
            if (monitor, i) in matched:
                detected += 1
            else:
                notes.append(f"missed outage: {monitor} down {begin:.0f}..{finish:.0f}")
    return expected, detected, false, notes


async def read_pages(session: aiohttp.ClientSession, url: str, every: float) -> int:
    """What visitors do: the status page and its JSON summary, every `every` s; and what
    Prometheus does: /metrics (from the start, so that what a scrape keeps between scrapes is
    in the warm-up, not in the growth). Returns how many reads failed."""
    failed = 0
    while True:
        for path in ("/", "/api/v2/summary.json", "/metrics"):
            try:
                async with session.get(url + path) as response:
                    await response.read()
                    failed += response.status != 200
            except (aiohttp.ClientError, TimeoutError):
                failed += 1
        await asyncio.sleep(every)


async def read_outages(session: aiohttp.ClientSession, url: str, since: str) -> list[Any]:
    """Every outage since `since`, from the database through the admin API (a few tries: a
    busy serve may answer 503 for a moment)."""
    for attempt in range(5):
        async with session.get(
            f"{url}/api/v1/outages",
            params={"since": since, "limit": "5000"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            if response.status == 200:
                outages: list[Any] = (await response.json())["outages"]
                if len(outages) >= 5000:
                    raise SystemExit("5,000 outages or more: far more than the schedule explains")
                return outages
            if attempt == 4:
                response.raise_for_status()
        await asyncio.sleep(5)
    raise AssertionError("unreachable")


async def create_pg_database(url: str) -> tuple[str, str]:
    """A database of its own on UPTALLY_TEST_PG's server: (its URL, its name)."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"uptally_soak_{os.getpid()}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name}")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + "/" + name, name


async def drop_pg_database(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def soak(args: argparse.Namespace, nginx_port: int) -> int:
    directory = Path(tempfile.mkdtemp(prefix="uptally-soak-"))
    env = {**os.environ, "UPTALLY_ADMIN_TOKEN": TOKEN}
    env.pop("UPTALLY_DATABASE_URL", None)
    pg: tuple[str, str] | None = None
    if args.backend == "postgresql":
        base = os.environ.get("UPTALLY_TEST_PG")
        if not base:
            raise SystemExit("--backend postgresql needs UPTALLY_TEST_PG=postgresql://…/db")
        pg = await create_pg_database(base)
        env["UPTALLY_DATABASE_URL"] = pg[0]
    run_s = args.minutes * 60
    warmup_s = args.warmup * 60
    start = time.time()
    flappers = [Flapper(i, start) for i in range(FLAP_TARGETS)]
    for flapper in flappers:
        await flapper.up()  # up until the run begins; then down and up on their schedule
    config = directory / "uptally.yaml"
    config.write_text(config_text(args.monitors, nginx_port, flappers, seed=1))
    targets: list[asyncio.Task[None]] = []
    port = free_port()
    command = [sys.executable, "-m", "uptally", "serve", "--config", str(config)]
    command += ["--data-dir", str(directory / "data"), "--port", str(port)]
    command += ["--log-level", "warning"]
    log_file = (directory / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *command, stdout=log_file, stderr=asyncio.subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    samples: list[tuple[float, int]] = []
    code = 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            deadline = time.monotonic() + 300
            while True:
                if process.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"serve did not start:\n{(directory / 'serve.log').read_text()}"
                    )
                try:
                    async with session.get(f"{url}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            began = time.time()
            print(
                f"serve ({args.backend}, {args.monitors} monitors) ready after "
                f"{began - start:.0f} s; soaking {args.minutes:g} min "
                f"(warm-up {args.warmup:.1f} min)",
                flush=True,
            )
            samples.append((0.0, rss_kib(process.pid)))
            for flapper in flappers:
                flapper.start = began
                flapper.plan(began + run_s)
                targets.append(asyncio.create_task(flapper.run()))
            if args.page_every > 0:
                readers = asyncio.create_task(read_pages(session, url, args.page_every))
            measured: tuple[list[tuple[float, float]], float] | None = None
            while time.time() - began < run_s:
                await asyncio.sleep(args.sample)
                if process.returncode is not None:
                    raise SystemExit(
                        f"serve died:\n{(directory / 'serve.log').read_text()[-3000:]}"
                    )
                elapsed = time.time() - began
                samples.append((elapsed, rss_kib(process.pid)))
                if measured is None and elapsed >= warmup_s:
                    measured = await scrape(session, url)
                    warm = samples[-1]
                if int(elapsed) // 60 != int(samples[-2][0]) // 60:
                    print(
                        f"  {elapsed / 60:5.1f} min  RSS {samples[-1][1] / 1024:7.1f} MiB",
                        flush=True,
                    )
            final = await scrape(session, url)
            if args.page_every > 0:
                readers.cancel()
            end = time.time()
            since = datetime.fromtimestamp(start - 60).astimezone().isoformat()
            outages = await read_outages(session, url, since)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 120)
            except TimeoutError:
                process.kill()
                await process.wait()
        log_file.close()
        for task in targets:
            task.cancel()
        for flapper in flappers:
            await flapper.down()
        if pg is not None:
            await drop_pg_database(os.environ["UPTALLY_TEST_PG"], pg[1])
    detect_s = FLAP_INTERVAL_S + 10 + 5 + SLACK_S
    expected, detected, false, notes = judge_outages(outages, flappers, end, detect_s)
    assert measured is not None
    rows: list[tuple[str, ...]] = [("minute", "RSS MiB", "vs baseline")]
    baseline = samples[0][1]
    shown = -1
    for elapsed, rss in samples:
        if int(elapsed // 60) != shown or (elapsed, rss) == samples[-1]:
            shown = int(elapsed // 60)
            rows.append(
                (f"{elapsed / 60:.1f}", f"{rss / 1024:.1f}", f"{(rss - baseline) / 1024:+.1f}")
            )
    print()
    print(table(rows))
    growth = samples[-1][1] - warm[1]
    pct = growth / warm[1] * 100
    half = next(s for s in samples if s[0] >= (warm[0] + samples[-1][0]) / 2)
    checks = final[1] - measured[1]
    window = samples[-1][0] - warm[0]
    print(
        f"\nbaseline (started, monitors loaded): {baseline / 1024:.1f} MiB; end of warm-up "
        f"({warm[0] / 60:.1f} min): {warm[1] / 1024:.1f} MiB; end: {samples[-1][1] / 1024:.1f} MiB"
        f"\ngrowth after warm-up: {growth / 1024:+.1f} MiB ({pct:+.1f} %); over its second half: "
        f"{(samples[-1][1] - half[1]) / 1024:+.1f} MiB"
        f"\nchecks after warm-up: {checks:.0f} ({checks / window:.0f}/s); scheduling lateness "
        f"p50 {quantile(measured[0], final[0], 0.5)}, p99 {quantile(measured[0], final[0], 0.99)}"
        f"\noutages (read back from the API): expected {expected}, detected {detected}, "
        f"missed {expected - detected}, false {false} (of {len(outages)} recorded)"
    )
    for note in notes[:20]:
        print("  " + note)
    if growth / 1024 > args.max_growth_mib or pct > args.max_growth_pct:
        print(
            f"FAIL: RSS grew {growth / 1024:.1f} MiB ({pct:.1f} %) after warm-up (limit "
            f"{args.max_growth_mib:g} MiB, {args.max_growth_pct:g} %)",
            file=sys.stderr,
        )
        code = 1
    if false or expected != detected:
        print(f"FAIL: {false} false and {expected - detected} missed outages", file=sys.stderr)
        code = 1
    if args.keep:
        print(f"kept: {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--warmup", type=float, help="minutes left out of the growth (default: a third, 3-5)"
    )
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--max-growth-mib", type=float, default=20.0)
    parser.add_argument("--max-growth-pct", type=float, default=10.0)
    parser.add_argument(
        "--page-every",
        type=float,
        default=60.0,
        help="seconds between reads of the status page and /metrics (0: none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory and log")
    args = parser.parse_args()
    if args.warmup is None:  # every monitor checked twice, rollups flushed, caches filled
        args.warmup = min(5.0, max(3.0, args.minutes / 3))
    # SIGTERM unwinds like Ctrl-C, so serve, nginx and the PostgreSQL database are cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with nginx() as (port, _):
        code = asyncio.run(soak(args, port))
    sys.exit(code)


if __name__ == "__main__":
    main()
