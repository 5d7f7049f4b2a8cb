"""Status page under a rush: 50 components with 90 days of history, 200 concurrent clients.

    python bench/statuspage.py [--seconds 10]

`uptally serve` runs as a real process (probe off, so only the page is measured) on a database
holding 90 days of outages and 24 hours of latency rollups for 50 components. wrk (200
connections) requests GET / and GET /api/v2/summary.json; in the same run nginx serves the page
exported with `uptally export-site`. Aim: at least 50 % of nginx's rate, p99 < 50 ms.
uptally is measured on both event loops (UPTALLY_EVENT_LOOP): uvloop, the default, answers more
requests per second; the standard loop shares a saturated server more evenly (lower p99).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port, table

COMPONENTS = 50
DAY = 86_400_000
HOUR = 3_600_000


def config_text() -> str:
    lines = [
        "site: {title: Bench Cloud, timezone: Europe/Berlin}",
        "probe: {enabled: false}",
        "monitors:",
    ]
    lines += [
        f"  - {{id: m{i:02d}, kind: http, url: 'http://127.0.0.1:9/'}}" for i in range(COMPONENTS)
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:02d}, name: Service {i:02d}, group: Group {i // 10}, monitors: [m{i:02d}]}}"
        for i in range(COMPONENTS)
    ]
    return "\n".join(lines) + "\n"


async def seed(config_path: Path, data: Path) -> None:
    """90 days of outages and 24 h of hourly latency rollups for every monitor."""
    from uptally.clock import SystemClock
    from uptally.config import load_config
    from uptally.evaluator import Outage
    from uptally.ids import new_id
    from uptally.runtime import Runtime
    from uptally.store import outages as outage_store
    from uptally.store import rollups as rollup_store
    from uptally.store.database import Database, database_url
    from uptally.store.rollups import Rollup

    runtime = Runtime(load_config(config_path), Database(database_url(data)), run_probe=False)
    await runtime.start()
    now = SystemClock().now_ms()
    rng = random.Random(1)
    async with runtime.db.begin() as conn:
        items = []
        for i in range(COMPONENTS):
            for _ in range(10):
                start = now - rng.randint(1, 89) * DAY - rng.randint(0, DAY)
                end = start + rng.randint(60_000, 3 * HOUR)
                items.append(Outage(new_id(start), f"m{i:02d}", start, end, True, {}, "timeout"))
        await outage_store.save_outages(runtime.db, conn, items, now)
        rolls = []
        for i in range(COMPONENTS):
            for h in range(24 * 91):
                hour = now - now % HOUR - h * HOUR
                rollup = Rollup(f"m{i:02d}", "local", hour)
                for _ in range(60):
                    rollup.add(True, rng.uniform(20, 120))
                rolls.append(rollup)
        await rollup_store.save_rollups(runtime.db, conn, rolls)
    await runtime.stop()


def wrk(url: str, seconds: float) -> tuple[float, float]:
    """requests/s and p99 ms, asking for gzip as browsers do."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c200",
            f"-d{int(seconds)}s",
            "--latency",
            "-H",
            "Accept-Encoding: gzip",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(out.split("Requests/sec:")[1].split()[0])
    match = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out)
    assert match is not None
    value, unit = float(match[1]), match[2]
    p99 = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx[1]} failed requests")
    return rate, p99


def measure(
    config: Path, data: Path, loop: str, seconds: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """`uptally serve` on the given event loop (UPTALLY_EVENT_LOOP): GET / and summary.json."""
    port = free_port()
    hub = subprocess.Popen(
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
        env={**os.environ, "UPTALLY_EVENT_LOOP": loop},
    )
    assert hub.stdout is not None
    while "listening on" not in (line := hub.stdout.readline()):
        if not line:
            raise SystemExit("uptally serve did not start")
    base = f"http://127.0.0.1:{port}"
    try:
        for path in ("/", "/api/v2/summary.json"):  # warm the cache
            subprocess.run(["curl", "-s", "-o", "/dev/null", base + path], check=True)
        return wrk(base + "/", seconds), wrk(base + "/api/v2/summary.json", seconds)
    finally:
        hub.send_signal(signal.SIGINT)
        hub.wait(60)


def bare_asgi(body: Path, seconds: float) -> tuple[float, float]:
    """The Python ceiling: uvicorn (uvloop, httptools) answering with fixed bytes."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "_bare_asgi:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--http",
            "httptools",
            "--loop",
            "uvloop",
        ],
        cwd=Path(__file__).parent,
        env={**os.environ, "BARE_ASGI_BODY": str(body)},
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["curl", "-s", "-o", "/dev/null", url], check=False).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("the bare uvicorn app did not start")
            time.sleep(0.1)
        return wrk(url, seconds)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    if not shutil.which("wrk") or not shutil.which("nginx"):
        raise SystemExit("wrk and nginx are needed: apt-get install wrk nginx-light")
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-page-"))
    directory.chmod(0o755)  # nginx's workers must be able to read the export
    config = directory / "page.yaml"
    config.write_text(config_text())
    data = directory / "data"
    asyncio.run(seed(config, data))
    export = directory / "export"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "uptally",
            "export-site",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            "--out",
            str(export),
        ],
        check=True,
        capture_output=True,
    )
    measured = {loop: measure(config, data, loop, args.seconds) for loop in ("uvloop", "asyncio")}
    size = (export / "index.html").stat().st_size
    subprocess.run(["gzip", "-k", "-6", str(export / "index.html")], check=True)  # gzip_static
    nginx_port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {directory}/nginx.pid; error_log {directory}/nginx.err;
events {{ worker_connections 8192; }}
http {{ access_log off; include /etc/nginx/mime.types; gzip_static on;
  server {{ listen 127.0.0.1:{nginx_port} backlog=4096; root {export}; }} }}
""")
    bare = bare_asgi(export / "index.html.gz", args.seconds)
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(directory)])
    try:
        time.sleep(0.5)
        reference = wrk(f"http://127.0.0.1:{nginx_port}/index.html", args.seconds)
    finally:
        nginx.terminate()
        nginx.wait(10)
    gz = (export / "index.html.gz").stat().st_size
    shutil.rmtree(directory, ignore_errors=True)
    print(
        f"status page: {COMPONENTS} components, 90 days of history, page {size / 1024:.0f} KiB "
        f"({gz / 1024:.0f} KiB gzipped); wrk, 200 connections asking for gzip, "
        f"{args.seconds:.0f} s each\n"
    )
    rows: list[tuple[str, ...]] = [("", "requests/s", "p99 ms", "ratio to nginx")]
    for loop, (page, summary) in measured.items():
        for name, (rate, p99) in (("GET /", page), ("GET /api/v2/summary.json", summary)):
            rows.append(
                (
                    f"uptally ({loop}) {name}",
                    f"{rate:.0f}",
                    f"{p99:.1f}",
                    f"{rate / reference[0]:.2f}",
                )
            )
    rows.append(
        (
            "bare uvicorn app, same bytes",
            f"{bare[0]:.0f}",
            f"{bare[1]:.1f}",
            f"{bare[0] / reference[0]:.2f}",
        )
    )
    rows.append(
        ("nginx, exported index.html", f"{reference[0]:.0f}", f"{reference[1]:.1f}", "1.00")
    )
    print(table(rows))
    print("\naim: >= 0.50 of nginx's rate, p99 < 50 ms")


if __name__ == "__main__":
    main()
