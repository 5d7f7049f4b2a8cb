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
import collections
import sys
import tempfile
import threading
import time
import traceback
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
        self.woke = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.every_s)
            self.woke = time.perf_counter()
            self.worst = max(self.worst, loop.time() - before - self.every_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        self.worst = 0.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class StallStacks:
    """A watchdog thread: while the loop has not woken for `over_s`, it samples the loop
    thread's stack; what the loop was doing when it stalled, counted by the innermost
    uptally frame (`--stacks`)."""

    def __init__(self, lag: LoopLag, over_s: float = 0.015) -> None:
        self.lag, self.over_s = lag, over_s
        self.loop_thread = threading.get_ident()
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.003):
            if time.perf_counter() - self.lag.woke < self.over_s:
                continue
            for ident, frame in sys._current_frames().items():
                if ident == threading.get_ident():
                    continue
                stack = traceback.extract_stack(frame)
                ours = [f for f in stack if "/uptally/" in f.filename] or stack[-1:]
                where = " < ".join(f"{f.name}:{f.lineno}" for f in reversed(ours[-3:]))
                who = "loop" if ident == self.loop_thread else "other"
                self.counts[f"{who}: {where} [{stack[-1].name}:{stack[-1].lineno}]"] += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


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


async def measure(monitors: int, stacks: bool) -> list[tuple[str, ...]]:
    import uvloop  # noqa: F401 - the same loop as serve

    from uptally.cli.core import tune_gc
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
    tune_gc()  # as serve does once started
    lag = LoopLag()
    lag.start()
    watchdog = StallStacks(lag)
    if stacks:
        watchdog.start()
    rows = [("request", "status", "size", "wall", "loop max stall")]
    requests = [
        ("GET / (first render)", "/", ""),
        ("GET / (cached)", "/", ""),
        ("GET /api/v2/summary.json", "/api/v2/summary.json", ""),
        ("GET /api/v1/monitors (first page)", "/api/v1/monitors", ""),
        ("GET /api/v1/monitors?limit=1000", "/api/v1/monitors", "limit=1000"),
        ("GET /api/v1/monitors?state=down", "/api/v1/monitors", "state=down"),
        ("GET /metrics", "/metrics", ""),
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
    if stacks:
        watchdog.stop()
        print("where the loop was while stalled > 15 ms (samples every 3 ms):")
        for where, count in watchdog.counts.most_common(60):
            print(f"{count:5d}  {where}")
        print()
    await runtime.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument(
        "--stacks", action="store_true", help="also print where the loop was while it stalled"
    )
    args = parser.parse_args()
    import uvloop

    rows = uvloop.run(measure(args.monitors, args.stacks))
    print(f"{args.monitors} monitors, one process, loop sampled every 2 ms\n")
    print(table(rows))


if __name__ == "__main__":
    main()
