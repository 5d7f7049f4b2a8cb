"""How long big answers hold the event loop: the status page and the monitor list at N monitors.

    python bench/render_stall.py [--monitors 10000]

In one process (as `uptally serve` runs them): a runtime on SQLite with N tcp monitors (probe
off, one result each, ten monitors per component), the ASGI app called directly, and a sampler
on the same loop that wakes every 2 ms and records how late it woke. For each request: its
wall time and the loop's longest stall while it ran (aim: < 20 ms; every stall is time no
check's reply is read).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _support import table

TOKEN = "bench-admin-token"


class LoopLag:
    """Wakes every `every_s` and records how late it woke: the loop's stalls."""

    def __init__(self, every_s: float = 0.002) -> None:
        self.every_s = every_s
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.every_s)
            self.worst = max(self.worst, loop.time() - before - self.every_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.worst = 0.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def call(app: Any, path: str, query: str = "") -> tuple[int, int]:
    """GET `path` from the ASGI app; (status, body size)."""
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
    size = sum(len(m.get("body", b"")) for m in sent if m["type"] == "http.response.body")
    return status, size


async def measure(monitors: int) -> list[tuple[str, ...]]:
    import uvloop  # noqa: F401 - the same loop as serve

    from uptally.clock import SystemClock
    from uptally.config import parse_config
    from uptally.ids import new_id
    from uptally.results import Result
    from uptally.runtime import Runtime
    from uptally.store.database import Database
    from uptally.web.app import create_app

    directory = tempfile.mkdtemp(prefix="uptally-bench-stall-")
    lines = ["site: {title: stall}", "probe: {enabled: false}", "monitors:"]
    lines += [
        f"  - {{id: m{i:05d}, name: Service {i}, kind: tcp, host: 127.0.0.1, port: 9}}"
        for i in range(monitors)
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:04d}, name: Component {i}, group: Group {i // 100}, "
        f"monitors: [{', '.join(f'm{j:05d}' for j in range(i * 10, min(monitors, i * 10 + 10)))}]}}"
        for i in range((monitors + 9) // 10)
    ]
    config = parse_config("\n".join(lines) + "\n")
    runtime = Runtime(config, Database(f"sqlite+aiosqlite:///{directory}/u.db"), run_probe=False)
    await runtime.start()
    app = create_app(runtime, admin_token=TOKEN)
    clock = SystemClock()
    for monitor in config.monitors:
        now = clock.now_ms()
        runtime.ingest.submit(Result(new_id(now), monitor.id, "local", now, True, 0.4, None, ""))
    await runtime.ingest.drained()
    await runtime.ingest.flush()
    lag = LoopLag()
    lag.start()
    rows = [("request", "status", "size", "wall", "loop max stall")]
    requests = [
        ("GET / (first render)", "/", ""),
        ("GET / (cached)", "/", ""),
        ("GET /api/v2/summary.json", "/api/v2/summary.json", ""),
        ("GET /api/v1/monitors (first page)", "/api/v1/monitors", ""),
        ("GET /api/v1/monitors?limit=1000", "/api/v1/monitors", "limit=1000"),
        ("GET /api/v1/monitors?state=down", "/api/v1/monitors", "state=down"),
    ]
    for label, path, query in requests:
        await asyncio.sleep(0.05)
        lag.reset()
        started = time.perf_counter()
        status, size = await call(app, path, query)
        wall = time.perf_counter() - started
        await asyncio.sleep(0.01)
        rows.append(
            (
                label,
                str(status),
                f"{size / 1e6:.2f} MB",
                f"{wall * 1000:.0f} ms",
                f"{lag.worst * 1000:.0f} ms",
            )
        )
    await lag.stop()
    await runtime.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    args = parser.parse_args()
    import uvloop

    rows = uvloop.run(measure(args.monitors))
    print(f"{args.monitors} monitors, one process, loop sampled every 2 ms\n")
    print(table(rows))


if __name__ == "__main__":
    main()
