"""Monitors managed at runtime at scale: create N through the batch API, then PATCH and list.

    python bench/config_api.py [--backend sqlite|postgresql] [--monitors 10000]
                               [--batches 1000,10000] [--window 30] [--patches 50]

`uptally serve` runs as a real process (PostgreSQL: a database of its own on the server named by
UPTALLY_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test, dropped afterwards). Its
monitors are HTTP checks of 127.0.0.1: most (intervals 30-45 s) against nginx, one in a hundred
against a closed port (they go down), and `--patches` (interval 1 s) against a server of this
benchmark that notes when it first sees each path.

  * baseline: the same N monitors provisioned from the YAML file; ready = /metrics answers;
  * batch B: a serve with no monitors; N created by `POST /api/v1/monitors:batch`, B a request.

For each run: the creation time (baseline: start to ready), the time from the start until every
monitor has a result stored (read from the database while the run goes on), and the p99 of
`uptally_scheduler_lateness_seconds` (a histogram bucket bound) over `--window` seconds after
that. The last batch run then measures, with N monitors running:

  * PATCH applied: the answer of `PATCH /api/v1/monitors/{id}` (url to a new path). The answer
    comes after the change is stored, audited and upserted on the scheduler, so its latency is
    the apply time; "seen" is from sending the PATCH until the target gets the first request on
    the new path (adds up to one 1 s interval: the next check is at the monitor's next slot);
  * list: `GET /api/v1/monitors?state=down&limit=100`, p50/p99 of 50 requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from _support import free_port, nginx, percentile, table
from soak import create_pg_database, drop_pg_database, quantile

TOKEN = "bench-config-api-admin-9fQ2LmZx"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LATENESS = re.compile(r'^uptally_scheduler_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)
PG_ADMIN = os.environ.get("UPTALLY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
Buckets = list[tuple[float, float]]


@dataclass
class Targets:
    nginx: int
    patch: int
    closed: int
    seen: dict[str, float] = field(default_factory=dict)  # path -> first request (monotonic)


def documents(count: int, patches: int, targets: Targets) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j in range(patches):
        url = f"http://127.0.0.1:{targets.patch}/p{j}/v0"
        out.append({"id": f"p{j:03d}", "kind": "http", "url": url, "interval": "1s"})
    for i in range(count - patches):
        port = targets.closed if i % 100 == 0 else targets.nginx
        doc = {
            "id": f"m{i:05d}",
            "name": f"Service {i}",
            "kind": "http",
            "url": f"http://127.0.0.1:{port}/health/{i}",
            "interval": f"{30 + i % 16}s",
            "timeout": "5s",
            "retry_interval": "10s",
        }
        out.append(doc)
    return out


def yaml_text(docs: list[dict[str, Any]]) -> str:
    lines = [
        "site: {title: Config API}",
        "probe: {concurrency: 1000}",
        # the targets are local, and the hub probes internal addresses only where allowed
        "security: {allow_internal: [127.0.0.0/8]}",
    ]
    if docs:
        lines.append("monitors:")
        for doc in docs:
            inner = ", ".join(f"{k}: '{v}'" for k, v in doc.items())
            lines.append(f"  - {{{inner}}}")
    return "\n".join(lines) + "\n"


async def patch_target(seen: dict[str, float]) -> tuple[web.AppRunner, int]:
    async def answer(request: web.Request) -> web.Response:
        seen.setdefault(request.path, time.monotonic())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


async def scrape(session: aiohttp.ClientSession, url: str) -> Buckets:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    return [(float(le), float(n)) for le, n in LATENESS.findall(text)]


class Serve:
    """One `uptally serve` with its own data directory (and PostgreSQL database)."""

    def __init__(self, backend: str, config: str) -> None:
        self.backend = backend
        self.directory = Path(tempfile.mkdtemp(prefix="uptally-bench-config-api-"))
        self.config_text = config
        self.pg: tuple[str, str] | None = None
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Start; return the monotonic time it was started at."""
        config = self.directory / "uptally.yaml"
        config.write_text(self.config_text)
        env = {**os.environ, "UPTALLY_ADMIN_TOKEN": TOKEN}
        env.pop("UPTALLY_DATABASE_URL", None)
        if self.backend == "postgresql":
            self.pg = await create_pg_database(PG_ADMIN)
            env["UPTALLY_DATABASE_URL"] = self.pg[0]
        port = free_port()
        command = [sys.executable, "-m", "uptally", "serve", "--config", str(config)]
        command += ["--data-dir", str(self.directory / "data"), "--port", str(port)]
        command += ["--log-level", "warning"]
        log = (self.directory / "serve.log").open("wb")
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=log, stderr=log, env=env
        )
        self.url = f"http://127.0.0.1:{port}"
        return started

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while True:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start:\n{self.log()}")
            try:
                await scrape(session, self.url)
                return time.monotonic()
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)

    def log(self) -> str:
        return (self.directory / "serve.log").read_text(errors="replace")[-4000:]

    async def stored(self) -> int:
        """Monitors with at least one result in the database."""
        query = "SELECT COUNT(DISTINCT monitor) FROM results"
        if self.pg is None:

            def count() -> int:
                path = self.directory / "data" / "uptally.db"
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
                    return int(conn.execute(query).fetchone()[0])

            try:
                return await asyncio.to_thread(count)
            except sqlite3.OperationalError:
                return 0
        import asyncpg  # type: ignore[import-untyped]

        conn = await asyncpg.connect(self.pg[0])
        try:
            return int(await conn.fetchval(query))
        except asyncpg.UndefinedTableError:
            return 0
        finally:
            await conn.close()

    async def all_stored(self, count: int, timeout: float = 300) -> float:
        deadline = time.monotonic() + timeout
        while (n := await self.stored()) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {n} of {count} monitors have results after {timeout} s")
            await asyncio.sleep(0.5)
        return time.monotonic()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
        if self.pg is not None:
            await drop_pg_database(PG_ADMIN, self.pg[1])


