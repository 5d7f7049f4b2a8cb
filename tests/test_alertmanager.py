"""`external` monitors driven by a real Alertmanager (Debian `prometheus-alertmanager`) through
POST /api/v1/integrations/alertmanager: alerts added with `amtool` and raised by a real
Prometheus rule go down at the alert's start, come back up when resolved, and repeats change
nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import free_port
from tests.receivers import poll_until
from tests.targets import HttpTarget, Response
from uptally import tokens
from uptally.clock import SystemClock, from_datetime
from uptally.evaluator import MonitorState
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.store.outbox import list_events
from uptally.web.app import create_app

ADMIN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"
ALERTMANAGER = shutil.which("prometheus-alertmanager")
AMTOOL = shutil.which("amtool")
PROMETHEUS = shutil.which("prometheus")
CONFIG = """
site: {title: Alerts}
monitors:
  - id: api
    kind: external
    name: API
    match: {alertname: ApiDown, service: api}
  - id: db
    kind: external
    match: {alertname: DbDown}
"""


def _needs(*binaries: str | None) -> None:
    if all(binaries):
        return
    message = "prometheus-alertmanager/amtool/prometheus are not installed (Debian packages)"
    if os.environ.get("UPTALLY_REQUIRE_ALERTMANAGER") == "1":  # CI installs them
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Hub:
    runtime: Runtime
    url: str
    token: str  # write scope
    http: aiohttp.ClientSession

    async def post(self, body: Any, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        url = f"{self.url}/api/v1/integrations/alertmanager"
        async with self.http.post(url, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def events(self, kind: str, monitor: str = "api") -> list[dict[str, Any]]:
        async with self.runtime.db.connect() as conn:
            found = await list_events(conn, kind=kind)
        return [e.data for e in found if e.subject == monitor]

    async def committed(self, kind: str, monitor: str = "api") -> None:
        """Wait until an event is stored (the evaluator's state changes before the commit)."""

        async def stored() -> bool:
            return bool(await self.events(kind, monitor))

        await poll_until(stored, timeout=20, every=0.05)


@asynccontextmanager
async def _serving(db_url: str) -> AsyncIterator[Hub]:
    runtime = Runtime(config_from(CONFIG), Database(db_url), clock=SystemClock(), metrics=Metrics())
    await runtime.start()
    async with runtime.db.begin() as conn:
        writer = await tokens.create(conn, "alertmanager", ["write"], "test", 0)
    try:
        async with (
            serve_app(create_app(runtime, ADMIN)) as url,
            aiohttp.ClientSession() as http,
        ):
            yield Hub(runtime, url, writer.token, http)
    finally:
        await runtime.stop()


@pytest.fixture
async def hub(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Hub]:
    """uptally on SQLite, for the tests with real Alertmanager and Prometheus processes."""
    shutil.copyfile(sqlite_template, tmp_path / "uptally.db")
    async with _serving(f"sqlite+aiosqlite:///{tmp_path}/uptally.db") as served:
        yield served


@pytest.fixture
async def any_hub(db_url: str) -> AsyncIterator[Hub]:
    """uptally on SQLite and on PostgreSQL, for the tests that post payloads themselves."""
    async with _serving(db_url) as served:
        yield served


@asynccontextmanager
async def running(args: list[str], ready_url: str) -> AsyncIterator[None]:
    """A real server process, ready when `ready_url` answers 200; terminated after."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(ready_url) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return process.returncode is not None  # died: stop waiting

            await poll_until(ready, timeout=20, every=0.1)
        if process.returncode is not None:
            assert process.stderr is not None
            raise AssertionError(f"{args[0]} exited: {(await process.stderr.read()).decode()}")
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


@asynccontextmanager
async def alertmanager(tmp_path: Path, hub: Hub) -> AsyncIterator[str]:
    """Alertmanager whose one receiver is uptally's webhook, with the write token as bearer."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(f"""
route:
  receiver: uptally
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: uptally
    webhook_configs:
      - url: {hub.url}/api/v1/integrations/alertmanager
        send_resolved: true
        http_config:
          authorization: {{type: Bearer, credentials: {hub.token}}}
""")
    base = f"http://127.0.0.1:{free_port()}"
    args = [
        str(ALERTMANAGER),
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address={base.removeprefix('http://')}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ]
    async with running(args, f"{base}/-/ready"):
        yield base


async def amtool(base: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(AMTOOL),
        "alert",
        "add",
        "alertname=ApiDown",
        "service=api",
        *args,
        f"--alertmanager.url={base}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def webhook_notifications(base: str) -> float:
    """How many notifications Alertmanager sent to webhooks (its own counter)."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('alertmanager_notifications_total{integration="webhook"}'):
            return float(line.split()[-1])
    return 0.0


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
async def test_an_amtool_alert_is_down_from_its_start_and_up_when_resolved_once(
    hub: Hub, tmp_path: Path
) -> None:
    _needs(ALERTMANAGER, AMTOOL)
    runtime = hub.runtime
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=7)
    async with alertmanager(tmp_path, hub) as base:
        await amtool(base, f"--start={_rfc3339(started)}", "--annotation=summary=API 5xx")
        await hub.committed("monitor.down")
        assert runtime.evaluator.state("api") is MonitorState.DOWN
        outage = runtime.evaluator.open_outage("api")
        assert outage is not None
        # The outage starts when the alert did, not when the notification arrived.
        assert abs(outage.start - from_datetime(started)) <= 1000
        assert runtime.evaluator.state("db") is MonitorState.UNKNOWN  # its labels do not match
        # Alertmanager repeats the notification (repeat_interval 2s): nothing changes.
        sent = await webhook_notifications(base)
        await poll_until(lambda: _more_than(base, sent + 1), timeout=15, every=0.2)
        downs = await hub.events("monitor.down")
        assert len(downs) == 1, downs
        assert downs[0]["start"] == outage.start
        assert "ApiDown is firing: API 5xx" in str(downs[0]["reason"])
        ended = datetime.now(UTC).replace(microsecond=0)
        await amtool(base, f"--start={_rfc3339(started)}", f"--end={_rfc3339(ended)}")
        await hub.committed("monitor.up")
        assert runtime.evaluator.state("api") is MonitorState.UP
        assert runtime.evaluator.open_outage("api") is None
        ups = await hub.events("monitor.up")
        assert len(ups) == 1, ups
        assert ups[0]["start"] == outage.start
        assert abs(int(ups[0]["end"]) - from_datetime(ended)) <= 1000
        assert len(await hub.events("monitor.down")) == 1


