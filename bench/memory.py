"""Memory per idle monitor: what 10,000 configured, scheduled and evaluated monitors cost.

    python bench/memory.py [--monitors 10000]

Each run is a fresh process: load a config of N http monitors (60 s interval), start the runtime
on SQLite, put every monitor on the scheduler, give each one result (so it has evaluator state,
a last result and a rollup), flush, collect garbage, hand freed memory back to the system (as
`uptally serve` does after starting), then read the resident set size. The same
is done with no monitors; the difference divided by N is the cost of one idle monitor (aim:
< 2 KiB). Python's own allocations (tracemalloc) are reported beside RSS.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import table


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def measure(monitors: int, trace: bool) -> dict[str, float]:
    import uvloop  # noqa: F401 - imported for the same baseline as serve

    from uptally.clock import SystemClock
    from uptally.config import parse_config
    from uptally.config.schema import ActiveMonitor
    from uptally.heap import release_free_memory
    from uptally.ids import new_id
    from uptally.results import Result
    from uptally.runtime import Runtime
    from uptally.store.database import Database
    from uptally.web.app import create_app

    directory = tempfile.mkdtemp(prefix="uptally-bench-mem-")
    lines = ["site: {title: memory}", "monitors:"]
    lines += [
        f"  - {{id: service-{i:05d}, kind: http, "
        f"url: 'https://service-{i:05d}.example.com/health', "
        f"expect: ['status == 200', 'latency < 500ms']}}"
        for i in range(monitors)
    ]
    text = "\n".join(lines) + "\n" if monitors else "site: {title: memory}\n"
    gc.collect()
    base_rss = rss_kib()
    if trace:
        tracemalloc.start()
    base_py = tracemalloc.get_traced_memory()[0]
    config = parse_config(text)
    runtime = Runtime(config, Database(f"sqlite+aiosqlite:///{directory}/u.db"), run_probe=False)
    await runtime.start()
    create_app(runtime)
    runtime.probe.set_monitors(m for m in config.monitors if isinstance(m, ActiveMonitor))
    clock = SystemClock()
    for monitor in config.monitors:
        now = clock.now_ms()
        runtime.ingest.submit(Result(new_id(now), monitor.id, "local", now, True, 12.5, None, ""))
    await runtime.ingest.drained()
    await runtime.ingest.flush()
    gc.collect()
    py = tracemalloc.get_traced_memory()[0] - base_py
    tracemalloc.stop()
    gc.collect()
    release_free_memory()  # as `uptally serve` does once it has started
    rss = rss_kib() - base_rss
    await runtime.stop()
    return {"rss_kib": rss, "py_kib": py / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--monitors", type=int, default=10_000)
    args = parser.parse_args()
    runs = {}
    for n in (0, args.monitors):
        # RSS from a run without tracemalloc (its bookkeeping is memory too), heap from one with.
        measured = {}
        for trace in ("rss", "heap"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", str(n), trace],
                capture_output=True,
                text=True,
                check=True,
            )
            measured[trace] = json.loads(out.stdout.strip().splitlines()[-1])
        runs[n] = {"rss_kib": measured["rss"]["rss_kib"], "py_kib": measured["heap"]["py_kib"]}
    n = args.monitors
    per_rss = (runs[n]["rss_kib"] - runs[0]["rss_kib"]) / n * 1024
    per_py = (runs[n]["py_kib"] - runs[0]["py_kib"]) / n * 1024
    print(f"memory per idle monitor ({n} http monitors, scheduled, evaluated, one result each)\n")
    print(
        table(
            [
                ("", "RSS growth", "Python heap growth"),
                (
                    "0 monitors",
                    f"{runs[0]['rss_kib'] / 1024:.1f} MiB",
                    f"{runs[0]['py_kib'] / 1024:.1f} MiB",
                ),
                (
                    f"{n} monitors",
                    f"{runs[n]['rss_kib'] / 1024:.1f} MiB",
                    f"{runs[n]['py_kib'] / 1024:.1f} MiB",
                ),
                ("per monitor", f"{per_rss:.0f} B", f"{per_py:.0f} B"),
            ]
        )
    )
    print(
        f"\naim: < 2048 B per idle monitor; ratio to aim: {per_rss / 2048:.2f} (RSS), "
        f"{per_py / 2048:.2f} (heap)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        import uvloop

        print(json.dumps(uvloop.run(measure(int(sys.argv[2]), sys.argv[3] == "heap"))))
    else:
        main()