@dataclass
class Run:
    label: str
    create_s: float
    stored_s: float
    lateness_during: str
    lateness_after: str
    patch: list[float] = field(default_factory=list)
    seen: list[float] = field(default_factory=list)
    lists: list[float] = field(default_factory=list)


async def lateness_window(session: aiohttp.ClientSession, url: str, window: float) -> str:
    before = await scrape(session, url)
    await asyncio.sleep(window)
    return quantile(before, await scrape(session, url), 0.99)


async def baseline(args: argparse.Namespace, docs: list[dict[str, Any]]) -> Run:
    serve = Serve(args.backend, yaml_text(docs))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            started = await serve.start()
            ready = await serve.ready(session)
            start_buckets = await scrape(session, serve.url)
            stored = await serve.all_stored(len(docs))
            during = quantile(start_buckets, await scrape(session, serve.url), 0.99)
            after = await lateness_window(session, serve.url, args.window)
            return Run("YAML file (baseline)", ready - started, stored - started, during, after)
    finally:
        await serve.stop()


async def batched(
    args: argparse.Namespace, docs: list[dict[str, Any]], size: int, targets: Targets, last: bool
) -> Run:
    serve = Serve(args.backend, yaml_text([]))
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await serve.start()
            await serve.ready(session)
            start_buckets = await scrape(session, serve.url)
            began = time.monotonic()
            for offset in range(0, len(docs), size):
                body = {"monitors": docs[offset : offset + size]}
                async with session.post(
                    f"{serve.url}/api/v1/monitors:batch", json=body, headers=AUTH
                ) as response:
                    if response.status != 201:
                        raise SystemExit(f"batch: {response.status} {await response.text()}")
                    await response.read()
            created = time.monotonic()
            stored = await serve.all_stored(len(docs))
            during = quantile(start_buckets, await scrape(session, serve.url), 0.99)
            after = await lateness_window(session, serve.url, args.window)
            run = Run(f"API, batches of {size}", created - began, stored - began, during, after)
            if last:
                await patches(session, serve.url, args.patches, targets, run)
                await lists(session, serve.url, run)
            return run
    finally:
        await serve.stop()


