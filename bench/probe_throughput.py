"""Probe throughput: uptally end to end (checked, stored, evaluated) against nginx on 127.0.0.1.

    python bench/probe_throughput.py [--seconds 10] [--warmup 3] [--quick] [--steps 1000,2000]

Every check opens a fresh connection, as real monitoring does. In the same run, against the same
nginx, it measures the references:
  * the bare ceiling: a plain client loop (streams, 64 at a time) on uvloop, the loop uptally
    runs on, and the same loop on asyncio;
  * Prometheus blackbox_exporter's http prober driven by wrk (16 connections).
uptally is offered increasing rates (N monitors at a 1 s interval). Each run leaves out a
warm-up, then for the measurement window counts checks finished and, every 0.5 s, reads back
from the database (a second, read-only connection) how many results are stored, and the writer's
backlog. A rate is sustained when >= 97 % of the offered checks finish, scheduler lateness p99
< 250 ms, and the writer keeps up: results stored at >= 95 % of the check rate with no growing
backlog. The best sustained stored rate is uptally's throughput. A run in which the writer fell
behind fails the benchmark (exit 1): checks that are not stored are not throughput.
A second scenario runs 10,000 monitors at 60 s and reports scheduler lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import cpu_seconds, free_port, nginx, percentile, table

KEEP_UP = 0.95  # stored/checked below this, or backlog growth above 1 - this: behind
SAMPLE_S = 0.5  # how often the stored count and the backlog are read during a run
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
    from uptally.cli.core import tune_gc
    from uptally.config import parse_config
    from uptally.runtime import Runtime
    from uptally.store.database import Database

    lines = ["monitors:"]
    lines.extend(
        f"  - {{id: m{i}, kind: http, url: 'http://127.0.0.1:{port}/health', "
        f"interval: {interval_s}s, timeout: 5s, expect: ['status == 200']}}"
        for i in range(monitors)
    )
    lines.append("probe: {concurrency: 1000}")
    config = parse_config("\n".join(lines))
    directory = tempfile.mkdtemp(prefix="uptally-bench-")
    path = f"{directory}/uptally.db"
    runtime = Runtime(config, Database(f"sqlite+aiosqlite:///{path}"))
    lateness: list[float] = []
    runtime.probe.scheduler._on_lateness = lateness.append  # collect raw samples
    await runtime.start()
    tune_gc()  # what `uptally serve` does after start-up
    # The writer's own connection never answers "how many are stored": a second one, read-only,
    # counts the rows committed while the run goes on (in a thread, off the event loop).
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    await asyncio.sleep(warmup)

    async def sample() -> tuple[float, float, float, float]:
        stored = await asyncio.to_thread(_stored, reader)
        return time.perf_counter(), _checks(runtime), stored, float(runtime.ingest.pending)

    lateness.clear()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    samples = [await sample()]
    stop = samples[0][0] + seconds
    while time.perf_counter() < stop:
        await asyncio.sleep(min(SAMPLE_S, max(0.0, stop - time.perf_counter())))
        samples.append(await sample())
    after = resource.getrusage(resource.RUSAGE_SELF)
    late = list(lateness)
    await runtime.stop()
    reader.close()
    shutil.rmtree(directory, ignore_errors=True)
    times = [s[0] for s in samples]
    elapsed = times[-1] - times[0]
    backlog = [s[3] for s in samples]
    return {
        "offered": monitors / interval_s,
        "rate": (samples[-1][1] - samples[0][1]) / elapsed,
        "stored_rate": _slope(times, [s[2] for s in samples]),
        "backlog_start": backlog[0],
        "backlog_end": backlog[-1],
        "backlog_max": max(backlog),
        "backlog_slope": _slope(times, backlog),
        "window": elapsed,
        "cpu": (after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime) / elapsed,
        "late_p50": percentile(late, 0.5),
        "late_p99": percentile(late, 0.99),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _stored(reader: sqlite3.Connection) -> float:
    return float(reader.execute("SELECT count(*) FROM results").fetchone()[0])


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope: a rate that one batch committed just before a sample cannot sway."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


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


def writer_behind(run: dict[str, float]) -> str | None:
    """Why the writer did not keep up with the checks in this run, or None when it did."""
    if run["stored_rate"] < KEEP_UP * run["rate"]:
        return (
            f"{run['rate']:.0f} checks/s done but only {run['stored_rate']:.0f}/s stored "
            f"(< {KEEP_UP:.0%})"
        )
    if run["backlog_slope"] > (1 - KEEP_UP) * run["rate"]:
        return (
            f"the writer backlog grew {run['backlog_slope']:.0f}/s "
            f"({run['backlog_start']:.0f} -> {run['backlog_end']:.0f} in {run['window']:.0f} s)"
        )
    return None


def shortfall(run: dict[str, float]) -> str | None:
    """Why a run did not sustain its offered rate end to end (checked and stored), if not."""
    if run["rate"] < 0.97 * run["offered"]:
        return "probe"
    if run["late_p99"] >= 250:
        return "lateness"
    if writer_behind(run):
        return "writer"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="left out of every window")
    parser.add_argument("--quick", action="store_true", help="fewer steps, skip the 10k scenario")
    parser.add_argument("--steps", help="offered checks/s to try, e.g. 1000,2000 (overrides)")
    args = parser.parse_args()
    seconds = args.seconds
    print(
        f"probe throughput on {os.cpu_count()} CPUs, {seconds:.0f} s measured per run "
        f"after {args.warmup:.0f} s warm-up\n"
    )
    if args.steps:
        steps = [int(step) for step in args.steps.split(",")]
    elif args.quick:
        steps = [1000, 2000, 3000]
    else:
        steps = [1000, 2000, 3000, 3500, 4000, 4500, 5000, 6000]
    with nginx() as (port, nginx_pids):

        def nginx_cpu() -> float:
            return sum(cpu_seconds(pid) for pid in nginx_pids)

        bare = _run_worker("bare", port, seconds, "asyncio")
        bare_uv = _run_worker("bare", port, seconds, "uvloop")
        bb = blackbox(port, seconds)
        runs = []
        best: dict[str, float] | None = None
        for rate in steps:
            before = nginx_cpu()
            run = _run_worker("uptally", port, rate, 1.0, args.warmup, seconds)
            run["nginx_cpu"] = (nginx_cpu() - before) / (seconds + args.warmup)
            runs.append(run)
            if shortfall(run) is None:
                best = run
            else:
                break
        big = (
            None
            if args.quick or args.steps
            else _run_worker("uptally", port, 10_000, 60.0, 65.0, 60.0)
        )

    rows = [
        (
            "uptally offered/s",
            "checked/s",
            "stored/s",
            "backlog start>end (max)",
            "cpu",
            "late p50 ms",
            "late p99 ms",
            "kept up",
        )
    ]
    rows.extend(
        (
            f"{run['offered']:.0f}",
            f"{run['rate']:.0f}",
            f"{run['stored_rate']:.0f}",
            f"{run['backlog_start']:.0f}>{run['backlog_end']:.0f} ({run['backlog_max']:.0f})",
            f"{run['cpu'] * 100:.0f}%",
            f"{run['late_p50']:.1f}",
            f"{run['late_p99']:.1f}",
            "yes" if shortfall(run) is None else f"no: {shortfall(run)}",
        )
        for run in runs
    )
    print(table(rows))
    print(
        "\nchecked/s: checks finished; stored/s: result rows read back from the database by a "
        f"second connection every {SAMPLE_S} s during the window; backlog: results waiting for "
        "the writer"
    )
    print()
    ours = best["stored_rate"] if best else 0.0
    refs = [("reference (same run, same nginx)", "req/s", "uptally stored/s ratio")]
    refs.append(
        (
            "bare uvloop streams (ceiling: uptally's loop)",
            f"{bare_uv['rate']:.0f}",
            f"{ours / bare_uv['rate']:.2f}",
        )
    )
    refs.append(("bare asyncio streams", f"{bare['rate']:.0f}", f"{ours / bare['rate']:.2f}"))
    if bb:
        refs.append(("blackbox_exporter via wrk", f"{bb:.0f}", f"{ours / bb:.2f}"))
    print(table(refs))
    print(
        f"\nuptally sustained end to end (checked and stored): {ours:.0f} checks/s "
        f"(aim: ahead of blackbox_exporter and >= 50 % of the bare uvloop ceiling)"
    )
    if big:
        print(
            f"\n10,000 monitors at 60 s: {big['rate']:.0f} checks/s, {big['stored_rate']:.0f} "
            f"stored/s, scheduler lateness p50 {big['late_p50']:.1f} ms, p99 "
            f"{big['late_p99']:.1f} ms (aim p99 < 250 ms), cpu {big['cpu'] * 100:.0f}%, "
            f"max RSS {big['rss_mb']:.0f} MiB"
        )
    behind = [
        (f"{run['offered']:.0f} offered checks/s", reason)
        for run in [*runs, *([big] if big else [])]
        if (reason := writer_behind(run)) is not None
    ]
    for where, reason in behind:
        print(f"\nFAIL: the writer fell behind at {where}: {reason}", file=sys.stderr)
    if behind:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
    else:
        main()