async def _more_than(base: str, count: float) -> bool:
    return await webhook_notifications(base) > count


@pytest.mark.slow
async def test_a_prometheus_rule_firing_and_resolving_drives_the_monitor(
    hub: Hub, tmp_path: Path
) -> None:
    _needs(ALERTMANAGER, PROMETHEUS)
    runtime = hub.runtime
    # The scraped service: failing (so `up == 0` fires), then healthy (so it resolves).
    async with HttpTarget({"/metrics": Response(503, b"down")}) as service:
        (tmp_path / "rules.yml").write_text("""
groups:
  - name: api
    interval: 1s
    rules:
      - alert: ApiDown
        expr: up{job="api"} == 0
        for: 0s
        labels: {service: api}
        annotations: {summary: the API does not answer its scrapes}
""")
        async with alertmanager(tmp_path, hub) as am:
            prometheus = tmp_path / "prometheus.yml"
            prometheus.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}}
rule_files: [{tmp_path / "rules.yml"}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{am.removeprefix("http://")}"]}}]
scrape_configs:
  - job_name: api
    static_configs: [{{targets: ["{service.url("/").removeprefix("http://").rstrip("/")}"]}}]
""")
            port = free_port()
            args = [
                str(PROMETHEUS),
                f"--config.file={prometheus}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ]
            async with running(args, f"http://127.0.0.1:{port}/-/ready"):
                await hub.committed("monitor.down")
                assert runtime.evaluator.state("api") is MonitorState.DOWN
                alerts = await _alerts(am)
                assert len(alerts) == 1, alerts
                outage = runtime.evaluator.open_outage("api")
                assert outage is not None
                starts = datetime.fromisoformat(alerts[0]["startsAt"])
                assert abs(outage.start - from_datetime(starts)) <= 1000
                service.routes["/metrics"] = Response(200, b"api_requests_total 1\n")
                await hub.committed("monitor.up")
                assert runtime.evaluator.state("api") is MonitorState.UP
        assert len(await hub.events("monitor.down")) == 1
        ups = await hub.events("monitor.up")
        assert len(ups) == 1
        assert ups[0]["start"] == outage.start


async def _alerts(base: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v2/alerts") as response:
        found: list[dict[str, Any]] = await response.json()
        return found


def _payload(**changes: Any) -> dict[str, Any]:
    """A version 4 payload as Alertmanager sends it (its documented example, one alert)."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "DbDown", "instance": "db1"},
        "annotations": {},
        "startsAt": "2026-12-03T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "a1b2c3d4e5f60708",
    }
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="DbDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "uptally",
        "groupLabels": {"alertname": "DbDown"},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }
    body.update(changes)
    return body


async def test_payloads_other_than_version_4_are_refused_and_change_nothing(any_hub: Hub) -> None:
    bad_alert = {**_payload()["alerts"][0], "startsAt": "yesterday"}
    for body, words in [
        (_payload(version="3"), "unsupported payload version '3'"),
        (_payload(version=4), "unsupported payload version 4"),
        ([1, 2], "must be a JSON object"),
        (_payload(alerts=[bad_alert]), "/alerts/0/startsAt"),
        (_payload(alerts=[{"status": "pending"}]), "/alerts/0/status"),
        (_payload(alerts="none"), "/alerts"),
    ]:
        status, answer = await any_hub.post(body)
        assert status == 422, (body, answer)
        assert words in answer["error"]["message"], answer
    async with any_hub.http.post(
        f"{any_hub.url}/api/v1/integrations/alertmanager",
        data=b"{not json",
        headers={"Authorization": f"Bearer {any_hub.token}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 422
    async with any_hub.runtime.db.begin() as conn:
        reader = await tokens.create(conn, "viewer", ["read"], "test", 0)
    status, answer = await any_hub.post(_payload(), token=reader.token)
    assert status == 403, answer
    assert any_hub.runtime.evaluator.state("db") is MonitorState.UNKNOWN
    # The same notification, valid, twice: stored once.
    assert await any_hub.post(_payload()) == (200, {"alerts": 1, "matched": 1, "recorded": 1})
    assert await any_hub.post(_payload()) == (200, {"alerts": 1, "matched": 1, "recorded": 0})
    await poll_until(lambda: any_hub.runtime.evaluator.state("db") is MonitorState.DOWN)
    assert len(await any_hub.events("monitor.down", "db")) == 1


def _alert(fingerprint: str, status: str, starts: str, ends: str | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "DbDown", "instance": fingerprint},
        "startsAt": starts,
        "endsAt": ends or "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


async def test_a_monitor_stays_down_while_another_of_its_alerts_still_fires(any_hub: Hub) -> None:
    runtime = any_hub.runtime
    one = _alert("f1", "firing", "2026-12-03T10:00:00Z")
    two = _alert("f2", "firing", "2026-12-03T10:05:00Z")
    assert (await any_hub.post(_payload(alerts=[two, one])))[0] == 200
    await poll_until(lambda: runtime.evaluator.state("db") is MonitorState.DOWN)
    # Alertmanager's next notification of the group: f1 resolved, f2 still firing.
    one_resolved = _alert("f1", "resolved", "2026-12-03T10:00:00Z", "2026-12-03T10:10:00Z")
    status, answer = await any_hub.post(_payload(status="firing", alerts=[one_resolved, two]))
    assert (status, answer["recorded"]) == (200, 0)  # nothing new: f1's down is known
    assert runtime.evaluator.state("db") is MonitorState.DOWN
    two_resolved = _alert("f2", "resolved", "2026-12-03T10:05:00Z", "2026-12-03T10:20:00Z")
    assert (await any_hub.post(_payload(status="resolved", alerts=[two_resolved])))[0] == 200
    await poll_until(lambda: runtime.evaluator.state("db") is MonitorState.UP)
    (up,) = await any_hub.events("monitor.up", "db")
    assert (up["start"], up["end"]) == (
        from_datetime(datetime(2026, 12, 3, 10, 0, tzinfo=UTC)),
        from_datetime(datetime(2026, 12, 3, 10, 20, tzinfo=UTC)),
    )


async def test_a_resolved_alert_whose_firing_was_missed_still_records_its_outage(
    any_hub: Hub,
) -> None:
    resolved = _alert("f9", "resolved", "2026-12-03T09:00:00Z", "2026-12-03T09:30:00Z")
    assert await any_hub.post(_payload(status="resolved", alerts=[resolved])) == (
        200,
        {"alerts": 1, "matched": 1, "recorded": 2},
    )
    await poll_until(lambda: any_hub.runtime.evaluator.state("db") is MonitorState.UP)
    (up,) = await any_hub.events("monitor.up", "db")
    assert up["duration_ms"] == 30 * 60_000


async def test_an_external_monitor_made_through_the_api_follows_its_alerts(any_hub: Hub) -> None:
    made = {"id": "cache", "kind": "external", "match": {"alertname": "CacheDown"}}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with any_hub.http.post(
        f"{any_hub.url}/api/v1/monitors", json=made, headers=admin
    ) as response:
        assert response.status == 201, await response.text()
    cache = {**_alert("c1", "firing", "2026-12-03T11:00:00Z"), "labels": {"alertname": "CacheDown"}}
    assert (await any_hub.post(_payload(alerts=[cache])))[1]["matched"] == 1
    await poll_until(lambda: any_hub.runtime.evaluator.state("cache") is MonitorState.DOWN)
    assert any_hub.runtime.evaluator.state("db") is MonitorState.UNKNOWN


@pytest.mark.parametrize(
    ("monitor", "words"),
    [
        ("match: {}", "uptally.yaml:4: monitors[0].match: Dictionary should have at least 1"),
        ("match: {'bad-name': x}", "uptally.yaml:4: monitors[0].match.bad-name"),
        ("match: {alertname: A}\n    confirm: 2", "uptally.yaml:5: monitors[0].confirm: unknown"),
        ("interval: 1m", "monitors[0].match: missing required key 'match'"),
    ],
)
def test_an_external_monitor_needs_label_matchers_and_takes_no_probe_settings(
    monitor: str, words: str
) -> None:
    from uptally.config import ConfigError, parse_config

    text = f"monitors:\n  - id: api\n    kind: external\n    {monitor}\n"
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "uptally.yaml")
    assert any(words in line for line in raised.value.lines()), raised.value.lines()


async def test_an_alert_resolved_before_another_started_is_an_outage_of_its_own(
    any_hub: Hub,
) -> None:
    earlier = _alert("f5", "resolved", "2026-12-03T09:00:00Z", "2026-12-03T09:10:00Z")
    later = _alert("f4", "firing", "2026-12-03T09:20:00Z")
    assert (await any_hub.post(_payload(alerts=[later])))[0] == 200
    await poll_until(lambda: any_hub.runtime.evaluator.state("db") is MonitorState.DOWN)
    # Older than what the monitor has: placed in time where it belongs (a late result).
    assert (await any_hub.post(_payload(status="resolved", alerts=[earlier])))[0] == 200
    (up,) = await any_hub.events("monitor.up", "db")
    assert up["duration_ms"] == 10 * 60_000
    outage = any_hub.runtime.evaluator.open_outage("db")
    assert outage is not None
    assert outage.start == from_datetime(datetime(2026, 12, 3, 9, 20, tzinfo=UTC))
