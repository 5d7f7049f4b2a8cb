"""Run `uptally` as a real process in tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

UPTALLY = [sys.executable, "-m", "uptally"]


@asynccontextmanager
async def serving(
    config: Path, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 30.0
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start `uptally serve` on a free port; yield its URL; SIGTERM it and expect exit 0."""
    process = await asyncio.create_subprocess_exec(
        *UPTALLY,
        "serve",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    output: list[str] = []
    url = None
    async with asyncio.timeout(timeout):
        while url is None:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise AssertionError("uptally serve exited early:\n" + "".join(output))
            output.append(line)
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                url = match[1]
    drain = asyncio.create_task(_collect(process, output))
    try:
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await process.wait()
        await drain
        text = "".join(output)
        process.output = text  # type: ignore[attr-defined]
        assert code == 0, f"uptally serve exited with {code}:\n{text}"


async def _collect(process: asyncio.subprocess.Process, output: list[str]) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        output.append(line.decode())


async def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *UPTALLY,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    async with asyncio.timeout(timeout):
        stdout, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode()
