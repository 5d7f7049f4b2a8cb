"""Heartbeat ingest: 1,000 heartbeat monitors pinged by wrk (16 connections) rotating over them.

    python bench/heartbeat_ingest.py [--seconds 15] [--monitors 1000]

`uptally serve` runs as a real process on SQLite (WAL), once with its own synchronous=NORMAL and
once with synchronous=FULL (every commit waits for fsync: what SQLite does by default, so what
a Django app such as Healthchecks runs with). Every ping is answered only after its batch is
committed, so a ping answered "OK" is durable. The run checks that the hard way: after the
measured load, a second burst of pings runs and the server is killed with SIGKILL in the middle
of it; then the pings stored in the database are counted and must be at least the OK answers wrk
counted over both. It fails (exit 1) otherwise. In the same run, nginx answers the same URLs with
a static "OK" (the ceiling of the HTTP path on this machine).

Healthchecks, the reference implementation of this protocol, is not measured here (it needs
Python >= 3.12 and is not installable from a package registry): its figures below are constants
from an earlier run on this machine, and the output says so. The aim is at least 20 times its
rate, like for like (both synchronous=FULL), with p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _support import cpu_seconds, nginx, table

# Not measured in this run: from an earlier run on this machine (Healthchecks on Django's SQLite
# backend, which leaves SQLite's default synchronous=FULL).
HEALTHCHECKS = {
    "rollback journal, synchronous=FULL": 132.0,
    "WAL, synchronous=FULL": 177.0,
}
CRASH_BURST_S = 2  # the burst of pings during which the server is killed

LUA = """
local i = 0
local n = %(n)d
request = function()
  i = (i + 1) %% n
  return wrk.format("GET", string.format("/ping/bench-token-%%05d", i))
end
"""


def wrk_command(url: str, seconds: float, script: Path) -> list[str]:
    return ["wrk", "-t2", "-c16", f"-d{int(seconds)}s", "--latency", "-s", str(script), url]


def parse_wrk(out: str) -> dict[str, float]:
    rate = float(out.split("Requests/sec:")[1].split(maxsplit=1)[0])
    completed = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def latency(label: str) -> float:
        match = re.search(rf"\s{label}\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = int(errors[1]) if errors else 0
    return {
        "rate": rate,
        "completed": completed,
        "non2xx": non2xx,
        "ok": completed - non2xx,
        "p50": latency("50%"),
        "p99": latency("99%"),
        "socket_errors": socket_errors[1] if socket_errors else "",  # type: ignore[dict-item]
    }


def run_wrk(url: str, seconds: float, script: Path) -> dict[str, float]:
    out = subprocess.run(
        wrk_command(url, seconds, script), capture_output=True, text=True, check=True
    ).stdout
    return parse_wrk(out)


def start_serve(
    config: Path, data: Path, synchronous: str, log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "uptally"]
    if synchronous != "NORMAL":
        command = [
            sys.executable,
            str(Path(__file__).parent / "_serve_synchronous.py"),
            synchronous,
        ]
    command += ["serve", "--config", str(config), "--data-dir", str(data), "--port", "0"]
    command += ["--log-level", "warning"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"listening on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return process, found[1]
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit(f"uptally serve did not start:\n{log.read_text(errors='replace')[-3000:]}")


def measure(
    config: Path, directory: Path, synchronous: str, seconds: float, script: Path
) -> dict[str, float]:
    """Load the server, then kill it (SIGKILL) under a second burst; count what it stored."""
    data = directory / f"data-{synchronous.lower()}"
    process, url = start_serve(config, data, synchronous, directory / f"serve-{synchronous}.log")
    try:
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        ours = run_wrk(url, seconds, script)
        ours["cpu"] = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - started)
        burst = subprocess.Popen(
            wrk_command(url, CRASH_BURST_S, script), stdout=subprocess.PIPE, text=True
        )
        time.sleep(CRASH_BURST_S / 2)
    finally:
        process.kill()  # SIGKILL: nothing queued in memory is written out
        process.wait()
    crash = parse_wrk(burst.communicate()[0])
    with sqlite3.connect(data / "uptally.db") as conn:
        ours["stored"] = conn.execute("SELECT count(*) FROM pings").fetchone()[0]
    ours["answered"] = ours["ok"] + crash["ok"]
    ours["crash_answered"] = crash["ok"]
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--monitors", type=int, default=1000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    directory = Path(tempfile.mkdtemp(prefix="uptally-bench-hb-"))
    config = directory / "beats.yaml"
    lines = ["site: {title: bench}", "probe: {enabled: false}", "monitors:"]
    lines += [
        f"  - {{id: job{i:05d}, kind: heartbeat, period: 1h, token: bench-token-{i:05d}}}"
        for i in range(args.monitors)
    ]
    config.write_text("\n".join(lines) + "\n")
    script = directory / "rotate.lua"
    script.write_text(LUA % {"n": args.monitors})

    with nginx(body="OK") as (port, _):
        reference = run_wrk(f"http://127.0.0.1:{port}", args.seconds, script)
    runs = {
        mode: measure(config, directory, mode, args.seconds, script) for mode in ("NORMAL", "FULL")
    }
    shutil.rmtree(directory, ignore_errors=True)

    print(
        f"heartbeat ingest: {args.monitors} monitors, wrk 16 connections, {args.seconds:.0f} s, "
        f"{os.cpu_count()} CPUs\n"
    )
    rows = [("measured in this run", "pings/s", "p50 ms", "p99 ms", "answered OK", "stored")]
    rows.extend(
        (
            f"uptally, SQLite WAL, synchronous={mode}",
            f"{run['rate']:.0f}",
            f"{run['p50']:.2f}",
            f"{run['p99']:.2f}",
            f"{run['answered']:.0f}",
            f"{run['stored']:.0f}",
        )
        for mode, run in runs.items()
    )
    rows.append(
        (
            "nginx static OK (ceiling)",
            f"{reference['rate']:.0f}",
            f"{reference['p50']:.2f}",
            f"{reference['p99']:.2f}",
            "-",
            "-",
        )
    )
    print(table(rows))
    print(
        "\nanswered OK: over the measured load and a second burst during which serve was killed "
        "(SIGKILL); stored: ping rows in the database afterwards"
    )
    for mode, run in runs.items():
        print(
            f"synchronous={mode}: uptally CPU {run['cpu'] * 100:.0f}% of a core, "
            f"non-2xx {run['non2xx']:.0f}, socket errors {run['socket_errors'] or 'none'}, "
            f"ratio to nginx {run['rate'] / reference['rate']:.2f}"
        )
    full = runs["FULL"]["rate"]
    print(
        "\nHealthchecks: NOT measured in this run; figures from an earlier run on this machine, "
        "on Django's SQLite backend:"
    )
    for settings, rate in HEALTHCHECKS.items():
        print(
            f"  {settings}: {rate:.0f} pings/s; uptally with synchronous=FULL does "
            f"{full / rate:.1f}x that (aim >= 20x, p99 < 50 ms)"
        )
    failed = False
    for mode, run in runs.items():
        durable = run["stored"] >= run["answered"]
        failed = failed or not durable
        print(
            f"durability after SIGKILL, synchronous={mode}: {run['stored']:.0f} stored, "
            f"{run['answered']:.0f} answered OK ({run['crash_answered']:.0f} in the killed "
            f"burst): " + ("every answered ping stored" if durable else "ANSWERED PINGS LOST")
        )
    if failed:
        print("FAIL: pings answered OK were not in the database after SIGKILL", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
