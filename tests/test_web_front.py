"""The web front against real `serve` processes: the Host header, trusted proxies (a real nginx
in front), and ping URLs by token scope."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.procs import free_port, serving
from tests.receivers import poll_until

ADMIN = "web-front-admin-token-5f0c2b9e1d7a"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
NGINX = "/usr/sbin/nginx"
CONFIG = """
site: {{title: Front}}
monitors:
  - {{id: beat, kind: heartbeat, period: 1h, token: beat-token-0123456789abcdef}}
components:
  - {{id: jobs, monitors: [beat]}}
notifications:
  subscribers: {{allow_private_webhooks: true}}
security: {{auth_failures: 3, auth_window: 10m{extra}}}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "uptally.yaml"
    path.write_text(CONFIG.format(extra=extra))
    return path


async def fetch(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, str]:
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.text()


async def test_no_answer_carries_a_host_chosen_by_a_client(tmp_path: Path) -> None:
    env = {"UPTALLY_ADMIN_TOKEN": ADMIN}
    async with serving(write_config(tmp_path), tmp_path / "data", env=env) as (url, _):
        evil = {"Host": "evil.example"}
        paths = ["/feed.atom", "/feed.rss", "/api/v2/summary.json", "/", "/api/v1/monitors"]
        async with aiohttp.ClientSession() as http:
            for path in paths:  # the first requests of the process name another host
                status, body = await fetch(http, "GET", url + path, headers={**evil, **AUTH})
                assert status == 200, body
                assert "evil.example" not in body, path
            for path in paths:
                status, body = await fetch(http, "GET", url + path, headers=AUTH)
                assert status == 200
                assert "evil.example" not in body, path
            async with http.get(url + "/api/v2/summary.json") as response:
                assert (await response.json())["page"]["url"] == url
            # An allowed host gets links on itself, in its own answer only.
            port = url.rsplit(":", 1)[1]
            local = {"Host": f"localhost:{port}", **AUTH}
            async with http.get(url + "/api/v1/monitors", headers=local) as response:
                [beat] = (await response.json())["monitors"]
            assert beat["ping_url"] == f"http://localhost:{port}/ping/beat-token-0123456789abcdef"
            async with http.get(url + "/api/v2/summary.json", headers=local) as response:
                assert (await response.json())["page"]["url"] == url
            # Ping URLs record pings: not for a read-only token.
            body = {"name": "dashboard", "scopes": ["read"]}
            async with http.post(url + "/api/v1/tokens", json=body, headers=AUTH) as response:
                read = (await response.json())["token"]
            bearer = {"Authorization": f"Bearer {read}"}
            async with http.get(url + "/api/v1/monitors", headers=bearer) as response:
                [beat] = (await response.json())["monitors"]
            assert beat["ping_url"] is None


async def audit_actors(http: aiohttp.ClientSession, url: str) -> list[str]:
    async with http.get(url + "/api/v1/audit?action=subscriber.*", headers=AUTH) as response:
        assert response.status == 200
        return [entry["actor"] for entry in (await response.json())["entries"]]


async def failed_logins(http: aiohttp.ClientSession, url: str, forged: list[str]) -> list[int]:
    """Bad tokens, each with another X-Forwarded-For (ignored unless from a trusted proxy)."""
    codes = []
    for address in forged:
        headers = {"Authorization": "Bearer wrong", "X-Forwarded-For": address}
        codes.append((await fetch(http, "GET", url + "/api/v1/monitors", headers=headers))[0])
    return codes


async def test_a_forged_forwarded_for_changes_neither_the_audit_nor_the_limit(
    tmp_path: Path,
) -> None:
    env = {"UPTALLY_ADMIN_TOKEN": ADMIN}
    async with (
        serving(write_config(tmp_path), tmp_path / "data", env=env) as (url, _),
        aiohttp.ClientSession() as http,
    ):
        hook = {"webhook": "http://127.0.0.1:9/hook"}
        forged = {"X-Forwarded-For": "203.0.113.7"}
        status, _ = await fetch(http, "POST", url + "/subscribe", json=hook, headers=forged)
        assert status == 201
        assert await audit_actors(http, url) == ["public:127.0.0.1"]
        addresses = [f"198.51.100.{n}" for n in range(1, 6)]
        assert await failed_logins(http, url, addresses) == [401, 401, 401, 429, 429]


@contextlib.asynccontextmanager
async def nginx(tmp_path: Path, upstream: str) -> AsyncIterator[str]:
    """A real nginx on 127.0.0.1 proxying to `upstream` the way docs/operations.md says."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail("nginx is not installed (.ci/run installs nginx-light)")
    port = free_port()
    home = tmp_path / "nginx"
    home.mkdir()
    (home / "nginx.conf").write_text(
        f"""
worker_processes 1;
error_log {home}/error.log;
pid {home}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {home}/body;
    proxy_temp_path {home}/proxy;
    fastcgi_temp_path {home}/fastcgi;
    uwsgi_temp_path {home}/uwsgi;
    scgi_temp_path {home}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""
    )
    process = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(home), "-c", str(home / "nginx.conf"), "-g", "daemon off;",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def accepting() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"nginx exited: {(home / 'error.log').read_text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    try:
        await poll_until(accepting, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()
        shutil.rmtree(home, ignore_errors=True)


def client_from(address: str) -> aiohttp.ClientSession:
    """A client connecting from another loopback address (each is a client of its own)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_behind_a_trusted_nginx_each_client_has_its_own_address(tmp_path: Path) -> None:
    env = {"UPTALLY_ADMIN_TOKEN": ADMIN}
    config = write_config(tmp_path, extra=", trusted_proxies: [127.0.0.1/32]")
    async with (
        serving(config, tmp_path / "data", env=env) as (upstream, _),
        nginx(tmp_path, upstream) as url,
        client_from("127.0.0.2") as first,
        client_from("127.0.0.3") as second,
    ):
        hook = {"webhook": "http://127.0.0.1:9/hook"}
        forged = {"X-Forwarded-For": "203.0.113.7"}  # nginx appends the real address after it
        status, _ = await fetch(first, "POST", url + "/subscribe", json=hook, headers=forged)
        assert status == 201
        assert await audit_actors(second, url) == ["public:127.0.0.2"]
        assert await failed_logins(first, url, ["203.0.113.8"] * 4) == [401, 401, 401, 429]
        # The other client is not locked out by the first one's failures.
        assert await failed_logins(second, url, ["203.0.113.8"]) == [401]
        assert (await fetch(second, "GET", url + "/api/v1/monitors", headers=AUTH))[0] == 200
