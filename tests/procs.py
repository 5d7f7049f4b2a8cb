"""Run `uptally` as a real process in tests."""

from __future__ import annotations

import asyncio
import contextlib
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
    config: Path,
    data_dir: Path,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    port: int = 0,
    args: tuple[str, ...] = (),
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start `uptally serve` on `port` (default: a free one); yield its URL; SIGTERM it and
    expect exit 0."""
    process = await asyncio.create_subprocess_exec(
        *UPTALLY,
        "serve",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    output: list[str] = []
    url = None
    try:
        async with asyncio.timeout(timeout):
            while url is None:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("uptally serve exited early:\n" + "".join(output))
                output.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    url = match[1]
    except BaseException:  # never leave a serve running behind a failed test
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    drain = asyncio.create_task(_collect(process, output))
    try:
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Hub:
    """`uptally serve` on a fixed port, so that it can be killed and come back at the same URL."""

    def __init__(
        self, config: Path, data_dir: Path, env: dict[str, str], extra: tuple[str, ...] = ()
    ) -> None:
        self.extra = extra
        self.config = config
        self.data_dir = data_dir
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []

    async def start(self, timeout: float = 30) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *UPTALLY,
            "serve",
            "--config",
            str(self.config),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("uptally serve exited early:\n" + "".join(self.output))
                self.output.append(line)
                if "listening on" in line:
                    break
        self._drain = asyncio.create_task(_collect(self.process, self.output))

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._drain

    async def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
        await self._drain
        return code


async def start_agent(
    hub: str, location: str, token: str, queue_dir: Path, *extra: str, log: Path | None = None
) -> asyncio.subprocess.Process:
    """`uptally probe` for one location (canaries checked every 300 ms, for tests); its
    warnings go to the file `log` if given."""
    with contextlib.ExitStack() as files:
        stderr = asyncio.subprocess.DEVNULL if log is None else files.enter_context(log.open("ab"))
        return await asyncio.create_subprocess_exec(
            *UPTALLY,
            "probe",
            "--hub",
            hub,
            "--location",
            location,
            "--token",
            token,
            "--queue-dir",
            str(queue_dir),
            "--canary-interval",
            "300ms",
            "--log-level",
            "warning",
            *extra,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
