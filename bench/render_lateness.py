"""Check latency and scheduling lateness on a real `serve`, without and then with page renders.

    python bench/render_lateness.py [--monitors 10000] [--window 40]

One `uptally serve` (SQLite) with N TCP monitors (intervals 30-60 s spread, timeout 5 s)
against a port of this benchmark whose connections the kernel completes at once and a thread
accepts and closes (it answers in well under a millisecond). After the first round of checks:

  * baseline: `--window` seconds with nobody asking for anything;
  * rendering: `--window` seconds while a client posts an incident (the status page changes and
    is rebuilt) and reads `/`, `/history`, `/api/v2/summary.json` and
    `/api/v1/monitors?limit=1000`, in a loop.

For each window, from `/metrics`: checks run, the p99 of `uptally_check_latency_seconds`
(recorded latency; the target is instant, so this is the host's own delay) and of
`uptally_scheduler_lateness_seconds` (as histogram bucket bounds), checks over 1 s; and at
the end the outages recorded (must be none).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port, table
from soak import quantile

TOKEN = "bench-lateness-admin-token-9fQ2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LATENCY = re.compile(
    r'^uptally_check_latency_seconds_bucket\{kind="tcp",le="([^"]+)"\} (\S+)$', re.M
)
LATENESS = re.compile(r'^uptally_scheduler_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)

Buckets = list[tuple[float, float]]


def listen() -> tuple[int, threading.Event]:
    """A port that accepts and closes every connection (backlog 4096, a thread of its own)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.close()
        server.close()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1], stop


def config_text(monitors: int, port: int) -> str:
    lines = ["site: {title: Lateness}", "probe: {concurrency: 1000}", "monitors:"]
    lines += [
        f"  - {{id: t{i:05d}, name: Service {i}, kind: tcp, host: 127.0.0.1, port: {port}, "
        f"interval: {30 + i % 31}s, timeout: 5s}}"
        for i in range(monitors)
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:04d}, name: Component {i}, group: Group {i // 25}, "
        f"monitors: [{', '.join(f't{j:05d}' for j in range(i * 10, min(monitors, i * 10 + 10)))}]}}"
        for i in range((monitors + 9) // 10)
    ]
    return "\n".join(lines) + "\n"


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[Buckets, Buckets]:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    latency = [(float(le), float(n)) for le, n in LATENCY.findall(text)]
    lateness = [(float(le), float(n)) for le, n in LATENESS.findall(text)]
    return latency, lateness


async def render_load(session: aiohttp.ClientSession, url: str, until: float) -> int:
    rounds = 0
    while time.monotonic() < until:
        incident = {"title": f"Load {rounds}", "impact": "minor", "components": ["c0000"]}
        async with session.post(f"{url}/api/v1/incidents", json=incident, headers=AUTH) as r:
            r.raise_for_status()
        for path in ("/", "/history", "/api/v2/summary.json", "/api/v1/monitors?limit=1000"):
            async with session.get(url + path, headers=AUTH) as r:
                r.raise_for_status()
                await r.read()
        rounds += 1
    return rounds


def row(
    label: str, start: tuple[Buckets, Buckets], end: tuple[Buckets, Buckets]
) -> tuple[str, ...]:
    checks = end[0][-1][1] - start[0][-1][1]
    within_1s = dict(end[0])[1.0] - dict(start[0])[1.0]
    return (
        label,
        f"{checks:.0f}",
        quantile(start[0], end[0], 0.99),
        quantile(start[1], end[1], 0.99),
        f"{checks - within_1s:.0f}",
    )


async def measure(args: argparse.Namespace) -> int:
    target_port, stop_target = listen()
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-lateness-"))
    config = directory / "uptally.yaml"
    config.write_text(config_text(args.monitors, target_port))
    port = free_port()
    command = [sys.executable, "-m", "uptally", "serve", "--config", str(config)]
    command += [
        "--data-dir",
        str(directory / "data"),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "UPTALLY_ADMIN_TOKEN": TOKEN}
    env.pop("UPTALLY_DATABASE_URL", None)
    log = (directory / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            deadline = time.monotonic() + 300
            while True:  # ready, and every monitor checked once
                if process.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"serve did not start:\n{(directory / 'serve.log').read_text()}"
                    )
                try:
                    latency, _ = await scrape(session, url)
                    if latency and latency[-1][1] >= args.monitors:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(1)
            print(
                f"{args.monitors} monitors checked once; two windows of {args.window:g} s",
                flush=True,
            )
            quiet = await scrape(session, url)
            await asyncio.sleep(args.window)
            loaded = await scrape(session, url)
            rounds = await render_load(session, url, time.monotonic() + args.window)
            end = await scrape(session, url)
            async with session.get(f"{url}/api/v1/outages", headers=AUTH) as response:
                outages = (await response.json())["outages"]
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        stop_target.set()
    rows = [("window", "checks", "latency p99", "lateness p99", "checks > 1 s")]
    rows.append(row("baseline (no requests)", quiet, loaded))
    rows.append(row(f"rendering ({rounds} rounds)", loaded, end))
    print(table(rows))
    print(f"outages recorded: {len(outages)} (must be 0)")
    return 1 if outages else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=40.0, help="seconds per window")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(measure(args)))


if __name__ == "__main__":
    main()
