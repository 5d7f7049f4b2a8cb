"""A hostile or broken agent against a real hub: it may cost its own batch, never the hub."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from tests.conftest import config_from, serve_app
from tests.procs import run_cli
from tests.test_probes_api import ADMIN, CONFIG, EU, batch, item, post
from uptally.clock import FakeClock
from uptally.fleet import Report
from uptally.ingest import RefusedWork
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store import probes as probe_store
from uptally.store import results as result_store
from uptally.store.database import Database
from uptally.store.probes import Gap
from uptally.web.app import create_app

YEAR_10000 = 253_402_300_800_000
PAGE_CONFIG = CONFIG + "components: [{id: web, name: Web, monitors: [api, hub-only]}]\n"
READS = [
    "/api/v1/monitors",
    "/api/v1/monitors/api",
    "/api/v1/monitors/api/results",
    "/api/v1/outages",
    "/api/v1/probes",
    "/api/v2/summary.json",
    "/api/v2/components.json",
    "/api/v2/status.json",
    "/",
    "/history",
    "/feed.atom",
    "/badge/web/status.svg",
]


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_EU_TOKEN", EU["Authorization"].removeprefix("Bearer "))
    monkeypatch.setenv("TEST_US_TOKEN", "us-probe-6Hd0Pj5Tc3Qw9Ue2Xa7Mk4")


async def started(db_url: str, clock: FakeClock, config: str = PAGE_CONFIG) -> Runtime:
    runtime = Runtime(
        config_from(config), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    return runtime


def _gap(clock: FakeClock, **fields: Any) -> dict[str, Any]:
    now = clock.now_ms()
    return {"monitor": "api", "first_at": now - 2000, "last_at": now - 1000, "count": 5,
            "failures": 1, **fields}  # fmt: skip


def _bad_bodies(clock: FakeClock) -> list[tuple[dict[str, Any], str]]:
    now = clock.now_ms()
    day = 86_400_000

    def one(**fields: Any) -> dict[str, Any]:
        return batch(clock, "eu", [{**item(1, now, False), **fields}])

    return [
        (one(at=YEAR_10000), "/results/0/at"),
        (one(at=now + 60_000), "/results/0/at"),  # after it was sent
        (one(at=now - 31 * day), "/results/0/at"),  # older than any queue keeps
        (one(latency_ms=1e300), "/results/0/latency_ms"),
        (one(latency_ms=-1), "/results/0/latency_ms"),
        (one(message="a\x00b"), "/results/0/message"),
        (one(message="\ud800"), "/results/0/message"),
        (one(error="x" * 33), "/results/0/error"),
        (one(id="with space"), "/results/0/id"),
        ({**batch(clock, "eu", []), "sent_at": YEAR_10000}, "/sent_at"),
        ({**batch(clock, "eu", []), "sent_at": now + 40 * day}, "/sent_at"),
        (batch(clock, "eu", [], agent={"queue_depth": 2**62}), "/agent/queue_depth"),
        (batch(clock, "eu", [], agent={"version": "x" * 65}), "/agent/version"),
        (
            batch(clock, "eu", [], agent={"dropped": [_gap(clock, count=2**40)]}),
            "/agent/dropped/0/count",
        ),
        (
            batch(clock, "eu", [], agent={"dropped": [_gap(clock, first_at=0)]}),
            "/agent/dropped/0/first_at",
        ),
        (
            batch(clock, "eu", [], agent={"dropped": [_gap(clock, failures=6)]}),
            "/agent/dropped/0",
        ),
    ]


async def test_out_of_bounds_batches_answer_422_with_the_path_and_nothing_is_kept(
    db_url: str, clock: FakeClock, tokens: None
) -> None:
    runtime = await started(db_url, clock)
    try:
        async with serve_app(create_app(runtime, "admin-token")) as url:
            http = (aiohttp.ClientSession(), url)
            async with http[0]:
                for body, path in _bad_bodies(clock):
                    status, answer = await post(http, body, EU)
                    assert status == 422, (path, answer)
                    paths = [d["path"] for d in answer["error"]["details"]]
                    assert path in paths, (path, answer)
                async with http[0].get(f"{url}/metrics") as response:
                    metrics = await response.text()
                async with http[0].get(f"{url}/api/v1/probes", headers=ADMIN) as response:
                    eu = next(p for p in (await response.json())["probes"] if p["name"] == "eu")
        async with runtime.db.connect() as conn:
            assert await result_store.list_results(conn, "api") == []
            assert await probe_store.list_gaps(conn, "eu") == []
        assert (eu["state"], eu["dropped_total"], eu["queue_depth"]) == ("never", 0, None)
        assert 'uptally_probe_batches_rejected_total{location="eu",reason="invalid"}' in metrics
        assert (
            'uptally_probe_batches_rejected_total{location="eu",reason="out_of_range"}' in metrics
        )
    finally:
        await runtime.stop()


async def test_an_agent_batch_that_cannot_be_stored_costs_only_itself(
    db_url: str, clock: FakeClock, tokens: None
) -> None:
    """Past the API's checks (here: straight to the fleet), a batch the database refuses must
    not take the hub's own results with it, nor poison the location's later batches."""
    runtime = await started(db_url, clock)
    try:
        now = clock.now_ms()
        runtime.ingest.submit(Result("hub-1", "hub-only", "local", now, True, 1.0, None, ""))
        poison = Report(dropped=[Gap("eu", "api", now - 2, now - 1, 2**63, 0)])  # no column fits
        bad = asyncio.ensure_future(
            runtime.fleet.push(
                "eu", poison, 0, [Result("eu-1", "api", "eu", now, True, 1.0, None, "")]
            )
        )
        with pytest.raises(RefusedWork):
            await bad
        good = await runtime.fleet.push(
            "eu", Report(), 0, [Result("eu-2", "api", "eu", now + 1, True, 1.0, None, "")]
        )
        assert good.fresh == 1
        await runtime.ingest.drained()
        async with runtime.db.connect() as conn:
            stored = {r.id for r in await result_store.list_results(conn, "api")}
            hub = {r.id for r in await result_store.list_results(conn, "hub-only")}
            [row] = [r for r in await probe_store.load_probes(conn) if r.name == "eu"]
        assert (hub, stored) == ({"hub-1"}, {"eu-2"})
        assert row.dropped_total == 0  # the refused report left nothing behind
    finally:
        await runtime.stop()


async def _insert_absurd_rows(db: Database, now: int) -> None:
    """Rows the schema admits but no honest writer makes: times past year 9999 and before
    year 1, a negative latency; in results, outages, location states and probes."""
    rows = [
        "INSERT INTO results (id, monitor, location, at, ok, latency_ms, error, message, degraded)"
        f" VALUES ('far-1', 'api', 'eu', {10**18}, false, -5, 'timeout', 'x', false)",
        "INSERT INTO results (id, monitor, location, at, ok, latency_ms, error, message, degraded)"
        f" VALUES ('far-2', 'api', 'us', {-(10**17)}, true, 1e300, NULL, '', false)",
        "INSERT INTO results (id, monitor, location, at, ok, latency_ms, error, message, degraded)"
        f" VALUES ('far-3', 'hub-only', 'local', {YEAR_10000}, false, 1, 'x', '', false)",
        f"UPDATE probes SET since = {10**18}, last_contact_at = {-(10**18)} WHERE name = 'eu'",
    ]
    async with db.begin() as conn:
        for row in rows:
            sql = row.replace("false", "0").replace("true", "1") if db.is_sqlite else row
            await conn.execute(text(sql))


@pytest.mark.parametrize("restart", [False, True])
async def test_reads_survive_absurd_stored_rows(
    db_url: str, clock: FakeClock, tokens: None, restart: bool
) -> None:
    runtime = await started(db_url, clock)
    now = clock.now_ms()
    try:
        # A real contact first, so that the probes row exists to spoil.
        async with (
            serve_app(create_app(runtime, "admin-token")) as url,
            aiohttp.ClientSession() as session,
        ):
            assert (await post((session, url), batch(clock, "eu", []), EU))[0] == 200
        await _insert_absurd_rows(runtime.db, now)
        if restart:
            await runtime.stop()
            runtime = await started(db_url, clock)
        async with (
            serve_app(create_app(runtime, "admin-token")) as url,
            aiohttp.ClientSession() as session,
        ):
            for path in READS:
                async with session.get(url + path, headers=ADMIN) as response:
                    assert response.status == 200, (path, await response.text())
    finally:
        await runtime.stop()


async def test_wrong_probe_tokens_are_rate_limited_per_address(
    db_url: str, clock: FakeClock, tokens: None
) -> None:
    runtime = await started(
        db_url, clock, CONFIG + "security: {auth_failures: 3, auth_window: 1h}\n"
    )
    try:
        async with (
            serve_app(create_app(runtime, "admin-token")) as url,
            aiohttp.ClientSession() as session,
        ):
            statuses = []
            for n in range(4):
                guess = {"Authorization": f"Bearer guess-{n}"}
                async with session.get(
                    f"{url}/api/v1/probes/assignments", headers=guess
                ) as response:
                    statuses.append(response.status)
                    retry_after = response.headers.get("Retry-After")
            # Even the right token waits: the guesser cannot tell which one was right.
            async with session.get(f"{url}/api/v1/probes/assignments", headers=EU) as r:
                blocked = r.status
            # The admin API keeps its own count.
            async with session.get(f"{url}/api/v1/monitors", headers=ADMIN) as r:
                admin = r.status
        assert statuses == [401, 401, 401, 429]
        assert retry_after is not None
        assert int(retry_after) > 0
        assert (blocked, admin) == (429, 200)
    finally:
        await runtime.stop()


async def test_validate_refuses_a_weak_probe_token_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "site: {title: t}\nlocations:\n  - name: eu\n    token_env: HOSTILE_EU\n"
        "  - name: us\n    token_env: HOSTILE_US\n"
    )
    strong = "us-probe-6Hd0Pj5Tc3Qw9Ue2Xa7Mk4"
    code, out = await run_cli(
        "validate", "--config", str(config), env={"HOSTILE_EU": "eu", "HOSTILE_US": strong}
    )
    assert code == 2
    assert f"{config}:4: locations[0].token_env: the probe token in $HOSTILE_EU" in out
    assert "secrets.token_urlsafe(32)" in out
    assert "HOSTILE_US" not in out
    code, out = await run_cli(
        "validate", "--config", str(config), env={"HOSTILE_EU": strong, "HOSTILE_US": strong}
    )
    assert code == 0, out
