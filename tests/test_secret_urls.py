"""Secrets in monitor URLs: redacted wherever they leave the check; `${secret:NAME}` references."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import serving
from tests.receivers import HttpReceiver, poll_until
from tests.targets import HttpTarget, Request, Response, TcpTarget, hang
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.redaction import Redactor
from uptally.runtime import Runtime
from uptally.store import results as result_store
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "secret-urls-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "pa55-w0rd-x9"
QUERY_TOKEN = "abc-t0ken-q7"
API_KEY = "k3y-from-the-store-41"
BEARER = "b3arer-from-the-store-77"


def test_urls_lose_their_credentials_and_secret_query_values() -> None:
    redactor = Redactor.with_keys(["session"])
    assert (
        redactor.url("https://user:pw@h:8443/x?token=abc&page=2&API_KEY=z&session=s#top")
        == "https://***@h:8443/x?token=***&page=2&API_KEY=***&session=***#top"
    )
    assert redactor.url("https://TOKEN123@h/") == "https://***@h/"
    assert redactor.url("https://h/x?q=1&key=") == "https://h/x?q=1&key="
    kept = "https://u:${secret:pw}@h/?token=${secret:t}"
    assert redactor.url(kept) == kept  # references are not secrets
    text = "timed out connecting (https://u:pw@h/x?sig=abc) and 'leaked-value' too"
    assert redactor.including(["leaked-value"]).text(text) == (
        "timed out connecting (https://***@h/x?sig=***) and '***' too"
    )
    assert sorted(redactor.secrets_in_url("https://u:p%40ss@h/?token=abc")) == [
        "abc",
        "abc",
        "p%40ss",
        "p@ss",
    ]


async def silent(_reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await hang()  # accepts, never answers: the TLS handshake times out


def checked_credentials(request: Request) -> Response:
    good = request.query.get("key") == [API_KEY] and (
        request.headers.get("authorization") == f"Bearer {BEARER}"
    )
    return Response(200 if good else 403, b"ok" if good else b"no")


def _config(slow: TcpTarget, private: HttpTarget, receiver: HttpReceiver) -> str:
    return f"""
site: {{title: Secrets}}
monitors:
  - id: slow
    kind: http
    url: "https://user:{PASSWORD}@127.0.0.1:{slow.port}/x?token={QUERY_TOKEN}&page=2"
    interval: 60s
    retry_interval: 60s
    timeout: 1s
    confirm: 1
  - id: private
    kind: http
    url: "{private.url("/private")}?key=${{secret:api-key}}"
    headers: {{Authorization: "Bearer ${{secret:bearer}}"}}
    interval: 1s
    retry_interval: 500ms
    timeout: 5s
    expect: ["status == 200"]
components:
  - {{id: api, name: API, monitors: [slow, private]}}
notifications:
  channels:
    - {{id: hook, url: "webhook+{receiver.url}/hook", events: [monitor.down]}}
"""


async def _json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def _clean(text: str) -> bool:
    return all(secret not in text for secret in (PASSWORD, QUERY_TOKEN, API_KEY, BEARER))


@pytest.mark.slow
async def test_secrets_in_monitor_urls_never_leave_the_check(tmp_path: Path) -> None:
    config = tmp_path / "uptally.yaml"
    data = tmp_path / "data"
    env = {
        "UPTALLY_ADMIN_TOKEN": TOKEN,
        "UPTALLY_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    private = HttpTarget({"/private": checked_credentials})
    async with TcpTarget(silent) as slow, private, HttpReceiver() as receiver:
        config.write_text(_config(slow, private, receiver))
        async with serving(config, data, env=env) as (base, _), aiohttp.ClientSession() as http:
            for name, value in (("api-key", API_KEY), ("bearer", BEARER)):
                async with http.put(
                    f"{base}/api/v1/secrets/{name}", json={"value": value}, headers=AUTH
                ) as response:
                    assert response.status == 200, await response.text()

            async def reported() -> bool:
                outages = await _json(http, f"{base}/api/v1/outages?monitor=slow")
                return bool(outages["outages"]) and len(receiver.ok("/hook")) >= 1

            await poll_until(reported, timeout=60, every=0.2)
            results = await _json(http, f"{base}/api/v1/monitors/slow/results")
            [result] = results["results"]
            assert result["error"] == "timeout"
            assert "https://***@127.0.0.1" in result["message"]
            assert "token=***&page=2" in result["message"]
            [outage] = (await _json(http, f"{base}/api/v1/outages?monitor=slow"))["outages"]
            assert outage["reason"]
            hook = receiver.ok("/hook")[0]
            assert hook.json()["event"] == "monitor.down"
            view = await _json(http, f"{base}/api/v1/monitors/slow")
            assert view["target"] == (f"https://***@127.0.0.1:{slow.port}/x?token=***&page=2")
            listing = await _json(http, f"{base}/api/v1/monitors")
            for shown in (results, outage, hook.body.decode(), view, listing):
                assert _clean(str(shown)), shown

            async def private_up() -> bool:
                found = await _json(http, f"{base}/api/v1/monitors/private")
                return bool(found["state"] == "up")

            await poll_until(private_up, timeout=60, every=0.2)
            shown = await _json(http, f"{base}/api/v1/monitors/private")
            assert shown["target"].endswith("/private?key=${secret:api-key}")
            assert _clean(str(shown))
            assert 200 in [checked_credentials(r).status for r in private.requests]
    stored = b"".join(path.read_bytes() for path in data.glob("uptally.db*"))
    for secret in (PASSWORD, QUERY_TOKEN, API_KEY, BEARER):
        assert secret.encode() not in stored


async def test_the_hub_redacts_agent_results_with_the_configured_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_EU_TOKEN", "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb")
    config = config_from(
        """
locations: [{name: eu, token_env: TEST_EU_TOKEN}]
monitors: [{id: api, kind: http, url: "http://127.0.0.1:9/", locations: [eu]}]
security: {secret_query_keys: [session]}
"""
    )
    clock = FakeClock()
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    runtime = Runtime(config, database, clock=clock, metrics=Metrics(), run_probe=False)
    await runtime.start()
    try:
        message = "timed out (https://u:pw-9@h/x?session=s3ss10n&page=2)"
        result = {"id": "r1", "monitor": "api", "at": clock.now_ms(), "ok": False}
        result |= {"latency_ms": 3.0, "error": "timeout", "message": message}
        body = {"location": "eu", "sent_at": clock.now_ms(), "results": [result]}
        async with (
            serve_app(create_app(runtime, TOKEN)) as base,
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/api/v1/probes/results",
                json=body,
                headers={"Authorization": "Bearer eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
        async with runtime.db.connect() as conn:
            [stored] = await result_store.list_results(conn, "api")
        assert stored.message == "timed out (https://***@h/x?session=***&page=2)"
    finally:
        await runtime.stop()
