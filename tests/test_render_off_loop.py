"""Big pages render off the event loop: the loop that reads the probes' replies keeps turning."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.conftest import config_from
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

MONITORS = 3000
TOKEN = "render-token"
BOUND_S = 0.25  # generous for a loaded machine; a render on the loop stalls it for seconds


def config_text() -> str:
    lines = ["site: {title: Big}", "probe: {enabled: false}", "monitors:"]
    lines += [
        f"  - {{id: m{i:05d}, name: Service {i}, kind: tcp, host: 127.0.0.1, port: 9}}"
        for i in range(MONITORS)
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:04d}, name: Component {i}, group: G{i // 50}, "
        f"monitors: [{', '.join(f'm{j:05d}' for j in range(i * 5, i * 5 + 5))}]}}"
        for i in range(MONITORS // 5)
    ]
    return "\n".join(lines) + "\n"


async def call(app: Any, path: str, query: str) -> tuple[int, int]:
    """GET `path` from the ASGI app in this loop (no client: only the server's work counts)."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {TOKEN}".encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, sum(len(m.get("body", b"")) for m in sent if m["type"] == "http.response.body")


async def test_the_loop_keeps_turning_while_a_big_page_and_list_are_made(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/u.db")
    runtime = Runtime(config_from(config_text()), db, metrics=Metrics(), run_probe=False)
    await runtime.start()
    worst = 0.0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            worst = max(worst, loop.time() - before - 0.005)

    try:
        app = create_app(runtime, TOKEN)
        sampler = asyncio.get_running_loop().create_task(sample())
        started = time.perf_counter()
        sizes = []
        for path, query in (
            ("/", ""),
            ("/api/v2/components.json", ""),
            ("/api/v1/monitors", "limit=1000"),
        ):
            status, size = await call(app, path, query)
            assert status == 200
            sizes.append(size)
        took = time.perf_counter() - started
        done.set()
        await sampler
    finally:
        await runtime.stop()
    assert sizes[0] > 1_000_000  # a page of megabytes was rendered
    assert worst < BOUND_S, f"the loop stalled {worst:.3f}s (requests took {took:.2f}s)"
