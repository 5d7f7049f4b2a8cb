"""A full disk under `serve`'s SQLite database: states and alerts go on from memory, `/readyz`
says why it is not ready, and once space returns everything held is stored, nothing sent twice."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

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


def stored(database: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Read what is committed (a read-only connection beside the running serve)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as conn:
        return list(conn.execute(sql, args))


async def test_a_full_disk_alerts_from_memory_then_stores_everything_once(
    tmp_path: Path, small_disk: Path
) -> None:
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
        database = small_disk / "uptally.db"
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            serving(config, small_disk) as (base, process),
            aiohttp.ClientSession(timeout=timeout) as http,
        ):

            async def ready() -> tuple[int, dict[str, object]]:
                async with http.get(f"{base}/readyz") as response:
                    return response.status, await response.json()

            async def metrics() -> str:
                async with http.get(f"{base}/metrics") as response:
                    return await response.text()

            await poll_until(
                lambda: (
                    stored(database, "SELECT count(*) FROM results WHERE monitor='web'")[0][0] >= 2
                ),
                timeout=30,
                every=0.2,
            )
            assert (await ready())[0] == 200

            fill(small_disk / "filler")

            async def writes_fail() -> bool:
                return (await ready())[0] == 503

            await poll_until(writes_fail, timeout=120, every=0.2)
            status, body = await ready()
            assert status == 503
            assert body["status"] == "unavailable"
            assert str(body["reason"]).startswith(f"{FAILING}: ")
            assert "full" in str(body["reason"]), body
            text = await metrics()
            assert "uptally_store_write_failures_total" in text
            failing_since = next(
                line
                for line in text.splitlines()
                if line.startswith("uptally_store_writes_failing_since_seconds ")
            )
            assert float(failing_since.split()[1]) > 0

            healthy = False  # a real outage while nothing can be written

            def down_alerts() -> list[dict[str, object]]:
                return [r.json() for r in hooks.ok("/hook") if r.json()["event"] == "monitor.down"]

            # Alerted within a few check intervals, from memory, with the disk still full.
            await poll_until(down_alerts, timeout=20, every=0.05)
            alert = down_alerts()[0]
            assert (await ready())[0] == 503
            outages = stored(database, "SELECT count(*) FROM outages WHERE monitor='web'")
            assert outages == [(0,)]  # nothing could be stored meanwhile

            (small_disk / "filler").unlink()

            async def writes_succeed() -> bool:
                return (await ready())[0] == 200

            await poll_until(writes_succeed, timeout=60, every=0.2)
            assert "uptally_store_writes_failing_since_seconds 0.0" in await metrics()
            events = stored(database, "SELECT id FROM outbox WHERE kind='monitor.down'")
            assert events == [(alert["id"],)]  # the same event, with the id it was sent with
            assert stored(database, "SELECT \"end\" FROM outages WHERE monitor='web'") == [(None,)]
            delivered = stored(
                database,
                "SELECT id, state, attempts FROM deliveries WHERE event=? AND target=?",
                alert["id"],
                "channel:hook",
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
            assert stored(database, 'SELECT count(*) FROM outages WHERE "end" IS NOT NULL') == [
                (1,)
            ]
        output: str = process.output  # type: ignore[attr-defined]
        assert output.count(FAILING) == 1, output
        assert output.count(RECOVERED) == 1, output
        assert "Traceback" not in output, output
