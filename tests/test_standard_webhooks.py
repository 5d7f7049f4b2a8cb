"""Standard Webhooks: every delivery verified by the `standardwebhooks` library, retries and
secret rotation included, for channels (config file and API) and webhook subscribers."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import config_from, serve_app
from tests.receivers import HttpReceiver, Received
from uptally.clock import SystemClock
from uptally.config import Config, ConfigError
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.signing import Scheme, Signer, generate_secret
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OLD = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the spec's own example secret
NEW = generate_secret()
BASE = """
site: {title: Acme, url: "https://status.acme.test"}
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: API, monitors: [api]}
security: {allow_internal: ["127.0.0.0/8"]}
"""


def verified(secret: str, request: Received) -> Any:
    """What a receiver does: the library checks the signature and the timestamp's age."""
    return Webhook(secret).verify(request.body, request.headers)


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as running:
        yield running


async def started(db_url: str, config: Config) -> Runtime:
    runtime = Runtime(
        config,
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
        keyring=Keyring(Key.from_bytes(os.urandom(32))),
    )
    await runtime.start()
    return runtime


def result(n: int, ok: bool) -> Result:
    now = SystemClock().now_ms()
    error = None if ok else "connect_refused"
    return Result(f"r{n}", "api", "local", now, ok, 5.0, error, "" if ok else "refused")


async def test_a_standard_channel_signs_every_delivery_and_a_retry_keeps_its_id(
    db_url: str,
) -> None:
    # The first attempt is refused with a 500; the retry waits over a second (first: 2100ms
    # waits 1050..2100 ms), so its timestamp is a later second.
    async with HttpReceiver(lambda n, _path: 500 if n == 0 else 200) as receiver:
        config = config_from(
            BASE
            + f"""
notifications:
  retry: {{first: 2100ms, max: 2100ms}}
  channels:
    - id: hook
      url: "webhook+{receiver.url}/hook"
      signing: standard
      secret: "{NEW}"
      events: [monitor.*]
"""
        )
        runtime = await started(db_url, config)
        try:
            runtime.ingest.submit(result(1, ok=False))
            await runtime.ingest.drained()
            runtime.ingest.submit(result(2, ok=True))
            await runtime.ingest.drained()
            await receiver.wait_for(lambda: len(receiver.ok("/hook")) == 2)
        finally:
            await runtime.stop()
    refused, retried, recovered = receiver.requests
    assert refused.status == 500
    payloads = [verified(NEW, r) for r in receiver.requests]  # every attempt verifies
    assert [p["event"] for p in payloads] == ["monitor.down", "monitor.down", "monitor.up"]
    assert retried.headers["webhook-id"] == refused.headers["webhook-id"]
    assert int(retried.headers["webhook-timestamp"]) > int(refused.headers["webhook-timestamp"])
    assert recovered.headers["webhook-id"] != refused.headers["webhook-id"]
    assert refused.headers["webhook-signature"].startswith("v1,")
    assert "X-Uptally-Signature" not in refused.headers
    with pytest.raises(WebhookVerificationError):
        verified(OLD, refused)


