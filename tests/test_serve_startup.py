"""`uptally serve` with a data directory it cannot use: one line naming it and why, exit 2."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import run_cli

CONFIG = "site: {title: Startup}\nmonitors: []\n"


async def serve(tmp_path: Path, data_dir: Path) -> tuple[int, str]:
    config = tmp_path / "uptally.yaml"
    config.write_text(CONFIG)
    return await run_cli(
        "serve", "--config", str(config), "--data-dir", str(data_dir), "--port", "0"
    )


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory this process cannot write to: a read-only tmpfs (root ignores
    permissions), or a mode-555 directory for anyone else."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def one_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


async def test_an_empty_read_only_data_directory_is_one_line_and_exit_2(
    tmp_path: Path, read_only_dir: Path
) -> None:
    code, output = await serve(tmp_path, read_only_dir)
    assert code == 2, output
    line = one_line(output)
    assert line.startswith(f"cannot write to the data directory {read_only_dir}: "), line
    assert ("Read-only file system" in line) or ("Permission denied" in line), line
    assert os.listdir(read_only_dir) == []


async def test_a_data_directory_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, output = await serve(tmp_path, blocker / "data")
    assert code == 2, output
    assert one_line(output) == (
        f"cannot create the data directory {blocker / 'data'}: {blocker} is not a directory: "
        "not starting"
    )
    assert blocker.read_text() == "not a directory"


async def test_a_data_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, output = await serve(tmp_path, blocker)
    assert code == 2, output
    assert one_line(output) == (
        f"cannot use the data directory {blocker}: it is not a directory: not starting"
    )


@pytest.mark.parametrize("token", ["demo", "admin-admin-admin-a", "0123456789abcde"])
async def test_a_guessable_admin_token_is_refused_outside_a_demo(
    tmp_path: Path, token: str
) -> None:
    config = tmp_path / "uptally.yaml"
    config.write_text(CONFIG)
    code, output = await run_cli(
        "serve", "--config", str(config), "--data-dir", str(tmp_path / "d"), "--port", "0",
        env={"UPTALLY_ADMIN_TOKEN": token},
    )  # fmt: skip
    assert code == 2, output
    assert "UPTALLY_ADMIN_TOKEN" in one_line(output)
    assert not (tmp_path / "d").exists()  # refused before anything was created


async def test_a_demo_accepts_a_short_admin_token_and_says_so(tmp_path: Path) -> None:
    from tests.procs import serving

    config = tmp_path / "uptally.yaml"
    config.write_text(CONFIG)
    env = {"UPTALLY_ADMIN_TOKEN": "demo"}
    async with serving(config, tmp_path / "d", env, args=("--demo",)) as (base, _):
        assert base.startswith("http://127.0.0.1:")
