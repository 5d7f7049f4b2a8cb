"""Real processes: the hub is killed, a target fails while it is away, the agent's queue replays."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import Hub, free_port, start_agent
from tests.targets import HttpTarget, Request, Response, TcpTarget, reply_with

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "hub-away-admin-token-k7Qz"
EU_TOKEN = "eu-probe-9f3Kq2LmZx7Wv4Rt8Ys1Nb"  # probe tokens need 128 bits
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
INTERVAL_S = 1.0


async def poll(
    fetch: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], timeout: float = 90
) -> Any:
    """Poll until `ok(value)`, with a deadline (no fixed sleeps as synchronisation)."""
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if value is not None and ok(value):
                return value
            await asyncio.sleep(0.1)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def test_an_outage_while_the_hub_is_away_starts_when_the_target_failed(
    tmp_path: Path,
) -> None:
    failing = False

    def answer(_request: Request) -> Response:
        return Response(503 if failing else 200, b"down" if failing else b"ok")

    # Two of three canaries answer: the majority says the agent's own network is fine.
    async with (
        HttpTarget({"/": answer}) as target,
        TcpTarget(reply_with(b"")) as canary_a,
        TcpTarget(reply_with(b"")) as canary_b,
    ):
        canaries = [
            f"tcp://{canary_a.address}",
            f"tcp://{canary_b.address}",
            f"tcp://127.0.0.1:{free_port()}",  # nothing listens there
        ]
        config = tmp_path / "hub.yaml"
        config.write_text(f"""
locations:
  - {{name: eu, token_env: AWAY_EU, canaries: {canaries}}}
monitors:
  - id: api
    kind: http
    url: {target.url("/")}
    interval: {INTERVAL_S:g}s
    retry_interval: 500ms
    timeout: 1s
    confirm: 2
    locations: [eu]
""")
        hub = Hub(
            config, tmp_path / "data", {"AWAY_EU": EU_TOKEN, "UPTALLY_ADMIN_TOKEN": ADMIN_TOKEN}
        )
        await hub.start(timeout=90)
        metrics_port = free_port()
        log = tmp_path / "agent.log"
        agent = await start_agent(
            hub.url,
            "eu",
            EU_TOKEN,
            tmp_path / "queue",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
            log=log,
        )
        try:
            async with aiohttp.ClientSession() as http:

                async def get(path: str) -> Any:
                    try:
                        async with http.get(hub.url + path, headers=ADMIN) as response:
                            return await response.json() if response.status == 200 else None
                    except aiohttp.ClientError:
                        return None

                async def agent_metrics() -> dict[str, float] | None:
                    url = f"http://127.0.0.1:{metrics_port}/metrics"
                    try:
                        async with http.get(url) as response:
                            text = await response.text()
                    except aiohttp.ClientError:
                        return None
                    return {
                        sample.name + _labels(sample.labels): sample.value
                        for family in text_string_to_metric_families(text)
                        for sample in family.samples
                    }

                await poll(lambda: get("/api/v1/monitors/api"), lambda m: m["state"] == "up")
                # Successes for longer than a location may be silent (2 intervals + timeout):
                # after a crash, the hub must still know they came without a gap.
                up_checks = 'uptally_checks_total{kind="http",location="eu",result="up"}'
                await poll(
                    agent_metrics,
                    lambda m: m["uptally_agent_hub_reachable"] == 1 and m.get(up_checks, 0) >= 8,
                )

                # The hub dies; the agent notices and keeps checking.
                await hub.kill()
                away = await poll(agent_metrics, lambda m: m["uptally_agent_hub_reachable"] == 0)
                assert away["uptally_agent_hub_unreachable_since_seconds"] > 0

                failing = True
                failed_at = int(time.time() * 1000)
                down_checks = 'uptally_checks_total{kind="http",location="eu",result="down"}'
                # Several failures queued while nobody can tell the hub (longer than the margin
                # the start is allowed below, so a start at the hub's return would fail).
                queued = await poll(agent_metrics, lambda m: m.get(down_checks, 0) >= 8)
                assert queued["uptally_agent_queue_depth"] > 0
                assert queued["uptally_agent_network_ok"] == 1  # the hub is not a canary
                assert queued['uptally_agent_canary_up{target="' + canaries[2] + '"}'] == 0

                await hub.start(timeout=90)
                restarted_at = int(time.time() * 1000)
                body = await poll(
                    lambda: get("/api/v1/outages?monitor=api&verified=true"),
                    lambda b: len(b["outages"]) == 1,
                )
                [outage] = body["outages"]
                start = ms(outage["start"])
                # The first check after the failure (due within an interval; generous for a
                # loaded machine; a check that began up to its timeout before the switch may
                # be answered after it), far from the hub's return.
                assert failed_at - 1000 <= start <= failed_at + 3000, start - failed_at
                assert start < restarted_at - 3000  # its own time, not the replay's

                failing = False
                body = await poll(
                    lambda: get("/api/v1/outages?monitor=api&verified=true"),
                    lambda b: b["outages"][0]["end"] is not None,
                )
                [ended] = body["outages"]
                assert (ended["id"], ms(ended["start"])) == (outage["id"], start)
                back = await poll(agent_metrics, lambda m: m["uptally_agent_queue_depth"] == 0)
                assert back["uptally_agent_hub_reachable"] == 1
        finally:
            agent.send_signal(signal.SIGTERM)
            await agent.wait()
            assert await hub.stop() == 0, "".join(hub.output)

    with sqlite3.connect(tmp_path / "data" / "uptally.db") as db:
        first_failure, failures, degraded = db.execute(
            "SELECT min(at), count(*), sum(degraded) FROM results WHERE monitor = 'api' AND NOT ok"
        ).fetchone()
        [runs] = db.execute("SELECT runs FROM location_states WHERE location = 'eu'").fetchone()
    # eu reported without a pause (before, during and after the hub's absence): a run of
    # successes followed by another one would mean the hub thought it silent in between.
    outcomes = [run[0] for run in json.loads(runs)]
    assert outcomes == [True, False, True], runs
    assert degraded == 0  # the hub's absence never made a failure "degraded"
    assert failures >= 8
    assert start == first_failure  # the verified outage starts at the first failing result
    said = log.read_text()
    assert said.count("unreachable since") == 1, said  # said once, not per retry
    assert "results wait for it" in said
    assert "reachable again after" in said
    assert "replaying" in said


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
