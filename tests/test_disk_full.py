"""Database writes failing under `serve` (SQLite on a full disk, PostgreSQL stopped): states and
alerts go on from memory, `/readyz` says why it is not ready, and once writes succeed again
everything held is stored and nothing is sent twice."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.pgcluster import SERVER_PACKAGE, private_cluster, server_bin
from tests.procs import serving
from tests.receivers import HttpReceiver, poll_until

pytestmark = pytest.mark.slow

FAILING = "database writes failing"
RECOVERED = "database writes recovered"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs of its own (the tests run as root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    directory = tmp_path / "disk"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=True)


def fill(path: Path) -> None:
    """Write zeros to `path` until the filesystem is full (64 KiB, then 512 B at a time)."""
    with path.open("wb", buffering=0) as out:
        for size in (1 << 16, 512):
            block = b"\0" * size
            while True:
                try:
                    out.write(block)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    break


Query = Callable[[str], Awaitable[list[tuple[object, ...]]]]


def sqlite_reader(database: Path) -> Query:
    """Read what is committed (a read-only connection beside the running serve)."""

    async def query(sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
            return [tuple(row) for row in conn.execute(sql)]

    return query


def pg_reader(url: str) -> Query:
    async def query(sql: str) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return [tuple(row) for row in await conn.fetch(sql)]
        finally:
            await conn.close()

    return query


async def test_a_full_disk_alerts_from_memory_then_stores_everything_once(
    tmp_path: Path, small_disk: Path
) -> None:
    filler = small_disk / "filler"
    await alerts_from_memory_then_stores_once(
        tmp_path,
        small_disk,
        {},
        sqlite_reader(small_disk / "uptally.db"),
        lambda: fill(filler),
        filler.unlink,
        f"{FAILING}: database or disk is full",
        readable=True,
    )


@pytest.mark.pg
async def test_a_stopped_postgresql_alerts_from_memory_then_stores_everything_once(
    tmp_path: Path,
) -> None:
    if server_bin() is None:
        if os.environ.get("UPTALLY_REQUIRE_PG") == "1":
            pytest.fail(f"no PostgreSQL server binaries (Debian package {SERVER_PACKAGE})")
        pytest.skip(f"no PostgreSQL server binaries (Debian package {SERVER_PACKAGE})")
    with private_cluster() as cluster:
        await alerts_from_memory_then_stores_once(
            tmp_path,
            tmp_path / "data",
            {"UPTALLY_DATABASE_URL": cluster.url},
            pg_reader(cluster.url),
            cluster.stop_server,
            cluster.start_server,
            "database",
            readable=False,
        )


async def alerts_from_memory_then_stores_once(
    tmp_path: Path,
    data_dir: Path,
    env: dict[str, str],
    stored: Query,
    break_writes: Callable[[], None],
    repair_writes: Callable[[], None],
    reason: str,
    *,
    readable: bool,
) -> None:
    """`serve` with a monitor and a webhook; writes break; the target goes down: the alert
    arrives from memory; writes are repaired: everything is stored, nothing sent twice."""
    healthy = True
    async with (
        HttpReceiver(answer=lambda _n, path: 200 if healthy or path == "/up" else 503) as target,
        HttpReceiver() as hooks,
    ):
        # More results, so that SQLite soon needs a page it cannot get once the disk is full.
        fillers = "\n".join(
            f'  - {{id: filler{n}, kind: http, url: "{target.url}/up", interval: 1s, timeout: 2s}}'
            for n in range(10)
        )
        config = tmp_path / "uptally.yaml"
        config.write_text(f"""
site: {{title: Full}}
monitors:
  - {{id: web, kind: http, url: "{target.url}/health", interval: 1s, retry_interval: 300ms,
     timeout: 2s, confirm: 2}}
{fillers}
components:
  - {{id: web, name: Web, monitors: [web]}}
notifications:
  retry: {{first: 100ms, max: 500ms}}
  channels:
    - {{id: hook, url: "webhook+{hooks.url}/hook", events: ["monitor.*"]}}
""")
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            serving(config, data_dir, env, timeout=60) as (base, process),
            aiohttp.ClientSession(timeout=timeout) as http,
        ):

            async def ready() -> tuple[int, dict[str, object]]:
                async with http.get(f"{base}/readyz") as response:
                    return response.status, await response.json()

            async def metrics() -> str:
                async with http.get(f"{base}/metrics") as response:
                    return await response.text()

            async def checked() -> bool:
                found = await stored("SELECT count(*) FROM results WHERE monitor='web'")
                return int(str(found[0][0])) >= 2

            await poll_until(checked, timeout=30, every=0.2)
            assert (await ready())[0] == 200

            break_writes()

            def sample(text: str, name: str) -> float:
                return float(
                    next(x for x in text.splitlines() if x.startswith(name + " ")).split()[1]
                )

            async def writes_fail() -> bool:
                text = await metrics()
                return sample(text, "uptally_store_writes_failing_since_seconds") > 0

            await poll_until(writes_fail, timeout=120, every=0.2)
            assert sample(await metrics(), "uptally_store_write_failures_total") >= 1
            status, body = await ready()
            assert status == 503
            assert body["status"] == "unavailable"
            assert reason in str(body["reason"]), body

            healthy = False  # a real outage while nothing can be written

            def down_alerts() -> list[dict[str, object]]:
                return [r.json() for r in hooks.ok("/hook") if r.json()["event"] == "monitor.down"]

            # Alerted within a few check intervals, from memory, while writes still fail.
            await poll_until(down_alerts, timeout=20, every=0.05)
            alert = down_alerts()[0]
            assert (await ready())[0] == 503
            if readable:
                outages = await stored("SELECT count(*) FROM outages WHERE monitor='web'")
                assert outages == [(0,)]  # nothing could be stored meanwhile

            repair_writes()

            async def writes_succeed() -> bool:
                return (await ready())[0] == 200

            await poll_until(writes_succeed, timeout=60, every=0.2)
            assert "uptally_store_writes_failing_since_seconds 0.0" in await metrics()
            events = await stored("SELECT id FROM outbox WHERE kind='monitor.down'")
            assert events == [(alert["id"],)]  # the same event, with the id it was sent with
            assert await stored("SELECT \"end\" FROM outages WHERE monitor='web'") == [(None,)]
            delivered = await stored(
                "SELECT id, state, attempts FROM deliveries"
                f" WHERE event='{alert['id']}' AND target='channel:hook'"
            )
            sent = next(r for r in hooks.ok("/hook") if r.json()["id"] == alert["id"])
            assert delivered == [(sent.headers["X-Uptally-Delivery"], "delivered", 1)]

            healthy = True  # recovery goes out through the outbox, after the stored down
            await poll_until(
                lambda: any(r.json()["event"] == "monitor.up" for r in hooks.ok("/hook")),
                timeout=30,
                every=0.05,
            )
            assert len(down_alerts()) == 1  # never sent twice
            assert await stored('SELECT count(*) FROM outages WHERE "end" IS NOT NULL') == [(1,)]
        output: str = process.output  # type: ignore[attr-defined]
        assert output.count(FAILING) == 1, output
        assert output.count(RECOVERED) == 1, output
        if readable:  # (other duties log their own failures against a stopped PostgreSQL)
            assert "Traceback" not in output, output
