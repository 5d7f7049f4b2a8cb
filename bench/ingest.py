"""Result ingestion from probe agents: POST /api/v1/probes/results, batches of 100.

    python bench/ingest.py [--seconds 10] [--skip-pg]

`uptally serve` runs as a real process with 100 monitors assigned to location `eu`; 8 concurrent
clients push batches of 100 new results (each with a fresh id, so nothing is deduplicated
away) for --seconds, on SQLite and on PostgreSQL (127.0.0.1:5432, database `test`). The
reference is the same HTTP path with batches of 0 results (what the request, JSON and auth
cost before any storage). Aim: >= 20,000 results/s on SQLite.

Then a replay: an agent whose queue holds one hour of results for 100 monitors (3,600 x 100 =
360,000) is started against the hub; the time until its queue is empty is reported (aim < 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
from _support import free_port, table

MONITORS = 100
BATCH = 100
CLIENTS = 8


def config_text() -> str:
    lines = ["site: {title: ingest}", "locations: [{name: eu, token_env: BENCH_EU}]", "monitors:"]
    lines += [
        f"  - {{id: m{i:03d}, kind: http, url: 'http://127.0.0.1:9/', "
        f"locations: [eu], interval: 1s}}"
        for i in range(MONITORS)
    ]
    return "\n".join(lines) + "\n"


def start_hub(directory: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    config = directory / "hub.yaml"
    config.write_text(config_text())
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
            str(directory / "data"),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env, "BENCH_EU": "bench-probe-7Gk2Qx9Lm4Zt1Wv8Rc3Yb6"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "listening on" in line:
            return process, f"http://127.0.0.1:{port}"
        if not line:
            break
    process.kill()
    raise SystemExit("the hub did not start")


def stop_hub(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(120)


async def push(url: str, seconds: float, batch_size: int) -> tuple[float, int]:
    """CLIENTS concurrent agents, each pushing in-order results for its own share of monitors."""
    from uptally.ids import new_id

    headers = {"Authorization": "Bearer bench-probe-7Gk2Qx9Lm4Zt1Wv8Rc3Yb6"}
    sent = 0
    base_at = int(time.time() * 1000) - 3_600_000

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal sent
        mine = [f"m{i:03d}" for i in range(MONITORS) if i % CLIENTS == n]
        at = base_at
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            results = []
            for k in range(batch_size):
                at += 1
                results.append(
                    {
                        "id": new_id(at),
                        "monitor": mine[k % len(mine)],
                        "at": at,
                        "ok": True,
                        "latency_ms": 1.5,
                    }
                )
            body = {"location": "eu", "sent_at": int(time.time() * 1000), "results": results}
            async with session.post(
                f"{url}/api/v1/probes/results", json=body, headers=headers
            ) as r:
                if r.status != 200:
                    raise SystemExit(f"push failed: {r.status} {await r.text()}")
                answer = await r.json()
                sent += answer["accepted"] if batch_size else 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))
    return sent / (time.perf_counter() - started), sent


def measure(database: str, seconds: float) -> dict[str, float]:
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-ingest-"))
    env: dict[str, str] = {}
    dbname = None
    if database == "postgresql":
        dbname = f"uptally_bench_{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-qc",
                f"CREATE DATABASE {dbname}",
            ],
            check=True,
        )
        env["UPTALLY_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    process, url = start_hub(directory, env)
    try:
        empty, _ = asyncio.run(push(url, min(3.0, seconds), 0))
        rate, sent = asyncio.run(push(url, seconds, BATCH))
    finally:
        stop_hub(process)
        if dbname:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "test",
                    "-qc",
                    f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)",
                ],
                check=False,
            )
    return {"rate": rate, "sent": sent, "empty_requests": empty}


def replay(seconds_limit: float) -> dict[str, float]:
    from uptally.ids import new_id
    from uptally.probe.queue import ResultQueue
    from uptally.results import Result

    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-replay-"))
    queue_dir = directory / "queue"
    queue = ResultQueue(queue_dir / "queue.db", "eu")
    now = int(time.time() * 1000)
    start = now - 3_600_000
    chunk: list[Result] = []
    for second in range(3600):
        chunk.extend(
            Result(
                new_id(start + second * 1000 + m),
                f"m{m:03d}",
                "eu",
                start + second * 1000 + m,
                second % 600 != 0,
                1.5,
                None,
                "",
            )
            for m in range(MONITORS)
        )
        if len(chunk) >= 50_000:
            queue.put(chunk, now)
            chunk = []
    queue.put(chunk, now)
    total = queue.depth()
    queue.close()
    process, url = start_hub(directory, {})
    try:
        started = time.perf_counter()
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uptally",
                "probe",
                "--hub",
                url,
                "--location",
                "eu",
                "--token",
                "bench-probe-7Gk2Qx9Lm4Zt1Wv8Rc3Yb6",
                "--queue-dir",
                str(queue_dir),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        hub_db = directory / "data" / "uptally.db"
        done = 0
        while time.perf_counter() - started < seconds_limit * 3:
            time.sleep(0.25)
            with sqlite3.connect(hub_db) as conn:
                done = conn.execute("SELECT count(*) FROM results WHERE at < ?", (now,)).fetchone()[
                    0
                ]
            if done >= total:
                break
        elapsed = time.perf_counter() - started
        left = total - done
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
    finally:
        stop_hub(process)
    return {"results": total, "seconds": elapsed, "left": left}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    rows = [("database", "results/s", "results", "empty batches/s (HTTP path)", "ratio")]
    for database in ["sqlite"] + ([] if args.skip_pg else ["postgresql"]):
        run = measure(database, args.seconds)
        rows.append(
            (
                database,
                f"{run['rate']:.0f}",
                f"{run['sent']:.0f}",
                f"{run['empty_requests']:.0f}",
                f"{run['rate'] / 20_000:.2f} of aim",
            )
        )
    print(f"ingest through POST /api/v1/probes/results, {CLIENTS} clients, batches of {BATCH}\n")
    print(table(rows))
    if not args.skip_replay:
        result = replay(60)
        print(
            f"\nreplay of a 1-hour queue: {result['results']:.0f} results in "
            f"{result['seconds']:.1f} s ({result['results'] / result['seconds']:.0f}/s; "
            f"aim < 60 s), left in queue: {result['left']:.0f}"
        )


if __name__ == "__main__":
    json.dumps({})
    main()
