"""Healthchecks' Management API v3, driven by the real `healthchecks-io` client from PyPI:
checks made, changed, paused, listed, read and deleted as heartbeat monitors of uptally."""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import config_from, serve_app
from uptally import tokens
from uptally.clock import SystemClock
from uptally.config.schema import HeartbeatMonitor
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database
from uptally.web.app import create_app

with warnings.catch_warnings():  # the client declares its fields the pydantic 1 way
    warnings.simplefilter("ignore", DeprecationWarning)
    import healthchecks_io as hc

# Its `.dict()` calls are pydantic 1 style too.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ADMIN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
CONFIG = """
site: {title: Jobs, timezone: Europe/Berlin}
monitors:
  - id: filed-backup
    kind: heartbeat
    period: 1h
    tags: [backup]
    uuid: 5b8a1c3e-2f4d-4e6a-9b7c-0d1e2f3a4b5c
    slug: filed-backup
notifications:
  channels:
    - id: ops
      url: json://127.0.0.1:9/hook
      events: [monitor.*]
"""


@pytest.fixture
async def hub(db_url: str) -> AsyncIterator[tuple[str, Runtime, str, str]]:
    """A served app, its runtime, and a read-write and a read-only uptally token."""
    runtime = Runtime(
        config_from(CONFIG),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        keyring=Keyring(Key.from_bytes(os.urandom(32))),
    )
    await runtime.start()
    async with runtime.db.begin() as conn:
        writer = await tokens.create(conn, "cron-writer", ["read", "write"], "test", 0)
        reader = await tokens.create(conn, "cron-reader", ["read"], "test", 0)
    async with serve_app(create_app(runtime, ADMIN)) as url:
        yield url, runtime, writer.token, reader.token
    await runtime.stop()


async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.request(method, url, **kwargs)  # type: ignore[arg-type]


def pings_raw(url: str, uuid: str) -> str:
    return f"{url}/api/v3/checks/{uuid}/pings/"


def client(url: str, key: str) -> hc.AsyncClient:
    return hc.AsyncClient(api_key=key, api_url=f"{url}/api/", api_version=3)


async def test_the_healthchecks_client_manages_checks_as_heartbeat_monitors(
    hub: tuple[str, Runtime, str, str],
) -> None:
    url, runtime, writer, _ = hub
    async with client(url, writer) as api:
        made = await api.create_check(
            hc.CheckCreate(name="Nightly backup", tags="prod backup", timeout=3600, grace=600)
        )
        assert made.status == "new"
        assert (made.timeout, made.grace, made.tags) == (3600, 600, "prod backup")
        assert made.uuid is not None
        assert made.ping_url == f"{url}/ping/{made.uuid}"
        assert made.update_url == f"{url}/api/v3/checks/{made.uuid}"
        assert made.channels == "ops"  # the channels its down notifications go to
        monitor = next(
            m
            for m in runtime.config.monitors
            if isinstance(m, HeartbeatMonitor) and str(m.uuid) == made.uuid
        )
        assert monitor.id in runtime.managed["monitor"]  # database-managed, not in the file
        assert (monitor.period, monitor.grace, monitor.name) == (
            3_600_000,
            600_000,
            "Nightly backup",
        )

        # `unique` finds the same check and updates it (200), as Healthchecks does.
        again = await api.create_check(  # the client sends every field: tags too
            hc.CheckCreate(
                name="Nightly backup",
                tags="prod backup",
                desc="pg_dump",
                timeout=7200,
                unique=["name"],
            )
        )
        assert again.uuid == made.uuid
        assert (again.timeout, again.desc) == (7200, "pg_dump")

        cron = await api.update_check(
            made.uuid, hc.CheckUpdate(schedule="0 3 * * *", tz="America/New_York", grace=900)
        )
        assert (cron.timeout, cron.grace) == (None, 900)
        read = await api.get_check(made.uuid)
        assert read.name == "Nightly backup"
        assert read.desc == "pg_dump"
        raw = await call("GET", f"{url}/api/v3/checks/{made.uuid}", headers={"X-Api-Key": writer})
        assert (raw.json()["schedule"], raw.json()["tz"]) == ("0 3 * * *", "America/New_York")

        paused = await api.pause_check(made.uuid)
        assert paused.status == "paused"
        assert runtime.pausing.is_paused(monitor.id)
        resumed = await call(
            "POST", f"{url}/api/v3/checks/{made.uuid}/resume", headers={"X-Api-Key": writer}
        )
        assert resumed.status_code == 200
        assert resumed.json()["status"] == "new"
        not_paused = await call(
            "POST", f"{url}/api/v3/checks/{made.uuid}/resume", headers={"X-Api-Key": writer}
        )
        assert (not_paused.status_code, not_paused.text) == (409, "check is not paused")

        other = await api.create_check(hc.CheckCreate(name="Reports", tags="prod", timeout=86400))
        tagged = await api.get_checks(tags=["backup"])
        assert {c.name for c in tagged} == {"Nightly backup", ""}  # the filed one is tagged too
        both = await api.get_checks(tags=["prod", "backup"])
        assert [c.uuid for c in both] == [made.uuid]
        everything = await api.get_checks()
        assert len(everything) == 3

        gone = await api.delete_check(other.uuid)  # type: ignore[arg-type]
        assert gone.name == "Reports"
        assert runtime.config.monitor(f"hc-{other.uuid.replace('-', '')[:12]}") is None  # type: ignore[union-attr]
        with pytest.raises(hc.CheckNotFoundError):
            await api.get_check(other.uuid)  # type: ignore[arg-type]

        integrations = await api.get_integrations()
        assert [(i.id, i.kind) for i in integrations if i] == [("ops", "json")]
        assert "filed-backup" in await api.get_badges()


