"""Big pages render off the event loop: the loop that reads the probes' replies keeps turning."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import config_from
from uptally.cli.core import tune_gc
from uptally.clock import SystemClock
from uptally.ids import new_id
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

MONITORS = 3000
TOKEN = "render-token"
BOUND_S = 0.25  # generous for a loaded machine; a render on the loop stalls it for seconds


def config_text(monitors: int = MONITORS, per_component: int = 5) -> str:
    lines = ["site: {title: Big}", "probe: {enabled: false}", "monitors:"]
    lines += [
        f"  - {{id: m{i:05d}, name: Service {i}, kind: tcp, host: 127.0.0.1, port: 9}}"
        for i in range(monitors)
    ]
    lines.append("components:")
    lines += [
        f"  - {{id: c{i:04d}, name: Component {i}, group: G{i // 50}, monitors: ["
        + ", ".join(f"m{j:05d}" for j in range(i * per_component, (i + 1) * per_component))
        + "]}"
        for i in range(monitors // per_component)
    ]
    return "\n".join(lines) + "\n"


def waited_to_run_s() -> float:
    """How long this thread has waited for a CPU (runnable, not running) since it began:
    time the machine was too busy to run it at all, not time this process held it."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0  # not Linux: every late wake-up counts


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
        while not done.is_set():
            before, waited = time.perf_counter(), waited_to_run_s()
            await asyncio.sleep(0.005)
            late = time.perf_counter() - before - 0.005
            worst = max(worst, late - (waited_to_run_s() - waited))

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


FIRST_MONITORS = 2000  # one per component: 180,000 day cells, a 17 MB page
# CPU time of the longest collection: 48-80 ms before the model shared its day cells and kept
# one tuple of latencies per monitor (5-11 ms after), on a 2-core machine at load 10-14.
COLLECTION_BOUND_S = 0.04
# The loop's longest hold, less the time the machine gave it no CPU: 105-143 ms before, 12-67
# ms after at that load, where a GIL holder that is not running holds the loop too; generous.
HOLD_BOUND_S = 0.25


async def test_the_first_render_of_a_big_page_holds_the_loop_briefly(tmp_path: Path) -> None:
    """The first render builds the page model in the render thread with the garbage collector
    paused. The first collection after it walks every object the model keeps, holding the GIL
    and so the event loop all along: the model must keep few objects. Measured with hourly
    latencies (as in a running serve) and the collector tuned as serve tunes it."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/u.db")
    config = config_from(config_text(FIRST_MONITORS, per_component=1))
    runtime = Runtime(config, db, metrics=Metrics(), run_probe=False)
    await runtime.start()
    clock = SystemClock()
    for monitor in config.monitors:
        now = clock.now_ms()
        runtime.ingest.submit(Result(new_id(now), monitor.id, "local", now, True, 0.4, None, ""))
    await runtime.ingest.drained()
    await runtime.ingest.flush()  # hourly rollups: every monitor has a latency chart
    holds: list[float] = []
    collections: list[float] = []
    started: list[float] = []

    def timed(phase: str, _info: dict[str, Any]) -> None:
        # The collecting thread's CPU time: a collection holds the GIL throughout.
        if phase == "start":
            started.append(time.thread_time())
        elif started:
            collections.append(time.thread_time() - started.pop())

    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            before, waited = time.perf_counter(), waited_to_run_s()
            await asyncio.sleep(0.002)
            late = time.perf_counter() - before - 0.002
            holds.append(late - (waited_to_run_s() - waited))

    app = create_app(runtime, TOKEN)
    thresholds = gc.get_threshold()
    tune_gc()  # as serve does, once started
    gc.callbacks.append(timed)
    try:
        sampler = asyncio.get_running_loop().create_task(sample())
        status, size = await call(app, "/", "")
        for _ in range(3):  # and what it left is collected after it
            await asyncio.sleep(0.01)
            gc.collect(0)
        done.set()
        await sampler
    finally:
        gc.callbacks.remove(timed)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        await runtime.stop()
    assert status == 200
    assert size > 5_000_000
    held, collected = max(holds), max(collections, default=0.0)
    said = f"the loop was held {held * 1000:.0f} ms, a collection took {collected * 1000:.0f} ms"
    assert collected < COLLECTION_BOUND_S, said
    assert held < HOLD_BOUND_S, said
