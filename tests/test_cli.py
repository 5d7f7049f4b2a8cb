"""The command line as a user runs it: exit codes and output of validate, check, serve."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.procs import run_cli
from uptally import __version__

pytestmark = pytest.mark.slow

BAD = """\
site:
  title: Broken
monitors:
  - id: api
    kind: http
    interval: 10x
  - id: api
    kind: tcp
    host: example.com
components:
  - {id: web, monitors: [nope]}
"""


async def test_version_prints_the_version() -> None:
    code, output = await run_cli("--version")
    assert (code, output.strip()) == (0, f"uptally {__version__}")


async def test_validate_accepts_the_demo_config() -> None:
    code, output = await run_cli("validate", "--config", "examples/demo.yaml")
    assert code == 0, output
    assert "OK" in output


async def test_validate_prints_every_problem_with_file_and_line_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD)
    code, output = await run_cli("validate", "--config", str(config))
    assert code == 2
    lines = output.strip().splitlines()
    assert f"{config}:4: monitors[0].url: missing required key 'url' for an http monitor" in lines
    assert any(
        line.startswith(f"{config}:6: monitors[0].interval: invalid duration '10x'")
        for line in lines
    )
    assert any(line.startswith(f"{config}:7: monitors[1].id: duplicate id 'api'") for line in lines)
    assert any(
        line.startswith(f"{config}:7: monitors[1].port: missing required key 'port'")
        for line in lines
    )
    assert any(
        line.startswith(f"{config}:11: components[0].monitors[0]: unknown monitor 'nope'")
        for line in lines
    )


async def test_validate_reports_a_missing_file_as_a_usage_error(tmp_path: Path) -> None:
    code, output = await run_cli("validate", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml:0: cannot read the file" in output


async def test_serve_refuses_an_invalid_config_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(BAD)
    data = tmp_path / "data"
    code, output = await run_cli(
        "serve", "--config", str(config), "--data-dir", str(data), "--port", "0"
    )
    assert code == 2
    assert f"{config}:6:" in output
    assert not data.exists()


async def test_check_exits_0_when_up_and_1_with_the_reason_when_down(tmp_path: Path) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"status":"UP"}')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(f"""
monitors:
  - {{id: up, kind: http, url: "http://127.0.0.1:{port}/", expect: ['json.status == "UP"']}}
  - {{id: wrong, kind: http, url: "http://127.0.0.1:{port}/", expect: ['json.status == "DOWN"']}}
  - {{id: closed, kind: tcp, host: 127.0.0.1, port: 9}}
  - {{id: beat, kind: heartbeat, period: 1h}}
""")
    async with server:
        code, output = await run_cli("check", "--config", str(config), "up")
        assert code == 0, output
        assert "UP up" in output
        code, output = await run_cli("check", "--config", str(config), "wrong")
        assert code == 1
        assert "DOWN wrong" in output
        assert 'json.status is "UP", expected == "DOWN"' in output
    code, output = await run_cli("check", "--config", str(config), "closed", "--format", "json")
    assert code == 1
    assert '"error": "connect_refused"' in output
    code, output = await run_cli("check", "--config", str(config), "ghost")
    assert code == 2
    assert "no monitor 'ghost'" in output
    code, _ = await run_cli("check", "--config", str(config), "beat")
    assert code == 2


async def test_check_keeps_a_long_reason_on_one_line_in_a_log(tmp_path: Path) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{"status":"UP"}')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wanted = "a-status-value-long-enough-that-the-reason-alone-is-wider-than-80-columns"
    config = tmp_path / "c.yaml"
    config.write_text(f"""
monitors:
  - id: wrong
    kind: http
    url: "http://127.0.0.1:{port}/"
    expect: ['json.status == "{wanted}"']
""")
    async with server:
        code, output = await run_cli("check", "--config", str(config), "wrong")  # into a pipe
    assert code == 1
    [line] = [line for line in output.splitlines() if line.startswith("DOWN wrong")]
    assert line.endswith(f'json.status is "UP", expected == "{wanted}"'), output
    assert len(line) > 80