async def test_pings_and_flips_of_a_check_are_listed(hub: tuple[str, Runtime, str, str]) -> None:
    url, runtime, writer, _ = hub
    async with client(url, writer) as api:
        made = await api.create_check(hc.CheckCreate(name="Job", timeout=3600))
        assert made.uuid is not None
        monitor_id = f"hc-{made.uuid.replace('-', '')[:12]}"
        token = runtime.heartbeats.token(monitor_id)
        async with httpx.AsyncClient() as http:
            assert (await http.post(f"{url}/ping/{token}/start")).status_code == 200
            assert (await http.post(f"{url}/ping/{token}", content=b"done")).status_code == 200
            assert (await http.get(f"{url}/ping/{token}/1")).status_code == 200
        pings = await api.get_check_pings(made.uuid)
        assert [(p.type, p.number_of_pings) for p in pings] == [
            ("fail", 3),
            ("success", 2),
            ("start", 1),
        ]
        body = await call(
            "GET", pings_raw(url, made.uuid) + "2/body", headers={"X-Api-Key": writer}
        )
        assert (body.status_code, body.text) == (200, "done")
        listed = await call("GET", pings_raw(url, made.uuid), headers={"X-Api-Key": writer})
        assert listed.json()["pings"][1]["body_url"] == pings_raw(url, made.uuid) + "2/body"
        check = await api.get_check(made.uuid)
        assert check.n_pings == 3
        assert check.status == "down"
        assert check.last_ping is not None
        # The client reads the flips answer as a bare list; Healthchecks answers {"flips": [...]}.
        flips = await call(
            "GET", f"{url}/api/v3/checks/{made.uuid}/flips/", headers={"X-Api-Key": writer}
        )
        assert flips.status_code == 200
        assert [f["up"] for f in flips.json()["flips"]] == [0]


async def test_keys_and_bad_fields_answer_as_healthchecks_does(
    hub: tuple[str, Runtime, str, str],
) -> None:
    url, runtime, writer, reader = hub

    def sync_list() -> list[hc.Check]:
        with hc.Client(api_key=reader, api_url=f"{url}/api/", api_version=3) as sync:
            return sync.get_checks()

    listed = await asyncio.to_thread(sync_list)  # the client's synchronous flavour
    assert [c.unique_key is not None and c.ping_url is None for c in listed] == [True]
    async with client(url, reader) as read_only:
        listed = await read_only.get_checks()
        assert [c.unique_key is not None and c.ping_url is None for c in listed] == [True]
        with pytest.raises(hc.HCAPIAuthError):
            await read_only.create_check(hc.CheckCreate(name="nope", timeout=3600))
    before = len(runtime.config.monitors)
    refused = await call(
        "POST", f"{url}/api/v3/checks/", json={"name": "x"}, headers={"X-Api-Key": reader}
    )
    assert (refused.status_code, "read-only" in refused.json()["error"]) == (403, True)
    missing = await call("GET", f"{url}/api/v3/checks/")
    assert (missing.status_code, missing.json()) == (401, {"error": "missing api key"})
    wrong = await call("GET", f"{url}/api/v3/checks/", headers={"X-Api-Key": "upt_nope_nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "wrong api key"})
    # The key may come in the JSON body, as Healthchecks allows.
    in_body = await call(
        "POST", f"{url}/api/v3/checks/", json={"api_key": writer, "name": "Body", "timeout": 60}
    )
    assert in_body.status_code == 201
    for body, message in [
        ({"timeout": 10}, "json validation error: timeout is too small"),
        ({"name": 5}, "json validation error: name is not a string"),
        (
            {"schedule": "every day"},
            "json validation error: schedule is not a valid cron expression",
        ),
        ({"tz": "Mars/Base"}, "json validation error: tz is not a valid timezone"),
        ({"name": None}, "json validation error: name is not a string"),
        ({"unique": ["desc"]}, "json validation error: an item in 'unique' has unexpected value"),
        ({"channels": "slack-ops"}, None),
        ({"tags": "bad!tag"}, None),
    ]:
        answer = await call(
            "POST", f"{url}/api/v3/checks/", json=body, headers={"X-Api-Key": writer}
        )
        assert answer.status_code == 400, answer.text
        if message:
            assert answer.json() == {"error": message}
        else:
            assert answer.json()["error"]
    garbled = await call(
        "POST", f"{url}/api/v3/checks/", content=b"{", headers={"X-Api-Key": writer}
    )
    assert (garbled.status_code, garbled.json()) == (400, {"error": "could not parse request body"})
    assert len(runtime.config.monitors) == before + 1  # only the one with its key in the body
    # A monitor of the config file is read here and changed in the file only.
    filed = f"{url}/api/v3/checks/5b8a1c3e-2f4d-4e6a-9b7c-0d1e2f3a4b5c"
    provisioned = await call("POST", filed, json={"grace": 120}, headers={"X-Api-Key": writer})
    assert provisioned.status_code == 409
    assert "provisioned by test.yaml" in provisioned.json()["error"]
    by_slug = await call(
        "GET", f"{url}/api/v3/checks/?slug=filed-backup", headers={"X-Api-Key": writer}
    )
    assert [c["update_url"] for c in by_slug.json()["checks"]] == [filed]
    unknown = await call(
        "GET",
        f"{url}/api/v3/checks/00000000-0000-4000-8000-000000000000",
        headers={"X-Api-Key": writer},
    )
    assert (unknown.status_code, unknown.json()) == (404, {"error": "not found"})
