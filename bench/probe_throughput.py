"""Probe throughput: uptally end to end (checked, stored, evaluated) against nginx on 127.0.0.1.

    python bench/probe_throughput.py [--seconds 10] [--quick]

Every check opens a fresh connection, as real monitoring does. In the same run, against the same
nginx, it measures two references:
  * the bare ceiling: a plain asyncio client loop (asyncio streams, 64 at a time), and the same
    loop on uvloop;
  * Prometheus blackbox_exporter's http prober driven by wrk (16 connections).
uptally is offered increasing rates (N monitors at a 1 s interval); the best rate it sustains
(≥ 97 % of the offered checks completed and scheduler lateness p99 < 250 ms) is its throughput.
A second scenario runs 10,000 monitors at 60 s and reports scheduler lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import cpu_seconds, free_port, nginx, percentile, table

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n"


# -- workers (each runs in its own process) ----------------------------------------------------


async def _bare_loop(port: int, seconds: float) -> dict[str, float]:
    count = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal count
        while time.monotonic() < stop:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await reader.read()
            writer.close()
            count += 1

    started = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(worker() for _ in range(64)))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return {"rate": count / elapsed, "cpu": used / elapsed}


async def _uptally(
    port: int, monitors: int, interval_s: float, warmup: float, seconds: float
) -> dict[str, float]:
    from sqlalchemy import func, select

    from uptally.cli.core import tune_gc
    from uptally.config import parse_config
    from uptally.runtime import Runtime
    from uptally.store.database import Database
    from uptally.store.tables import results

    lines = ["monitors:"]
    lines.extend(
        f"  - {{id: m{i}, kind: http, url: 'http://127.0.0.1:{port}/health', "
        f"interval: {interval_s}s, timeout: 5s, expect: ['status == 200']}}"
        for i in range(monitors)
    )
    lines.append("probe: {concurrency: 1000}")
    config = parse_config("\n".join(lines))
    directory = tempfile.mkdtemp(prefix="uptally-bench-")
    runtime = Runtime(config, Database(f"sqlite+aiosqlite:///{directory}/uptally.db"))
    lateness: list[float] = []
    runtime.probe.scheduler._on_lateness = lateness.append  # collect raw samples
    await runtime.start()
    tune_gc()  # what `uptally serve` does after start-up
    await asyncio.sleep(warmup)
    checks_before = _checks(runtime)
    lateness.clear()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    done = _checks(runtime) - checks_before
    samples = list(lateness)
    await runtime.stop()
    db = Database(f"sqlite+aiosqlite:///{directory}/uptally.db")
    async with db.connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(results))).scalar() or 0
    await db.close()
    shutil.rmtree(directory, ignore_errors=True)
    return {
        "offered": monitors / interval_s,
        "rate": done / elapsed,
        "cpu": (after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime) / elapsed,
        "late_p50": percentile(samples, 0.5),
        "late_p99": percentile(samples, 0.99),
        "stored": stored,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _checks(runtime: object) -> float:
    total = 0.0
    for metric in runtime.metrics.checks.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return total


def _worker(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "bare":
        port, seconds, loop = int(argv[1]), float(argv[2]), argv[3]
        if loop == "uvloop":
            import uvloop

            result = uvloop.run(_bare_loop(port, seconds))
        else:
            result = asyncio.run(_bare_loop(port, seconds))
    else:
        import uvloop

        port, monitors, interval, warmup, seconds = (
            int(argv[1]),
            int(argv[2]),
            float(argv[3]),
            float(argv[4]),
            float(argv[5]),
        )
        result = uvloop.run(_uptally(port, monitors, interval, warmup, seconds))
    print(json.dumps(result))


def _run_worker(*args: object) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- references --------------------------------------------------------------------------------


def blackbox(port: int, seconds: float) -> float | None:
    exporter = shutil.which("prometheus-blackbox-exporter")
    wrk = shutil.which("wrk")
    if not exporter or not wrk:
        return None
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-bb-"))
    (directory / "bb.yml").write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n")
    listen = free_port()
    process = subprocess.Popen(
        [
            exporter,
            f"--config.file={directory / 'bb.yml'}",
            f"--web.listen-address=127.0.0.1:{listen}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        url = (
            f"http://127.0.0.1:{listen}/probe?module=http_2xx&target=http://127.0.0.1:{port}/health"
        )
        out = subprocess.run(
            [wrk, "-t2", "-c16", f"-d{int(seconds)}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out.split("Requests/sec:")[1].split()[0])
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="fewer steps, skip the 10k scenario")
    args = parser.parse_args()
    seconds = args.seconds
    print(f"probe throughput on {os.cpu_count()} CPUs, {seconds:.0f} s per measurement\n")
    with nginx() as (port, nginx_pids):

        def nginx_cpu() -> float:
            return sum(cpu_seconds(pid) for pid in nginx_pids)

        bare = _run_worker("bare", port, seconds, "asyncio")
        bare_uv = _run_worker("bare", port, seconds, "uvloop")
        bb = blackbox(port, seconds)
        steps = [1000, 2000, 3000, 3500, 4000, 4500, 5000, 6000] if not args.quick else [3000, 4000]
        runs = []
        best: dict[str, float] | None = None
        for rate in steps:
            before = nginx_cpu()
            run = _run_worker("uptally", port, rate, 1.0, 3.0, seconds)
            run["nginx_cpu"] = (nginx_cpu() - before) / (seconds + 6)
            runs.append(run)
            sustained = run["rate"] >= 0.97 * run["offered"] and run["late_p99"] < 250
            run["sustained"] = float(sustained)
            if sustained:
                best = run
            else:
                break
        big = None if args.quick else _run_worker("uptally", port, 10_000, 60.0, 65.0, 60.0)

    rows = [
        ("uptally offered/s", "done/s", "cpu", "late p50 ms", "late p99 ms", "stored", "kept up")
    ]
    rows.extend(
        (
            f"{run['offered']:.0f}",
            f"{run['rate']:.0f}",
            f"{run['cpu'] * 100:.0f}%",
            f"{run['late_p50']:.1f}",
            f"{run['late_p99']:.1f}",
            f"{run['stored']:.0f}",
            "yes" if run["sustained"] else "no",
        )
        for run in runs
    )
    print(table(rows))
    print()
    ours = best["rate"] if best else 0.0
    refs = [("reference", "req/s", "uptally ratio")]
    refs.append(
        ("bare asyncio streams (ceiling)", f"{bare['rate']:.0f}", f"{ours / bare['rate']:.2f}")
    )
    refs.append(("bare uvloop streams", f"{bare_uv['rate']:.0f}", f"{ours / bare_uv['rate']:.2f}"))
    if bb:
        refs.append(("blackbox_exporter via wrk", f"{bb:.0f}", f"{ours / bb:.2f}"))
    print(table(refs))
    print(
        f"\nuptally sustained end to end: {ours:.0f} checks/s "
        f"(aim: ahead of blackbox_exporter and >= 50 % of the bare ceiling)"
    )
    if big:
        print(
            f"\n10,000 monitors at 60 s: {big['rate']:.0f} checks/s, scheduler lateness "
            f"p50 {big['late_p50']:.1f} ms, p99 {big['late_p99']:.1f} ms (aim p99 < 250 ms), "
            f"cpu {big['cpu'] * 100:.0f}%, max RSS {big['rss_mb']:.0f} MiB"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        main()
