"""A private PostgreSQL cluster for tests that freeze or kill the server (never the shared one).

Needs the server binaries (initdb, pg_ctl, postgres): Debian package `postgresql-NN`
(e.g. `postgresql-16`, pulled in by `postgresql`), installed under /usr/lib/postgresql/NN/bin.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.procs import free_port

SERVER_PACKAGE = "postgresql-NN (e.g. postgresql-16; Debian's `postgresql` depends on it)"


def server_bin() -> Path | None:
    """The newest PostgreSQL server bin directory on this machine, or None."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    found = [p for p in found if (p / "pg_ctl").exists() and (p / "postgres").exists()]
    return found[-1] if found else None


class Cluster:
    """initdb + pg_ctl in a temporary directory, on a free port; trust auth, no fsync."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._stopped: list[int] = []
        # initdb refuses to run as root: the cluster then belongs to the `postgres` user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=timeout, cwd=self.root
        )

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self.start_server()

    def start_server(self) -> None:
        """Start the initialised cluster (again, after `stop_server`)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter, …)."""
        pm = self.postmaster()
        pids = [pm]
        for stat in glob.glob("/proc/[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # The command name may hold spaces: the parent pid follows its closing ")".
                fields = Path(stat).read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pm:
                    pids.append(int(stat.split("/")[2]))
        return pids

    def freeze(self) -> None:
        """SIGSTOP the whole cluster: it accepts TCP connections (the kernel does) but never
        answers, like a hung server. The postmaster first, so it forks no new backend."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                self._stopped.append(pid)

    def thaw(self) -> None:
        stopped, self._stopped = self._stopped, []
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def stop_server(self) -> None:
        """Stop the server at once (like a crash), keeping its data for `start_server`."""
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
        )  # fmt: skip

    def stop(self) -> None:
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(
                    str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                    "-w", "-t", "30", "stop",
                )  # fmt: skip


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A running private cluster, always thawed, stopped and removed afterwards. Callers check
    `server_bin()` first and skip when it is missing."""
    bin_dir = server_bin()
    assert bin_dir is not None
    # Not under pytest's tmp_path: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="uptally-pg-"))
    cluster = Cluster(bin_dir, root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
