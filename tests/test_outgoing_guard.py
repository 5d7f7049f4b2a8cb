"""The SSRF guard on outgoing requests: checked addresses only, DNS rebinding included."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import HttpReceiver, SmtpReceiver
from tests.targets import DnsTarget
from uptally.clock import SystemClock
from uptally.config import ConfigError, parse_config
from uptally.metrics import Metrics
from uptally.netguard import Guard, Lookup, http_session
from uptally.notify.apprise_channel import AppriseChannel
from uptally.notify.transport import DeliveryError, Message, Outgoing
from uptally.notify.webhook import Webhook
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.signing import Signer
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "guard-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT = Outgoing("d1", "e1", "monitor.down", 0, "api", {}, Message("API is down", "refused"))


class RebindingDns(DnsTarget):
    """Answers `first` to the first query for the name, then `then` (a DNS rebinding attack)."""

    def __init__(self, name: str, first: str, then: str) -> None:
        super().__init__({name: {"A": [first]}})
        self.name, self.then = name, then

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        answered = super().answer(wire, transport)
        self.records = {dns.name.from_text(self.name): {"A": [self.then]}}
        return answered


def lookup_at(server: DnsTarget) -> Lookup:
    """Resolve through the test server (as the system resolver would, over the network)."""

    async def lookup(host: str, _port: int) -> list[str]:
        query = dns.message.make_query(host, dns.rdatatype.A)
        response = await dns.asyncquery.udp(query, server.host, port=server.port, timeout=5)
        return [item.address for rrset in response.answer for item in rrset]

    return lookup


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as running:
        yield running


async def test_a_name_rebound_to_an_internal_address_never_reaches_it(
    receiver: HttpReceiver,
) -> None:
    port = int(receiver.url.rsplit(":", 1)[1])
    # 127.0.0.2 stands in for the public address the check sees (nothing listens there);
    # the name then answers 127.0.0.1, where the receiver waits.
    async with RebindingDns("hook.test", "127.0.0.2", "127.0.0.1") as server:
        guard = Guard.allowing(["127.0.0.2"])
        url = f"webhook+http://hook.test:{port}/hook"
        async with http_session(guard, lookup_at(server)) as session:
            with pytest.raises(DeliveryError) as first:
                await Webhook(session, url, Signer(), 5).send(EVENT)
            assert not first.value.permanent  # connecting to the checked address failed
            assert len(server.queries) == 1  # resolved once: no second answer to connect to
        async with http_session(guard, lookup_at(server)) as session:
            with pytest.raises(DeliveryError) as second:
                await Webhook(session, url, Signer(), 5).send(EVENT)
            assert second.value.permanent
            assert "127.0.0.1 is not a public address" in str(second.value)
        assert receiver.requests == []
        # the same name and receiver, with 127.0.0.1 allowed: the rebinding server does work
        async with http_session(Guard.allowing(["127.0.0.0/8"]), lookup_at(server)) as session:
            assert await Webhook(session, url, Signer(), 5).send(EVENT) == 200
        assert len(receiver.ok("/hook")) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guarded_webhooks_refuse_internal_targets_unless_allowed(
    receiver: HttpReceiver, host: str
) -> None:
    url = receiver.url.replace("127.0.0.1", host) + "/w"
    async with http_session(Guard()) as session:
        with pytest.raises(DeliveryError, match="not a public address") as refused:
            await Webhook(session, url, Signer(), 5).send(EVENT)
        assert refused.value.permanent
    assert receiver.requests == []
    async with http_session(Guard.allowing([host])) as session:
        assert await Webhook(session, url, Signer(), 5).send(EVENT) == 200
    assert len(receiver.ok("/w")) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_guarded_apprise_targets_connect_only_to_checked_addresses(
    receiver: HttpReceiver, host: str
) -> None:
    url = "json://" + receiver.url.removeprefix("http://").replace("127.0.0.1", host) + "/a"
    with pytest.raises(DeliveryError, match="not a public address") as refused:
        await AppriseChannel(url, 5, Guard()).send(EVENT)
    assert refused.value.permanent
    assert receiver.requests == []
    await AppriseChannel(url, 5, Guard.allowing([host])).send(EVENT)
    await AppriseChannel(url, 5).send(EVENT)  # unguarded (a config-file channel)
    assert len(receiver.ok("/a")) == 2


def _config(security: str) -> str:
    return f"""
site: {{title: Acme}}
monitors:
  - {{id: api, kind: http, url: "http://127.0.0.1:9/"}}
components:
  - {{id: api, name: API, monitors: [api]}}
security: {security}
"""


async def test_channels_made_through_the_api_must_not_target_internal_addresses(
    tmp_path: Path, receiver: HttpReceiver
) -> None:
    runtime = Runtime(
        config_from(_config("{}")),
        Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db"),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
        keyring=Keyring(Key.from_bytes(os.urandom(32))),
    )
    await runtime.start()
    cases = [
        ("{}", 422),
        ("{allow_internal: [127.0.0.0/8]}", 200),
        ("{allow_internal: [localhost]}", 422),  # a name allows that name, not its addresses
        ("{ssrf_guard: false}", 200),
    ]
    try:
        async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as http:
            for security, expected in cases:
                runtime.config = config_from(_config(security))
                for url in (f"webhook+{receiver.url}/x", f"json://{receiver.url[7:]}/x"):
                    async with http.put(
                        f"{base}/api/v1/channels/hook", json={"url": url}, headers=AUTH
                    ) as response:
                        assert response.status == expected, (security, await response.text())
                        if expected == 422:
                            message = (await response.json())["error"]["message"]
                            assert "127.0.0.1 is not a public address" in message
    finally:
        await runtime.stop()


def test_allow_internal_entries_are_validated_with_their_line() -> None:
    text = "security:\n  allow_internal:\n    - 10.0.0.0/8\n    - not a host!\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "uptally.yaml")
    [line] = raised.value.lines()
    assert line.startswith("uptally.yaml:4: ")
    assert "neither an address, a network (CIDR) nor a host name" in line
    config = parse_config(text.replace("not a host!", "hooks.internal.example."), "u.yaml")
    assert config.security.guard == Guard.allowing(["10.0.0.0/8", "hooks.internal.example"])


async def test_guarded_apprise_mail_reaches_only_a_checked_relay() -> None:
    async with SmtpReceiver() as smtp:
        url = f"mailto://127.0.0.1:{smtp.port}?from=up@example.com&to=ops@example.com&mode=insecure"
        with pytest.raises(DeliveryError, match="not a public address") as refused:
            await AppriseChannel(url, 5, Guard()).send(EVENT)
        assert refused.value.permanent
        assert smtp.messages == []
        await AppriseChannel(url, 5, Guard.allowing(["127.0.0.1/32"])).send(EVENT)
        await smtp.wait_for(lambda: len(smtp.messages) == 1)
