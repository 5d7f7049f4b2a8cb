"""A check's latency is the target's time: it counts from the moment the socket is opened."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.targets import HttpTarget, Response, TcpTarget, monitor, reply_with
from uptally.checks.registry import run_check

HELD_S = 1.0  # how long the host keeps every name-lookup thread busy


@pytest.mark.parametrize("kind", ["http", "tcp", "jsonrpc"])
async def test_a_host_stall_before_the_connection_is_not_counted_as_latency(kind: str) -> None:
    """The lookup of `localhost` waits for a thread of a busy pool (as when the host is loaded):
    that wait shows as the `dns` step, not in the latency judged and recorded."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1)
    loop.set_default_executor(pool)  # getaddrinfo runs in the loop's default executor
    release = threading.Event()
    busy = loop.run_in_executor(pool, release.wait, 30)
    rpc = Response(200, {"jsonrpc": "2.0", "id": 1, "result": {}})
    target: Any = (
        TcpTarget(reply_with(b"pong\n"))
        if kind == "tcp"
        else HttpTarget({"/": Response(200, "ok"), "/rpc": rpc})
    )
    async with target:
        fields: dict[str, Any] = {
            "http": {"url": f"http://localhost:{target.port}/"},
            "tcp": {"host": "localhost", "port": target.port, "expect": ["reply contains pong"]},
            "jsonrpc": {"url": f"http://localhost:{target.port}/rpc", "method": "ping"},
        }[kind]
        spec = monitor(kind=kind, timeout="10s", **fields)
        loop.call_later(HELD_S, release.set)
        result = await run_check(spec)
    await busy
    pool.shutdown()
    assert result.ok, result.message
    assert result.latency_ms is not None
    dns = next(t.ms for t in result.timings if t.name == "dns")
    assert dns >= HELD_S * 1000 * 0.5  # the stall happened, before the connection
    assert result.latency_ms < dns  # and is not the target's time
