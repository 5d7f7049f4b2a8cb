"""Monitors and components managed at runtime through the admin API: created, changed and
deleted while uptally runs, audited, refused whole when invalid, and never over the file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from tests.conftest import config_from, serve_app
from tests.targets import HttpTarget, Response
from uptally.audit.log import AuditFilter, list_entries
from uptally.clock import SystemClock
from uptally.config.managed import MONITOR
from uptally.managed.changes import ManagedObjects
from uptally.managed.load import ProvisioningConflict
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database
from uptally.store.tables import results
from uptally.web.app import create_app

TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def file_text(target: HttpTarget, extra: str = "") -> str:
    return f"""
site: {{title: Managed}}
security: {{allow_internal: ["127.0.0.0/8"]}}  # the targets of these tests are local
monitors:
  - id: filed
    kind: http
    url: {target.url("/filed")}
    interval: 1h
components:
  - id: platform
    monitors: [filed]
{extra}"""


class Api:
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


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def stored_results(runtime: Runtime, monitor: str) -> int:
    async with runtime.db.connect() as conn:
        rows = await conn.execute(select(results.c.id).where(results.c.monitor == monitor))
        return len(rows.all())


@pytest.fixture
async def target() -> AsyncIterator[HttpTarget]:
    routes = {p: Response(200, b"OK") for p in ("/filed", "/a", "/b", "/c")}
    async with HttpTarget(routes) as server:
        yield server


@pytest.fixture
async def hub(db_url: str, target: HttpTarget) -> AsyncIterator[tuple[Api, Runtime]]:
    runtime = Runtime(
        config_from(file_text(target)),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        keyring=Keyring(Key.from_bytes(os.urandom(32))),  # channels with URLs are sealed
    )
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield Api(session, url), runtime
    await runtime.stop()


async def test_a_monitor_made_through_the_api_is_checked_within_a_second_and_audited(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    body = {"id": "shop", "kind": "http", "url": target.url("/a"), "interval": "1h"}
    status, made, headers = await api.call("POST", "/api/v1/monitors", body)
    assert status == 201, made
    assert headers["ETag"] == '"v1"'
    assert headers["Location"] == "/api/v1/monitors/shop"
    assert made["source"] == "api"
    assert made["version"] == 1
    assert made["provisioned_by"] is None
    assert made["config"]["url"] == target.url("/a")
    # The first check does not wait for the monitor's slot in its one-hour interval.
    await eventually(lambda: _has(target, "/a"), timeout=3)
    await eventually(lambda: _positive(stored_results(runtime, "shop")))

    status, shown, headers = await api.call("GET", "/api/v1/monitors/shop")
    assert status == 200
    assert shown["version"] == 1
    assert headers["ETag"] == '"v1"'
    status, filed, _ = await api.call("GET", "/api/v1/monitors/filed")
    assert filed["source"] == "config"
    assert filed["provisioned_by"] == "test.yaml:5"

    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="monitor:shop"))
    assert [e.action for e in entries] == ["monitor.created"]
    assert entries[0].actor == "bootstrap-token"
    assert entries[0].details["changes"]["/url"] == {"before": None, "after": target.url("/a")}


async def test_a_change_takes_effect_at_the_next_check_and_a_lost_update_is_refused(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    body = {"id": "shop", "kind": "http", "url": target.url("/a"), "interval": "1s"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    await eventually(lambda: _has(target, "/a"))

    status, patched, headers = await api.call(
        "PATCH", "/api/v1/monitors/shop", {"url": target.url("/b")}, {"If-Match": '"v1"'}
    )
    assert status == 200, patched
    assert headers["ETag"] == '"v2"'
    assert patched["config"]["url"] == target.url("/b")
    await eventually(lambda: _has(target, "/b"))

    # Somebody still holding version 1 loses nothing of the change above.
    status, refused, _ = await api.call(
        "PUT", "/api/v1/monitors/shop", {**body, "url": target.url("/c")}, {"If-Match": '"v1"'}
    )
    assert status == 412
    assert refused["error"]["code"] == "precondition_failed"
    assert runtime.config.monitor("shop").url == target.url("/b")  # type: ignore[union-attr]

    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="monitor:shop"))
    updated = [e for e in entries if e.action == "monitor.updated"]
    assert len(updated) == 1
    assert updated[0].details["changes"] == {
        "/url": {"before": target.url("/a"), "after": target.url("/b")}
    }

    # The id is the identity: it cannot change (clone instead).
    status, refused, _ = await api.call("PATCH", "/api/v1/monitors/shop", {"id": "other"})
    assert status == 422
    assert refused["error"]["details"][0]["path"] == "/id"


async def test_invalid_bodies_are_refused_whole_with_json_pointers(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    body = {
        "id": "bad",
        "kind": "http",
        "url": target.url("/a"),
        "locations": ["local", "mars"],
        "expect": ["status == 200", "status = 200"],
        "colour": "red",
    }
    status, refused, _ = await api.call("POST", "/api/v1/monitors", body)
    assert status == 422
    details = {d["path"]: d["message"] for d in refused["error"]["details"]}
    assert details["/locations/1"] == "unknown location 'mars'"
    assert "'=='" in details["/expect/1"]
    assert details["/colour"] == "unknown key 'colour'"
    assert runtime.config.monitor("bad") is None
    assert (await api.call("GET", "/api/v1/monitors/bad"))[0] == 404

    # A batch is all or nothing: one bad monitor keeps every other out.
    batch = {
        "monitors": [
            {"id": "one", "kind": "http", "url": target.url("/a")},
            {"id": "two", "kind": "tcp", "host": "127.0.0.1"},
            {"id": "filed", "kind": "http", "url": target.url("/a")},
        ]
    }
    status, refused, _ = await api.call("POST", "/api/v1/monitors:batch", batch)
    assert status == 422
    paths = {d["path"] for d in refused["error"]["details"]}
    assert paths == {"/monitors/1/port", "/monitors/2/id"}
    assert runtime.config.monitor("one") is None

    batch["monitors"] = [
        *batch["monitors"][:1],
        {"id": "two", "kind": "tcp", "host": "127.0.0.1", "port": 9},
    ]
    status, made, _ = await api.call("POST", "/api/v1/monitors:batch", batch)
    assert status == 201, made
    assert [m["id"] for m in made["monitors"]] == ["one", "two"]


async def test_provisioned_objects_are_read_only_and_users_keep_an_object_alive(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    for method in ("PUT", "PATCH", "DELETE"):
        status, refused, _ = await api.call(method, "/api/v1/monitors/filed", {"interval": "5m"})
        assert status == 409, (method, refused)
        assert "provisioned by test.yaml:5" in refused["error"]["message"]
    status, refused, _ = await api.call("DELETE", "/api/v1/components/platform")
    assert status == 409
    assert "test.yaml:10" in refused["error"]["message"]

    body = {"id": "shop", "kind": "http", "url": target.url("/a"), "interval": "1h"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    component = {"id": "shop-front", "name": "Shop", "monitors": ["shop", "filed"]}
    status, made, headers = await api.call("POST", "/api/v1/components", component)
    assert status == 201
    assert made["source"] == "api"
    assert headers["ETag"] == '"v1"'

    status, refused, _ = await api.call("DELETE", "/api/v1/monitors/shop")
    assert status == 409
    assert "components/shop-front" in refused["error"]["message"]
    status, refused, _ = await api.call(
        "POST", "/api/v1/components", {"id": "x", "monitors": ["nope"]}
    )
    assert status == 422
    assert refused["error"]["details"] == [
        {"path": "/monitors/0", "message": "unknown monitor 'nope'"}
    ]

    # A channel made through the API that routes by the component keeps it too.
    chat = {"id": "chat", "url": "slack://a/b/c", "components": ["shop-front"]}
    assert (await api.call("POST", "/api/v1/channels", chat))[0] == 201
    status, refused, _ = await api.call("DELETE", "/api/v1/components/shop-front")
    assert status == 409
    assert "channels/chat" in refused["error"]["message"]
    assert (await api.call("DELETE", "/api/v1/channels/chat"))[0] in (200, 204)
    assert (await api.call("DELETE", "/api/v1/components/shop-front"))[0] == 204
    assert (await api.call("DELETE", "/api/v1/monitors/shop"))[0] == 204
    assert "shop" not in runtime.probe.scheduler.scheduled()  # no further check
    status, gone, _ = await api.call("GET", "/api/v1/monitors/shop")
    assert status == 404
    assert gone["error"]["code"] == "deleted"
    assert await stored_results(runtime, "shop") >= 0  # history stays (not deleted with it)


async def test_managed_objects_survive_a_restart_and_a_file_may_not_take_them_silently(
    db_url: str, target: HttpTarget
) -> None:
    first = Runtime(config_from(file_text(target)), Database(db_url), metrics=Metrics())
    await first.start()
    body = {"id": "shop", "kind": "http", "url": target.url("/a"), "interval": "1h"}
    await first.changes.create(MONITOR, body, "test")
    await first.stop()

    again = Runtime(config_from(file_text(target)), Database(db_url), metrics=Metrics())
    await again.start()
    try:
        assert again.config.monitor("shop") is not None
        assert "shop" in again.probe.scheduler.scheduled()
    finally:
        await again.stop()

    clash = file_text(target).replace(
        "components:", f"  - {{id: shop, kind: http, url: '{target.url('/b')}'}}\ncomponents:"
    )
    refused = Runtime(config_from(clash), Database(db_url), metrics=Metrics())
    with pytest.raises(ProvisioningConflict, match=r"test.yaml:9: monitor 'shop' is managed"):
        await refused.start()
    await refused.db.close()

    adopting = Runtime(
        config_from(clash + "provisioning: adopt\n"), Database(db_url), metrics=Metrics()
    )
    await adopting.start()
    try:
        adopted = adopting.config.monitor("shop")
        assert adopted is not None
        assert adopted.url == target.url("/b")
        assert adopting.config.origin("monitors", "shop") == "test.yaml:9"
        assert [m.id for m in adopting.config.monitors].count("shop") == 1
    finally:
        await adopting.stop()


async def test_a_change_another_process_stores_applies_here_within_seconds(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    """What `uptally config apply` does beside a running serve: store and audit, no apply."""
    _, runtime = hub
    other_db = Database(runtime.db.url)

    async def nothing(_changes: Any) -> None:
        return None

    other = ManagedObjects(other_db, SystemClock(), lambda: runtime.config, nothing)
    body = {"id": "elsewhere", "kind": "http", "url": target.url("/c"), "interval": "1h"}
    try:
        await other.create(MONITOR, body, "cli:ops")
    finally:
        await other_db.close()
    await eventually(lambda: _has(target, "/c"), timeout=5)
    assert runtime.config.monitor("elsewhere") is not None


async def _has(target: HttpTarget, path: str) -> bool:
    return path in target.paths()


async def _positive(count: Awaitable[int]) -> bool:
    return await count > 0


async def test_the_hub_probes_only_public_addresses_for_monitors_made_through_the_api(
    db_url: str, target: HttpTarget
) -> None:
    text = file_text(target).replace('security: {allow_internal: ["127.0.0.0/8"]}', "")
    runtime = Runtime(config_from(text), Database(db_url), metrics=Metrics())
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as s:
            api = Api(s, url)
            for body in (
                {"id": "inside", "kind": "http", "url": target.url("/a")},
                {"id": "named", "kind": "tcp", "host": "localhost", "port": 22},
                {"id": "meta", "kind": "http", "url": "http://169.254.169.254/latest/"},
            ):
                status, refused, _ = await api.call("POST", "/api/v1/monitors", body)
                assert status == 422, refused
                (detail,) = refused["error"]["details"]
                assert detail["path"] in ("/url", "/host")
                assert "SSRF guard" in detail["message"]
            # checked elsewhere only (an agent in that network): not the hub's business
            status, _, _ = await api.call(
                "POST",
                "/api/v1/monitors",
                {"id": "remote", "kind": "tcp", "host": "10.0.0.1", "port": 5432, "locations": []},
            )
            assert status == 422  # a monitor needs a location: still refused, by the schema
            # a heartbeat made through the API gets its ping URL at once
            status, made, _ = await api.call(
                "POST", "/api/v1/monitors", {"id": "nightly", "kind": "heartbeat", "period": "1d"}
            )
            assert status == 201, made
            assert made["ping_url"].startswith(f"{url}/ping/")
            async with s.get(made["ping_url"]) as response:
                assert (response.status, await response.text()) == (200, "OK")
    finally:
        await runtime.stop()


async def test_an_api_change_during_a_reload_is_neither_lost_nor_half_applied(
    db_url: str, target: HttpTarget, tmp_path: Path
) -> None:
    path = tmp_path / "uptally.yaml"
    extra = f"  - {{id: later, kind: http, url: '{target.url('/b')}', interval: 1h}}\n"
    path.write_text(file_text(target).replace("components:", extra + "components:"))
    runtime = Runtime(config_from(file_text(target)), Database(db_url), metrics=Metrics())
    runtime.config_path = path
    await runtime.start()
    # Hold the reload in its middle (after the new file is read and stored, before the probe
    # has it) while a monitor is made through the API.
    inside, release = asyncio.Event(), asyncio.Event()
    configure = runtime.sla.configure

    async def held(config: Any, actor: str) -> None:
        inside.set()
        await release.wait()
        await configure(config, actor)

    runtime.sla.configure = held  # type: ignore[method-assign]
    try:
        reload = asyncio.create_task(runtime.reload("test"))
        await inside.wait()
        body = {"id": "made", "kind": "http", "url": target.url("/a"), "interval": "1h"}
        create = asyncio.create_task(runtime.changes.create(MONITOR, body, "test"))
        await asyncio.wait({create}, timeout=1)  # it waits for the reload to end
        release.set()
        await reload
        await create
        assert {"filed", "later", "made"} <= {m.id for m in runtime.config.monitors}
        assert {"filed", "later", "made"} <= set(runtime.probe.scheduler.scheduled())
    finally:
        await runtime.stop()


async def test_secrets_in_a_monitor_are_masked_when_shown_and_never_saved_masked(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    url = target.url("/a").replace("http://", "http://ops:pa55word@") + "?token=t0k3n-q7&page=2"
    body = {
        "id": "vault",
        "kind": "http",
        "url": url,
        "interval": "1h",
        "headers": {"Authorization": "Bearer s3cr3t-value", "X-Ref": "${secret:api_key}"},
    }
    status, made, _ = await api.call("POST", "/api/v1/monitors", body)
    assert status == 201, made
    for shown in (made, (await api.call("GET", "/api/v1/monitors/vault"))[1]):
        text = str(shown)
        assert "pa55word" not in text
        assert "t0k3n-q7" not in text
        assert "s3cr3t-value" not in text
        assert shown["config"]["headers"] == {"Authorization": "***", "X-Ref": "${secret:api_key}"}
    # What GET shows, sent back as is, would store the mask: refused, naming each field.
    status, refused, _ = await api.call("PUT", "/api/v1/monitors/vault", made["config"])
    assert status == 422
    paths = {d["path"] for d in refused["error"]["details"]}
    assert paths == {"/url", "/headers/Authorization"}
    # A PATCH of other fields keeps the secrets as they are.
    status, patched, _ = await api.call("PATCH", "/api/v1/monitors/vault", {"interval": "30m"})
    assert status == 200, patched
    kept = runtime.config.monitor("vault")
    assert kept is not None
    assert kept.url == url  # type: ignore[union-attr]
    assert kept.headers["Authorization"] == "Bearer s3cr3t-value"  # type: ignore[union-attr]


async def test_only_admins_may_make_monitors_that_send_secrets_from_the_store(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    """A check sends its `${secret:…}` values to its target: with the write scope alone, a
    monitor (or a test run) pointing at a server of one's choosing would read the store."""
    from uptally import tokens

    api, runtime = hub
    async with runtime.db.begin() as conn:
        writer = await tokens.create(conn, "writer", ["read", "write"], "test", 0)
    as_writer = {"Authorization": f"Bearer {writer.token}"}
    sending = {
        "id": "leaky",
        "kind": "http",
        "url": target.url("/a"),
        "headers": {"X-Key": "${secret:db_password}"},
    }
    status, refused, _ = await api.call("POST", "/api/v1/monitors", sending, as_writer)
    assert status == 403, refused
    assert "admin scope" in refused["error"]["message"]
    status, _, _ = await api.call("POST", "/api/v1/monitors/test", sending, as_writer)
    assert status == 403
    # An admin made it: a writer may neither point it elsewhere nor clone it.
    assert (await api.call("POST", "/api/v1/monitors", sending))[0] == 201
    elsewhere = {"url": target.url("/b")}
    status, _, _ = await api.call("PATCH", "/api/v1/monitors/leaky", elsewhere, as_writer)
    assert status == 403
    status, _, _ = await api.call("POST", "/api/v1/monitors/leaky/clone", {"id": "x"}, as_writer)
    assert status == 403
    plain = {"id": "plain", "kind": "http", "url": target.url("/a"), "interval": "1h"}
    assert (await api.call("POST", "/api/v1/monitors", plain, as_writer))[0] == 201


async def test_a_paused_monitor_deleted_and_made_again_is_not_paused(
    hub: tuple[Api, Runtime], target: HttpTarget
) -> None:
    api, runtime = hub
    body = {"id": "shop", "kind": "http", "url": target.url("/a"), "interval": "1h"}
    assert (await api.call("POST", "/api/v1/monitors", body))[0] == 201
    assert (await api.call("POST", "/api/v1/monitors/shop/pause"))[0] == 200
    assert (await api.call("DELETE", "/api/v1/monitors/shop"))[0] == 204
    assert not runtime.pausing.is_paused("shop")
    status, made, _ = await api.call("POST", "/api/v1/monitors", body)
    assert status == 201
    assert made["state"] != "paused"
    assert "shop" in runtime.probe.scheduler.scheduled()
    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="monitor:shop", newest_first=False))
    actions = [e.action for e in entries]
    assert actions == [
        "monitor.created",
        "monitor.paused",
        "monitor.deleted",
        "monitor.resumed",
        "monitor.created",
    ]
