"""Schemathesis fuzzes the API from its own OpenAPI document: 4xx JSON errors, never 5xx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

pytestmark = pytest.mark.slow

CONFIG = """
site: {title: Fuzz}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/"}
  - {id: beat, kind: heartbeat, period: 1h}
components:
  - {id: api, monitors: [api]}
"""


@pytest.fixture
async def base(db_url: str) -> AsyncIterator[str]:
    runtime = Runtime(
        config_from(CONFIG),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, "fuzz-token")) as url:
        yield url
    await runtime.stop()


async def test_no_generated_request_gets_a_server_error_or_breaks_the_schema(
    base: str, tmp_path: Path
) -> None:
    binary = str(Path(sys.executable).parent / "schemathesis")
    process = await asyncio.create_subprocess_exec(
        binary,
        "run",
        f"{base}/openapi.json",
        "--checks",
        "all",
        # Business rules beyond the schema (end after start, exactly one of monitor/component,
        # backfills in the past) reject some schema-valid bodies with 422 on purpose.
        "--exclude-checks",
        "positive_data_acceptance",
        "--header",
        "Authorization: Bearer fuzz-token",
        "--max-examples",
        "25",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    async with asyncio.timeout(240):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