async def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(
    db_url: str, receiver: HttpReceiver
) -> None:
    runtime = await started(db_url, config_from(BASE))
    try:
        async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as http:

            async def incident(title: str) -> Received:
                body = {"title": title, "components": ["api"], "message": "Looking"}
                async with http.post(f"{base}/api/v1/incidents", json=body, headers=AUTH) as r:
                    assert r.status == 201
                await receiver.wait_for(
                    lambda: any(r.json()["data"].get("title") == title for r in receiver.ok())
                )
                return receiver.ok()[-1]

            channel = {
                "url": f"webhook+{receiver.url}/rotating",
                "signing": "standard",
                "secret": OLD,
                "events": ["incident.*"],
            }
            async with http.put(f"{base}/api/v1/channels/hook", json=channel, headers=AUTH) as r:
                assert r.status == 200, await r.text()
            before = await incident("Before")
            verified(OLD, before)

            rotating = {**channel, "secret": NEW, "previous_secret": OLD}
            async with http.put(f"{base}/api/v1/channels/hook", json=rotating, headers=AUTH) as r:
                shown = await r.json()
            assert (shown["signing"], shown["previous_secret_set"]) == ("standard", True)
            assert OLD not in str(shown)
            during = await incident("During")
            assert len(during.headers["webhook-signature"].split(" ")) == 2
            assert verified(NEW, during)["event"] == "incident.created"
            assert verified(OLD, during)["event"] == "incident.created"

            patch = {"previous_secret": None}
            async with http.patch(f"{base}/api/v1/channels/hook", json=patch, headers=AUTH) as r:
                assert (await r.json())["previous_secret_set"] is False
            after = await incident("After")
            verified(NEW, after)
            with pytest.raises(WebhookVerificationError):
                verified(OLD, after)

            bad = {**channel, "secret": "plain-text-secret"}
            async with http.put(f"{base}/api/v1/channels/hook", json=bad, headers=AUTH) as r:
                assert r.status == 422
                error = (await r.json())["error"]
            assert "whsec_" in error["message"]
            async with http.get(f"{base}/api/v1/channels/hook", headers=AUTH) as r:
                assert (await r.json())["signing"] == "standard"  # unchanged
            verified(NEW, await incident("Still"))
    finally:
        await runtime.stop()


async def test_a_webhook_subscriber_can_ask_for_standard_signing_with_its_own_secret(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    config = config_from(
        BASE + "notifications: {subscribers: {allow_private_webhooks: true, email: false}}\n"
    )
    runtime = await started(f"sqlite+aiosqlite:///{tmp_path}/uptally.db", config)
    try:
        async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as http:
            wanted = {"webhook": f"{receiver.url}/signed", "signing": "standard"}
            async with http.post(f"{base}/subscribe", json=wanted) as r:
                assert r.status == 201
                made = await r.json()
            secret = made["secret"]
            assert secret.startswith("whsec_")
            async with http.post(f"{base}/subscribe", json={"webhook": f"{receiver.url}/u"}) as r:
                assert "secret" not in await r.json()  # uptally: unsigned, as before
            body = {"title": "Slow", "components": ["api"], "message": "Looking"}
            async with http.post(f"{base}/api/v1/incidents", json=body, headers=AUTH) as r:
                assert r.status == 201
            await receiver.wait_for(lambda: len(receiver.ok()) == 2)
        signed = receiver.ok("/signed")[0]
        assert verified(secret, signed)["event"] == "incident.created"
        assert "webhook-signature" not in receiver.ok("/u")[0].headers
    finally:
        await runtime.stop()


def test_standard_signing_needs_a_whsec_secret_said_with_file_and_line() -> None:
    text = BASE + (
        "notifications:\n"
        "  channels:\n"
        "    - id: hook\n"
        '      url: "webhook+https://hooks.example.com/x"\n'
        "      signing: standard\n"
        "      secret: not-a-whsec-secret\n"
        "    - id: fine\n"
        '      url: "webhook+https://hooks.example.com/y"\n'
        "      signing: standard\n"
        f"      secret: {NEW}\n"
        f"      previous_secret: {OLD}\n"
    )
    with pytest.raises(ConfigError) as raised:
        config_from(text)
    line = text.splitlines().index("      secret: not-a-whsec-secret") + 1
    [message] = raised.value.lines()
    assert message.startswith(f"test.yaml:{line}: ")
    assert "whsec_" in message


def test_the_uptally_scheme_rotates_too_with_one_signature_per_secret() -> None:
    body = b'{"id":"e1"}'
    headers = Signer(Scheme.UPTALLY, ("new", "old")).headers("d1", "monitor.down", body, 1_700)
    expected = [
        "sha256=" + hmac.new(key, b"1700." + body, hashlib.sha256).hexdigest()
        for key in (b"new", b"old")
    ]
    assert headers["X-Uptally-Signature"].split(" ") == expected
    assert "webhook-signature" not in headers