async def patches(
    session: aiohttp.ClientSession, url: str, count: int, targets: Targets, run: Run
) -> None:
    for j in range(count):
        path = f"/p{j}/v1"
        sent = time.monotonic()
        async with session.patch(
            f"{url}/api/v1/monitors/p{j:03d}",
            json={"url": f"http://127.0.0.1:{targets.patch}{path}"},
            headers=AUTH,
        ) as response:
            if response.status != 200:
                raise SystemExit(f"PATCH: {response.status} {await response.text()}")
            await response.read()
        run.patch.append(time.monotonic() - sent)
        deadline = time.monotonic() + 30
        while path not in targets.seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"{path} never requested after its PATCH")
            await asyncio.sleep(0.005)
        run.seen.append(targets.seen[path] - sent)


async def lists(session: aiohttp.ClientSession, url: str, run: Run) -> None:
    query = f"{url}/api/v1/monitors?state=down&limit=100"
    deadline = time.monotonic() + 120
    while True:  # the closed-port monitors are confirmed down (two failed checks)
        async with session.get(query, headers=AUTH) as response:
            found = len((await response.json())["monitors"])
        if found >= 90 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    run.label += f" (list: {found} down)"
    for _ in range(50):
        sent = time.monotonic()
        async with session.get(query, headers=AUTH) as response:
            response.raise_for_status()
            await response.read()
        run.lists.append(time.monotonic() - sent)


def brief(run: Run) -> str:
    return (
        f"created in {run.create_s:.1f} s, all stored after {run.stored_s:.1f} s, lateness p99 "
        f"{run.lateness_during} while creating, {run.lateness_after} after"
    )


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.0f} ms" if values else "-"


async def measure(args: argparse.Namespace, nginx_port: int) -> int:
    seen: dict[str, float] = {}
    runner, patch_port = await patch_target(seen)
    targets = Targets(nginx_port, patch_port, free_port(), seen)
    docs = documents(args.monitors, args.patches, targets)
    sizes = [int(s) for s in args.batches.split(",")]
    runs: list[Run] = []
    try:
        if not args.skip_baseline:
            runs.append(await baseline(args, docs))
            print(f"baseline: {brief(runs[-1])}", flush=True)
        for index, size in enumerate(sizes):
            runs.append(await batched(args, docs, size, targets, index == len(sizes) - 1))
            print(f"batches of {size}: {brief(runs[-1])}", flush=True)
    finally:
        await runner.cleanup()
    rows = [("run", "create", "all stored", "lateness p99 (creating)", "after")]
    rows += [
        (
            r.label,
            f"{r.create_s:.1f} s",
            f"{r.stored_s:.1f} s",
            r.lateness_during,
            f"{r.lateness_after} ({args.window:g} s)",
        )
        for r in runs
    ]
    print(f"\n{args.backend}, {args.monitors} monitors")
    print(table(rows))
    if runs and not args.skip_baseline:
        for r in runs[1:]:
            print(
                f"{r.label}: creation {r.create_s / runs[0].create_s:.2f}x the YAML start-up, "
                f"all stored {r.stored_s / runs[0].stored_s:.2f}x"
            )
    last = runs[-1]
    print(f"PATCH answered (applied): p50 {ms(last.patch, 0.5)}, p99 {ms(last.patch, 0.99)}")
    print(f"PATCH to new path seen:   p50 {ms(last.seen, 0.5)}, p99 {ms(last.seen, 0.99)}")
    print(f"list state=down limit 100: p50 {ms(last.lists, 0.5)}, p99 {ms(last.lists, 0.99)}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--batches", default="1000,10000", help="batch sizes, comma-separated")
    parser.add_argument("--window", type=float, default=30.0, help="lateness window, seconds")
    parser.add_argument("--patches", type=int, default=50)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    with nginx() as (port, _):
        raise SystemExit(asyncio.run(measure(args, port)))


if __name__ == "__main__":
    main()
