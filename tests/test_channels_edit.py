"""Channels made through the admin API: created (201, 409 on an id in use), read one, changed
by merge patch (a URL or secret left out is kept), audited with secrets as digests, and
delivered to over real HTTP with whatever they hold now."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import HttpReceiver
from uptally.audit.log import AuditFilter, list_entries
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-Ch5Nw8Qe3Rt6Yu1Io4Pa"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """
site: {title: Acme}
monitors:
  - {id: api, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h}
components:
  - {id: api, name: API, monitors: [api]}
notifications:
  channels:
    - {id: filed, url: "slack://a/b/c"}
security: {allow_internal: [127.0.0.1]}
"""
FIRST_SECRET = "signing-secret-Gh7Jk2Lm9Np4"


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers={**AUTH, **(headers or {})}
        ) as response:
            data = await response.json() if response.status != 204 else None
            return response.status, data, response.headers


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as running:
        yield running


@pytest.fixture
async def hub(db_url: str) -> AsyncIterator[tuple[Client, Runtime]]:
    ring = Keyring(Key.from_bytes(os.urandom(32)))
    runtime = Runtime(
        config_from(CONFIG),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
        keyring=ring,
    )
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield Client(session, url), runtime
    await runtime.stop()


def signed_with(secret: str, request: Any) -> bool:
    stamp = request.headers["X-Uptally-Timestamp"].encode()
    mac = hmac.new(secret.encode(), stamp + b"." + request.body, hashlib.sha256)
    return bool(request.headers["X-Uptally-Signature"] == f"sha256={mac.hexdigest()}")


async def idle(runtime: Runtime) -> None:
    workers = runtime.notifier.dispatcher.workers
    async with asyncio.timeout(10):
        while any(target == "channel:pager" for target in workers):
            await asyncio.sleep(0.02)


async def incident(api: Client, title: str) -> None:
    body = {"title": title, "components": ["api"], "message": "Looking"}
    assert (await api.call("POST", "/api/v1/incidents", body))[0] == 201


async def test_a_channel_is_created_patched_and_delivered_to_with_what_it_holds_now(
    hub: tuple[Client, Runtime], receiver: HttpReceiver
) -> None:
    api, runtime = hub
    body = {
        "id": "pager",
        "url": f"webhook+{receiver.url}/first?token=very-secret",
        "secret": FIRST_SECRET,
        "events": ["incident.*"],
        "components": ["api"],
    }
    status, made, headers = await api.call("POST", "/api/v1/channels", body)
    assert status == 201, made
    assert headers["Location"] == "/api/v1/channels/pager"
    assert (made["source"], made["secret_set"], made["kind"]) == ("api", True, "webhook")
    status, refused, _ = await api.call("POST", "/api/v1/channels", body)
    assert (status, refused["error"]["code"]) == (409, "exists")
    status, refused, _ = await api.call("POST", "/api/v1/channels", {**body, "id": "filed"})
    assert (status, refused["error"]["code"]) == (409, "provisioned")
    status, shown, _ = await api.call("GET", "/api/v1/channels/pager")
    assert status == 200
    assert shown["events"] == ["incident.*"]
    assert "very-secret" not in str(shown)
    assert FIRST_SECRET not in str(shown)
    assert (await api.call("GET", "/api/v1/channels/filed"))[1]["source"] == "config"
    assert (await api.call("GET", "/api/v1/channels/nope"))[0] == 404

    # Only the events change: the URL and the secret are kept.
    status, changed, _ = await api.call(
        "PATCH", "/api/v1/channels/pager", {"events": ["incident.created"]}
    )
    assert (status, changed["events"], changed["secret_set"]) == (200, ["incident.created"], True)
    await incident(api, "Slow")
    await receiver.wait_for(lambda: len(receiver.ok("/first")) == 1)
    assert signed_with(FIRST_SECRET, receiver.ok("/first")[0])
    # A queue being delivered keeps the transport it opened: the change counts from its next run.
    await idle(runtime)

    # A new URL replaces the old one; the secret is still the first.
    patch = {"url": f"webhook+{receiver.url}/second"}
    assert (await api.call("PATCH", "/api/v1/channels/pager", patch))[0] == 200
    await incident(api, "Slower")
    await receiver.wait_for(lambda: len(receiver.ok("/second")) == 1)
    assert signed_with(FIRST_SECRET, receiver.ok("/second")[0])
    assert len(receiver.ok("/first")) == 1

    status, changed, _ = await api.call("PATCH", "/api/v1/channels/pager", {"secret": None})
    assert (status, changed["secret_set"]) == (200, False)
    status, refused, _ = await api.call("PATCH", "/api/v1/channels/pager", {"url": None})
    assert status == 422
    assert refused["error"]["details"][0]["path"] == "/url"
    status, refused, _ = await api.call("PATCH", "/api/v1/channels/pager", {"events": "x"})
    assert (status, refused["error"]["details"][0]["path"]) == (422, "/events")
    status, refused, _ = await api.call("PATCH", "/api/v1/channels/filed", {"events": []})
    assert (status, refused["error"]["code"]) == (409, "provisioned")
    assert (await api.call("DELETE", "/api/v1/channels/pager"))[0] == 204
    assert (await api.call("PATCH", "/api/v1/channels/pager", {"events": []}))[0] == 404

    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="channel:pager"))
    entries.sort(key=lambda e: e.at)
    assert [e.action for e in entries] == [
        "channel.created",
        "channel.changed",
        "channel.changed",
        "channel.changed",
        "channel.deleted",
    ]
    assert "very-secret" not in str(entries)
    assert FIRST_SECRET not in str(entries)
    assert entries[1].details["changes"] == {
        "/events": {"before": ["incident.*"], "after": ["incident.created"]}
    }
    url_change = entries[2].details["changes"]["/url"]
    assert url_change["before"].startswith("sha256:")
    assert url_change["after"].startswith("sha256:")
    assert url_change["before"] != url_change["after"]
    assert set(entries[3].details["changes"]) == {"/secret"}
    assert (
        entries[3].details["changes"]["/secret"]["after"]
        == "sha256:" + hashlib.sha256(b"null").hexdigest()[:16]
    )


async def test_a_lost_update_is_refused_by_if_match(hub: tuple[Client, Runtime]) -> None:
    api, _ = hub
    body = {"id": "chat", "url": "slack://a/b/c", "events": ["incident.*"]}
    status, _, headers = await api.call("POST", "/api/v1/channels", body)
    assert status == 201
    first = headers["ETag"]
    assert (await api.call("GET", "/api/v1/channels/chat"))[2]["ETag"] == first
    status, _, headers = await api.call("PATCH", "/api/v1/channels/chat", {"events": []})
    assert status == 200
    second = headers["ETag"]
    assert second != first
    stale = {"If-Match": first}
    status, refused, _ = await api.call("PATCH", "/api/v1/channels/chat", {"events": []}, stale)
    assert (status, refused["error"]["code"]) == (412, "precondition_failed")
    put = {"url": "slack://d/e/f"}
    assert (await api.call("PUT", "/api/v1/channels/chat", put, stale))[0] == 412
    assert (await api.call("DELETE", "/api/v1/channels/chat", None, stale))[0] == 412
    status, _, headers = await api.call("PUT", "/api/v1/channels/chat", put, {"If-Match": second})
    assert status == 200
    assert headers["ETag"] not in (first, second)
    current = {"If-Match": headers["ETag"]}
    assert (await api.call("DELETE", "/api/v1/channels/chat", None, current))[0] == 204
