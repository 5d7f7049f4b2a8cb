"""Scoped API tokens over real HTTP: scopes, revocation, expiry, last use, rate limits, audit."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import run_cli, serving
from uptally import tokens
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database
from uptally.web.app import create_app

BOOT = "bootstrap-admin-token"
CONFIG = """
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/"}
components:
  - {id: api, monitors: [api]}
security: {auth_failures: 3, auth_window: 1m}
"""
Http = tuple[aiohttp.ClientSession, str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def runtime(db_url: str, clock: FakeClock) -> AsyncIterator[Runtime]:
    keyring = Keyring(Key.parse(base64.b64encode(b"t" * 32).decode()))
    rt = Runtime(
        config_from(CONFIG),
        Database(db_url),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
        keyring=keyring,
    )
    await rt.start()
    yield rt
    await rt.stop()


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[Http]:
    async with serve_app(create_app(runtime, BOOT)) as url, aiohttp.ClientSession() as session:
        yield session, url


async def call(
    http: Http, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, dict[str, str]]:
    session, base = http
    headers = bearer(token) if token else {}
    async with session.request(method, base + path, json=body, headers=headers) as response:
        data = await response.json() if response.status != 204 else None
        return response.status, data, dict(response.headers)


async def issue(http: Http, name: str, *scopes: str, **extra: Any) -> dict[str, Any]:
    status, body, _ = await call(
        http, "POST", "/api/v1/tokens", BOOT, {"name": name, "scopes": list(scopes), **extra}
    )
    assert status == 201, body
    return dict(body)


OUTAGE = {"component": "api", "start": "2025-12-31T10:00:00Z", "end": "2025-12-31T10:30:00Z"}


def test_scopes_nest_and_unknown_ones_are_refused() -> None:
    assert tokens.allows({"admin"}, "write")
    assert tokens.allows({"write"}, "read")
    assert not tokens.allows({"read"}, "write")
    assert not tokens.allows({"write"}, "admin")
    assert tokens.allows({"page:status"}, "page:status")
    assert not tokens.allows({"page:status"}, "read")
    assert not tokens.allows({"page:status"}, "page:other")
    assert tokens.allows({"read"}, "page:other")
    assert tokens.check_scopes(["read", "read", "page:x"]) == ("read", "page:x")
    for bad in ([], ["root"], ["page:"]):
        with pytest.raises(ValueError, match="scope"):
            tokens.check_scopes(bad)
    assert tokens.parse("ut_0123456789ab_" + "A" * 43) == ("0123456789ab", "A" * 43)
    assert tokens.parse("ut_short_secret") is None


async def test_each_scope_opens_exactly_its_endpoints(http: Http) -> None:
    read = await issue(http, "grafana", "read")
    write = await issue(http, "backfill", "write")
    admin = await issue(http, "ops", "admin")
    assert re.fullmatch(r"ut_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}", read["token"])
    assert read["scopes"] == ["read"]
    assert read["created_by"] == "bootstrap-token"

    assert (await call(http, "GET", "/api/v1/monitors", read["token"]))[0] == 200
    status, body, _ = await call(http, "POST", "/api/v1/outages", read["token"], OUTAGE)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "write" in body["error"]["message"]
    assert (await call(http, "GET", "/api/v1/tokens", write["token"]))[0] == 403
    status, outage, _ = await call(http, "POST", "/api/v1/outages", write["token"], OUTAGE)
    assert status == 201, outage
    status, listed, _ = await call(http, "GET", "/api/v1/tokens", admin["token"])
    assert status == 200
    assert {t["name"] for t in listed["tokens"]} == {"grafana", "backfill", "ops"}
    assert all("token" not in t and "secret_hash" not in t for t in listed["tokens"])

    status, audit, _ = await call(http, "GET", "/api/v1/audit?action=outage.*", read["token"])
    assert status == 200
    [entry] = audit["entries"]
    assert entry["actor"] == f"token:{write['id']}"
    assert entry["target"] == f"outage:{outage['id']}"
    assert entry["details"]["component"] == "api"
    body = {key: value for key, value in entry.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == entry["hash"]


async def test_a_revoked_or_expired_token_is_refused_at_once(
    http: Http, clock: FakeClock, runtime: Runtime
) -> None:
    gone = await issue(http, "old", "read")
    status, body, _ = await call(http, "DELETE", f"/api/v1/tokens/{gone['id']}", BOOT)
    assert status == 200
    assert body["revoked_at"] is not None
    status, body, headers = await call(http, "GET", "/api/v1/monitors", gone["token"])
    assert (status, body["error"]["message"]) == (401, "token revoked")
    assert headers["WWW-Authenticate"] == "Bearer"
    assert (await call(http, "DELETE", "/api/v1/tokens/0123456789ab", BOOT))[0] == 404

    soon = await issue(http, "temp", "read", expires_at="2026-01-01T01:00:00Z")
    assert (await call(http, "GET", "/api/v1/monitors", soon["token"]))[0] == 200
    clock.advance(2 * 3_600_000)
    status, body, _ = await call(http, "GET", "/api/v1/monitors", soon["token"])
    assert (status, body["error"]["message"]) == (401, "token expired")
    status, body, _ = await call(
        http,
        "POST",
        "/api/v1/tokens",
        BOOT,
        {"name": "x", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert status == 422

    status, audit, _ = await call(http, "GET", "/api/v1/audit?action=token.*&order=asc", BOOT)
    actions = [(e["action"], e["target"]) for e in audit["entries"]]
    assert actions == [
        ("token.created", f"token:{gone['id']}"),
        ("token.revoked", f"token:{gone['id']}"),
        ("token.created", f"token:{soon['id']}"),
    ]
    assert runtime.metrics.auth_failures.labels("revoked")._value.get() == 1


async def test_last_use_is_tracked_but_written_at_most_once_a_minute(
    http: Http, clock: FakeClock
) -> None:
    made = await issue(http, "poller", "read")

    async def last_used() -> str | None:
        _, listed, _ = await call(http, "GET", "/api/v1/tokens", BOOT)
        return next(t["last_used_at"] for t in listed["tokens"] if t["id"] == made["id"])

    assert await last_used() is None
    await call(http, "GET", "/api/v1/monitors", made["token"])
    first = await last_used()
    assert first == "2026-01-01T00:00:00.000Z"
    clock.advance(30_000)
    await call(http, "GET", "/api/v1/monitors", made["token"])
    assert await last_used() == first
    clock.advance(31_000)
    await call(http, "GET", "/api/v1/monitors", made["token"])
    assert await last_used() == "2026-01-01T00:01:01.000Z"


async def test_failed_attempts_are_rate_limited_per_client_with_429(
    http: Http, runtime: Runtime
) -> None:
    good = await issue(http, "good", "read")
    wrong = "ut_0123456789ab_" + "B" * 43
    for _ in range(3):
        status, body, _ = await call(http, "GET", "/api/v1/monitors", wrong)
        assert (status, body["error"]["message"]) == (401, "invalid token")
    status, body, headers = await call(http, "GET", "/api/v1/monitors", wrong)
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 60
    # Blocked means blocked: guessing on is pointless, even a right guess is refused.
    assert (await call(http, "GET", "/api/v1/monitors", good["token"]))[0] == 429
    assert runtime.metrics.auth_failures.labels("unknown")._value.get() == 3
    # A request without credentials is not an attempt and is not counted.
    assert (await call(http, "GET", "/healthz"))[0] == 200


async def test_secret_values_go_in_but_never_come_out(http: Http, runtime: Runtime) -> None:
    value = "xoxb-super-secret-slack-token"
    status, body, _ = await call(http, "PUT", "/api/v1/secrets/channel:ops", BOOT, {"value": value})
    assert status == 200, body
    assert body["set"] is True
    assert value not in json.dumps(body)
    status, listed, _ = await call(http, "GET", "/api/v1/secrets", BOOT)
    assert [s["name"] for s in listed["secrets"]] == ["channel:ops"]
    assert value not in json.dumps(listed)
    status, audit, _ = await call(http, "GET", "/api/v1/audit?target=secret:channel:ops", BOOT)
    assert [e["action"] for e in audit["entries"]] == ["secret.set"]
    assert value not in json.dumps(audit)
    assert (await call(http, "DELETE", "/api/v1/secrets/channel:ops", BOOT))[0] == 204
    assert (await call(http, "DELETE", "/api/v1/secrets/channel:ops", BOOT))[0] == 404
    runtime.keyring = None
    status, body, _ = await call(http, "PUT", "/api/v1/secrets/x", BOOT, {"value": "v"})
    assert (status, body["error"]["code"]) == (409, "conflict")


async def test_the_audit_head_can_be_exported_for_anchoring(http: Http) -> None:
    await issue(http, "one", "read")
    status, head, _ = await call(http, "GET", "/api/v1/audit/head", BOOT)
    assert status == 200
    _, listed, _ = await call(http, "GET", "/api/v1/audit?limit=1", BOOT)
    assert head == {"seq": listed["entries"][0]["seq"], "hash": listed["entries"][0]["hash"]}


@pytest.mark.slow
async def test_tokens_made_on_the_command_line_work_while_serve_runs(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("monitors: [{id: beat, kind: heartbeat, period: 1h}]\n")
    data = tmp_path / "data"
    async with serving(config, data) as (url, _), aiohttp.ClientSession() as session:
        code, output = await run_cli(
            "tokens", "create", "--name", "ci", "--scope", "read", "--data-dir", str(data)
        )
        assert code == 0, output
        token = re.search(r"ut_[0-9a-f]{12}_\S{43}", output)
        assert token is not None
        token_id = token[0].split("_")[1]
        async with session.get(url + "/api/v1/monitors", headers=bearer(token[0])) as response:
            assert response.status == 200
        code, output = await run_cli("tokens", "list", "--data-dir", str(data), "--format", "json")
        assert code == 0, output
        [listed] = json.loads(output)["tokens"]
        assert (listed["id"], listed["scopes"], listed["revoked_at"]) == (token_id, ["read"], None)
        assert listed["last_used_at"] is not None
        code, output = await run_cli("tokens", "revoke", token_id, "--data-dir", str(data))
        assert code == 0, output
        async with session.get(url + "/api/v1/monitors", headers=bearer(token[0])) as response:
            assert response.status == 401
        code, _ = await run_cli("tokens", "revoke", "0123456789ab", "--data-dir", str(data))
        assert code == 1
        code, output = await run_cli(
            "tokens", "create", "--name", "x", "--scope", "root", "--data-dir", str(data)
        )
        assert code == 2
        assert "unknown scope" in output
