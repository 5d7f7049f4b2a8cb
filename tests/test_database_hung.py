"""A hung PostgreSQL (SIGSTOP): uptally answers 503 at once instead of hanging, then recovers."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.pgcluster import SERVER_PACKAGE, Cluster, private_cluster, server_bin
from tests.procs import serving

pytestmark = [pytest.mark.slow, pytest.mark.pg]

TOKEN = "hung-admin-token-k7Qz"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PING = "/ping/job-token-123"
RESULTS = "/api/v1/monitors/job/results"  # read from the database


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if server_bin() is None:
        if os.environ.get("UPTALLY_REQUIRE_PG") == "1":  # CI: PostgreSQL tests never skip
            pytest.fail(f"no PostgreSQL server binaries (Debian package {SERVER_PACKAGE})")
        pytest.skip(f"no PostgreSQL server binaries (Debian package {SERVER_PACKAGE})")
    with private_cluster() as running:
        yield running


async def _get(http: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[int, str, float]:
    started = time.monotonic()
    async with http.get(url, **kwargs) as response:  # type: ignore[arg-type]
        text = await response.text()
        return response.status, text, time.monotonic() - started


async def _until_ok(http: aiohttp.ClientSession, url: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while (await _get(http, url))[0] != 200:
            await asyncio.sleep(0.1)


async def test_a_hung_database_answers_503_quickly_and_recovers(
    cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "uptally.yaml"
    config.write_text("""
site: {title: Hung}
monitors:
  - {id: job, kind: heartbeat, period: 1h, grace: 10m, token: job-token-123}
components:
  - {id: job, name: Job, monitors: [job]}
""")
    env = {"UPTALLY_DATABASE_URL": cluster.url, "UPTALLY_ADMIN_TOKEN": TOKEN}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        serving(config, tmp_path / "data", env) as (base, _),
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        await _until_ok(http, f"{base}/readyz")
        assert (await _get(http, base + PING))[:2] == (200, "OK")
        assert (await _get(http, f"{base}{RESULTS}", headers=AUTH))[0] == 200
        page = await _get(http, f"{base}/")
        assert page[0] == 200

        cluster.freeze()
        try:
            status, text, took = await _get(http, f"{base}/readyz")
            assert status == 503, text
            assert took < 2.5, f"/readyz took {took:.1f} s"
            assert '"status":"unavailable"' in text.replace(" ", "")
            assert "database" in text

            status, text, took = await _get(http, base + PING)
            assert status == 503, text  # not stored: never OK; curl --retry tries again
            assert took < 8, f"the ping took {took:.1f} s"

            status, text, took = await _get(http, f"{base}{RESULTS}", headers=AUTH)
            assert status == 503, text
            assert '"database_unavailable"' in text
            assert took < 15, f"the admin API took {took:.1f} s"

            status, text, took = await _get(http, f"{base}/")
            assert status == 200  # the status page serves what it has
            assert took < 2.5, f"the status page took {took:.1f} s"
        finally:
            cluster.thaw()

        await _until_ok(http, f"{base}/readyz")
        assert (await _get(http, base + PING))[:2] == (200, "OK")
        status, text, _ = await _get(http, f"{base}{RESULTS}", headers=AUTH)
        assert status == 200, text
