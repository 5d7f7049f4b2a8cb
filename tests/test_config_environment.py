"""`${env:NAME}` in config values, and the demo following `serve --port`."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest

from uptally.config import ConfigError, parse_config
from uptally.config.environment import UnsetVariable, expand

ROOT = Path(__file__).resolve().parent.parent


def test_env_references_are_replaced_and_defaults_fill_unset_ones() -> None:
    environ = {"PORT": "9090", "EMPTY": ""}
    assert expand("http://h:${env:PORT}/x", environ) == "http://h:9090/x"
    assert expand("${env:NOPE:-8080}", environ) == "8080"
    assert expand("${env:EMPTY:-fallback}", environ) == ""  # set but empty is set
    assert expand("a ${name} b", environ) == "a ${name} b"  # a scenario variable: left alone
    with pytest.raises(UnsetVariable, match="NOPE is not set"):
        expand("${env:NOPE}", environ)


CONFIG = """\
monitors:
  - id: api
    kind: http
    url: http://127.0.0.1:${env:APP_PORT}/health
  - id: port
    kind: tcp
    host: 127.0.0.1
    port: ${env:APP_PORT:-8080}
"""


def test_a_config_reads_the_environment_at_load() -> None:
    config = parse_config(CONFIG, "c.yaml", {"APP_PORT": "9191"})
    assert str(config.monitors[0].url) == "http://127.0.0.1:9191/health"  # type: ignore[union-attr]
    assert config.monitors[1].port == 9191  # type: ignore[union-attr]


def test_an_unset_variable_is_an_error_on_its_line() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(CONFIG, "c.yaml", {})
    assert raised.value.lines() == [
        "c.yaml:4: monitors[0].url: environment variable APP_PORT is not set "
        "(write ${env:APP_PORT:-default} to give a default)"
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
async def test_the_demo_watches_the_port_serve_was_given(tmp_path: Path) -> None:
    from tests.procs import serving

    port = _free_port()
    env = {"UPTALLY_ADMIN_TOKEN": "demo"}  # as the README runs it
    headers = {"Authorization": "Bearer demo"}
    demo = ROOT / "examples" / "demo.yaml"
    async with (
        serving(demo, tmp_path / "data", env, port=port, args=("--demo",)) as (base, _),
        aiohttp.ClientSession(headers=headers) as http,
    ):
        assert base.endswith(f":{port}")
        states: dict[str, str] = {}
        async with asyncio.timeout(60):
            while not (states.get("self") == "up" and states.get("web-port") == "up"):
                async with http.get(f"{base}/api/v1/monitors") as response:
                    monitors = (await response.json())["monitors"]
                states = {m["id"]: m["state"] for m in monitors}
                await asyncio.sleep(0.2)
        assert states["closed-port"] != "up"
