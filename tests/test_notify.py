"""Channels: routing, messages, signed webhooks, Apprise to a local receiver, secrets, the API."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import HttpReceiver, poll_until
from uptally.clock import SystemClock
from uptally.config import Config
from uptally.metrics import Metrics
from uptally.notify.apprise_channel import AppriseChannel
from uptally.notify.backoff import delay_ms
from uptally.notify.render import render
from uptally.notify.routing import Route, scope_of, targets_for
from uptally.notify.transport import Message, Outgoing
from uptally.notify.webhook import body_of, headers_for
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.signing import Signer
from uptally.store import secrets as secret_store
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "notify-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = """
site: {title: Acme, url: "https://status.acme.test", timezone: Europe/Berlin}
monitors:
  - {id: api, name: Public API, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: db, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
components:
  - {id: api, name: API, monitors: [api]}
  - {id: data, name: Database, monitors: [db]}
"""


def keyring() -> Keyring:
    return Keyring(Key.from_bytes(os.urandom(32)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests of behaviour that does not depend on the database (the rest run on both)."""
    return f"sqlite+aiosqlite:///{tmp_path}/uptally.db"


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with HttpReceiver() as running:
        yield running


async def started(db_url: str, config: Config, ring: Keyring | None = None) -> Runtime:
    runtime = Runtime(
        config,
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
        keyring=ring,
    )
    await runtime.start()
    return runtime


def down(monitor: str, n: int) -> Result:
    now = SystemClock().now_ms()
    return Result(f"r{monitor}{n}", monitor, "local", now, False, 5.0, "connect_refused", "refused")


def up(monitor: str, n: int) -> Result:
    now = SystemClock().now_ms()
    return Result(f"u{monitor}{n}", monitor, "local", now, True, 5.0, None, "")


# -- routing and messages (pure) -------------------------------------------------------------


def test_channels_are_routed_by_event_pattern_and_by_component_or_monitor() -> None:
    config = config_from(BASE)
    routes = [
        Route("channel:all", ("*",)),
        Route("channel:incidents", ("incident.*",)),
        Route("channel:api", ("monitor.*",), components=frozenset({"api"})),
        Route("channel:db-monitor", ("monitor.down",), monitors=frozenset({"db"})),
        Route("subscriber:s", ("incident.*",), frozenset({"data"}), site_wide_too=True),
    ]
    api_down = scope_of({"monitor": "api"}, config)
    assert api_down.components == {"api"}
    assert targets_for("monitor.down", api_down, routes) == ["channel:all", "channel:api"]
    db_down = scope_of({"monitor": "db"}, config)
    assert targets_for("monitor.down", db_down, routes) == ["channel:all", "channel:db-monitor"]
    incident = scope_of({"components": {"data": "major_outage"}}, config)
    assert incident.monitors == {"db"}
    assert targets_for("incident.created", incident, routes) == [
        "channel:all",
        "channel:incidents",
        "subscriber:s",
    ]
    site_wide = scope_of({"location": "eu-west"}, config)
    assert targets_for("incident.created", site_wide, routes)[-1] == "subscriber:s"
    assert targets_for("probe.offline", site_wide, routes) == ["channel:all"]


def test_only_channels_whose_events_match_it_receive_monitor_degraded() -> None:
    config = config_from(
        BASE
        + """
notifications:
  channels:
    - {id: default, url: "json://127.0.0.1:9/"}
    - {id: pager, url: "json://127.0.0.1:9/", events: [monitor.down, monitor.up]}
    - {id: named, url: "json://127.0.0.1:9/", events: [monitor.degraded]}
    - {id: glob, url: "json://127.0.0.1:9/", events: ["monitor.*"]}
    - {id: incidents, url: "json://127.0.0.1:9/", events: ["incident.*"]}
    - {id: silent, url: "json://127.0.0.1:9/", events: []}
"""
    )
    routes = [Route(f"channel:{c.id}", tuple(c.events)) for c in config.notifications.channels]
    api = scope_of({"monitor": "api"}, config)
    assert targets_for("monitor.degraded", api, routes) == [
        "channel:default",  # monitor.* by default
        "channel:named",
        "channel:glob",
    ]
    assert targets_for("monitor.down", api, routes) == [
        "channel:default",
        "channel:pager",
        "channel:glob",
    ]


def test_outage_messages_name_the_monitor_the_locations_and_on_recovery_the_duration() -> None:
    config = config_from(BASE)
    start = 1_767_225_600_000  # 2026-01-01 00:00 UTC, 01:00 in Berlin
    data = {
        "monitor": "api",
        "start": start,
        "locations": ["local", "eu-west"],
        "reason": "refused",
    }
    message = render("monitor.down", "api", data, config)
    assert message.title == "🔴 Public API is down"
    assert message.body == (
        "Public API is down since 01:00 CET on 2026-01-01 (seen from local and eu-west). refused"
    )
    assert message.url == "https://status.acme.test/"
    data.update(end=start + 252_000, duration_ms=252_000)
    recovered = render("monitor.up", "api", data, config)
    assert recovered.title == "✅ Public API is up after 4 min 12 s"
    assert "up again at 01:04 CET on 2026-01-01 after 4 min 12 s" in recovered.body
    incident = render(
        "incident.created",
        "i1",
        {"incident": "i1", "title": "Slow API", "message": "Looking", "components": ["api"]},
        config,
    )
    assert (incident.title, incident.url) == (
        "Incident: Slow API",
        "https://status.acme.test/incidents/i1",
    )
    assert incident.body == "Looking\nAffected: API."


def test_backoff_grows_exponentially_with_jitter_up_to_its_ceiling() -> None:
    settings = config_from("notifications: {retry: {first: 10s, max: 1h}}").notifications.retry
    assert delay_ms(1, settings, rand=lambda: 0.0) == 5_000
    assert delay_ms(1, settings, rand=lambda: 0.999) == 9_995
    assert delay_ms(4, settings, rand=lambda: 1.0) == 80_000
    assert delay_ms(30, settings, rand=lambda: 1.0) == 3_600_000
    assert delay_ms(1, settings, retry_after_ms=120_000, rand=lambda: 0.0) == 120_000


def test_the_webhook_signature_is_an_hmac_of_timestamp_dot_body() -> None:
    outgoing = Outgoing("d1", "e1", "monitor.down", 0, "api", {"monitor": "api"}, Message("t", "b"))
    body = body_of(outgoing)
    assert body == (
        b'{"id":"e1","event":"monitor.down","at":"1970-01-01T00:00:00.000Z",'
        b'"data":{"monitor":"api"}}'
    )
    headers = headers_for(outgoing, body, Signer(secrets=("s3cret",)), now_s=1_700_000_000)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Uptally-Signature"] == f"sha256={expected}"
    assert headers["X-Uptally-Delivery"] == "d1"
    assert headers["X-Uptally-Event"] == "monitor.down"
    assert "X-Uptally-Signature" not in headers_for(outgoing, body, Signer())


# -- end to end, with real receivers ----------------------------------------------------------


async def test_outages_reach_a_signed_webhook_and_apprise_json_and_form_receivers(
    db_url: str, receiver: HttpReceiver
) -> None:
    host = receiver.url.removeprefix("http://")
    config = config_from(
        BASE
        + f"""
notifications:
  channels:
    - {{id: hook, url: "webhook+{receiver.url}/hook", secret: "s3cret", events: [monitor.*]}}
    - {{id: chat, url: "json://{host}/chat", events: [monitor.*], components: [api]}}
    - {{id: form, url: "form://{host}/form", events: [monitor.down]}}
"""
    )
    runtime = await started(db_url, config)
    try:
        runtime.ingest.submit(down("api", 1))
        await runtime.ingest.drained()
        runtime.ingest.submit(up("api", 2))
        await runtime.ingest.drained()
        await receiver.wait_for(
            lambda: (
                len(receiver.ok("/hook")) == 2
                and len(receiver.ok("/chat")) == 2
                and len(receiver.ok("/form")) == 1
            )
        )
        for request in receiver.ok("/hook"):
            stamp = request.headers["X-Uptally-Timestamp"]
            mac = hmac.new(b"s3cret", stamp.encode() + b"." + request.body, hashlib.sha256)
            assert request.headers["X-Uptally-Signature"] == f"sha256={mac.hexdigest()}"
        first, second = (r.json() for r in receiver.ok("/hook"))
        assert (first["event"], second["event"]) == ("monitor.down", "monitor.up")
        assert first["data"]["monitor"] == "api"
        assert first["data"]["locations"] == ["local"]
        assert isinstance(second["data"]["duration_ms"], int)
        assert [r.json()["type"] for r in receiver.ok("/chat")] == ["failure", "success"]
        chat = receiver.ok("/chat")[1].json()
        assert chat["title"].startswith("✅ Public API is up after")
        assert "https://status.acme.test/" in chat["message"]
        form = parse_qs(receiver.ok("/form")[0].body.decode())
        assert form["title"] == ["🔴 Public API is down"]
        assert "(seen from local)" in form["message"][0]
    finally:
        await runtime.stop()


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("monitor.down", {}, "failure"),
        ("monitor.degraded", {}, "warning"),
        ("monitor.up", {}, "success"),
        ("incident.created", {}, "failure"),
        ("incident.updated", {}, "failure"),
        ("incident.resolved", {}, "success"),
        ("incident.updated", {"postmortem": True}, "info"),
        ("probe.offline", {}, "failure"),
        ("probe.online", {}, "success"),
        ("commitment.due", {"state": "overdue"}, "warning"),
        ("maintenance.started", {}, "info"),
    ],
)
async def test_apprise_messages_carry_how_bad_the_event_is(
    receiver: HttpReceiver, kind: str, data: dict[str, object], expected: str
) -> None:
    host = receiver.url.removeprefix("http://")
    channel = AppriseChannel(f"json://{host}/typed", timeout_s=5)
    message = Message("title", "body")
    await channel.send(Outgoing("d1", "e1", kind, 0, "api", data, message))
    [request] = receiver.ok("/typed")
    assert request.json()["type"] == expected


async def test_channel_urls_and_signing_secrets_come_from_the_secret_store(
    sqlite_url: str, receiver: HttpReceiver
) -> None:
    db_url = sqlite_url
    ring = keyring()
    config = config_from(
        BASE
        + """
notifications:
  channels:
    - {id: hook, url: {secret: hook-url}, secret: {secret: hook-key}, events: ["*"]}
"""
    )
    db = Database(db_url)
    await db.migrate()
    async with db.begin() as conn:
        await secret_store.put_secret(db, conn, ring, "hook-url", f"webhook+{receiver.url}/s", 1)
        await secret_store.put_secret(db, conn, ring, "hook-key", "from-the-store", 1)
    await db.close()
    runtime = await started(db_url, config, ring)
    try:
        runtime.ingest.submit(down("db", 1))
        await runtime.ingest.drained()
        await receiver.wait_for(lambda: len(receiver.ok("/s")) == 1)
        request = receiver.ok("/s")[0]
        stamp = request.headers["X-Uptally-Timestamp"].encode()
        mac = hmac.new(b"from-the-store", stamp + b"." + request.body, hashlib.sha256)
        assert request.headers["X-Uptally-Signature"] == f"sha256={mac.hexdigest()}"
    finally:
        await runtime.stop()


async def test_channels_made_through_the_api_are_sealed_and_never_shown(
    db_url: str, receiver: HttpReceiver
) -> None:
    ring = keyring()
    # the receiver is on 127.0.0.1, which the SSRF guard refuses for API-made channels
    config = config_from(BASE + "security: {allow_internal: [127.0.0.1]}\n")
    runtime = await started(db_url, config, ring)
    try:
        async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as http:
            body = {
                "url": f"webhook+{receiver.url}/api-made?token=very-secret",
                "secret": "signing-secret",
                "events": ["incident.*"],
                "components": ["api"],
            }
            async with http.put(f"{base}/api/v1/channels/pager", json=body, headers=AUTH) as r:
                assert r.status == 200, await r.text()
                made = await r.json()
            assert made["secret_set"] is True
            assert (made["kind"], made["scheme"]) == ("webhook", "http")
            assert "very-secret" not in str(made)
            async with runtime.db.connect() as conn:
                raw = (await conn.exec_driver_sql("SELECT url, secret FROM channels")).one()
            assert raw[0].startswith("enc:v1:")
            assert "very-secret" not in raw[0]
            assert raw[1].startswith("enc:v1:")
            incident = {"title": "Slow", "components": ["api"], "message": "Looking"}
            async with http.post(f"{base}/api/v1/incidents", json=incident, headers=AUTH) as r:
                assert r.status == 201
            await receiver.wait_for(lambda: len(receiver.ok("/api-made")) == 1)
            sent = receiver.ok("/api-made")[0]
            assert sent.json()["event"] == "incident.created"
            assert "X-Uptally-Signature" in sent.headers

            async def listed() -> dict[str, object]:
                async with http.get(f"{base}/api/v1/channels", headers=AUTH) as r:
                    return {c["id"]: c for c in (await r.json())["channels"]}

            channels = await listed()
            assert "signing-secret" not in str(channels)
            assert channels["pager"]["source"] == "api"
            async with http.get(f"{base}/api/v1/deliveries?channel=pager", headers=AUTH) as r:
                [delivery] = (await r.json())["deliveries"]
            async with http.get(f"{base}/api/v1/deliveries/{delivery['id']}", headers=AUTH) as r:
                detail = await r.json()
            assert detail["target"] == "channel:pager"
            async with http.get(f"{base}/api/v1/audit?action=channel.*", headers=AUTH) as r:
                [entry] = (await r.json())["entries"]
            assert entry["action"] == "channel.created"
            assert "signing-secret" not in str(entry)
            async with http.delete(f"{base}/api/v1/channels/pager", headers=AUTH) as r:
                assert r.status == 204
            assert "pager" not in await listed()
    finally:
        await runtime.stop()


async def test_without_a_secret_key_channels_cannot_be_stored(sqlite_url: str) -> None:
    runtime = await started(sqlite_url, config_from(BASE))
    try:
        async with serve_app(create_app(runtime, TOKEN)) as base, aiohttp.ClientSession() as http:
            body = {"url": "slack://a/b/c"}
            async with http.put(f"{base}/api/v1/channels/x", json=body, headers=AUTH) as r:
                assert r.status == 409
                assert (await r.json())["error"]["code"] == "conflict"
    finally:
        await runtime.stop()


async def test_metrics_show_per_channel_deliveries_pending_and_the_share_within_an_hour(
    db_url: str,
) -> None:
    def answer(_n: int, path: str) -> int:
        return 503 if path == "/down" else 200

    async with HttpReceiver(answer) as receiver:
        config = config_from(
            BASE
            + f"""
notifications:
  retry: {{first: 1h}}
  channels:
    - {{id: good, url: "webhook+{receiver.url}/good", events: ["*"]}}
    - {{id: bad, url: "webhook+{receiver.url}/down", events: ["*"]}}
"""
        )
        runtime = await started(db_url, config)
        try:
            runtime.ingest.submit(down("api", 1))
            await runtime.ingest.drained()
            await receiver.wait_for(
                lambda: len(receiver.ok("/good")) == 1 and len(receiver.requests) == 2
            )

            async def settled() -> bool:
                async with runtime.db.connect() as conn:
                    return (
                        await conn.exec_driver_sql("SELECT count(*) FROM delivery_attempts")
                    ).scalar() == 2

            await poll_until(settled)
            await runtime.notifier.dispatcher.refresh_stats(SystemClock().now_ms() + 2 * 3_600_000)
            async with (
                serve_app(create_app(runtime, TOKEN)) as base,
                aiohttp.ClientSession() as http,
                http.get(f"{base}/metrics") as r,
            ):
                text = await r.text()
        finally:
            await runtime.stop()
    assert 'uptally_deliveries_total{channel="good",outcome="delivered"} 1.0' in text
    assert 'uptally_delivery_attempts_total{channel="bad",outcome="transient"} 1.0' in text
    assert 'uptally_deliveries_pending{channel="bad"} 1.0' in text
    assert 'uptally_deliveries_within_1h_ratio{channel="good"} 1.0' in text
    assert 'uptally_deliveries_within_1h_ratio{channel="bad"} 0.0' in text


async def test_metrics_count_every_event_kind_and_show_each_monitor_up_per_location(
    db_url: str,
) -> None:
    runtime = await started(db_url, config_from(BASE))
    try:
        async with (
            serve_app(create_app(runtime, TOKEN)) as base,
            aiohttp.ClientSession() as http,
        ):

            async def scrape() -> str:
                async with http.get(f"{base}/metrics") as response:
                    return await response.text()

            runtime.ingest.submit(down("api", 1))
            await runtime.ingest.drained()
            body = {"title": "API errors", "components": ["api"], "message": "Looking"}
            async with http.post(f"{base}/api/v1/incidents", json=body, headers=AUTH) as r:
                assert r.status == 201
            text = ""

            async def counted() -> bool:
                nonlocal text
                text = await scrape()
                return 'uptally_events_total{kind="incident.created"} 1.0' in text

            await poll_until(counted)
            assert 'uptally_events_total{kind="monitor.down"} 1.0' in text
            assert 'uptally_monitor_up{location="local",monitor="api"} 0.0' in text
            assert 'monitor="db"' not in text  # no result yet: unknown, so absent
            runtime.ingest.submit(up("api", 2))
            runtime.ingest.submit(up("db", 1))
            await runtime.ingest.drained()
            text = await scrape()
            assert 'uptally_monitor_up{location="local",monitor="api"} 1.0' in text
            assert 'uptally_monitor_up{location="local",monitor="db"} 1.0' in text
    finally:
        await runtime.stop()


def test_sealed_values_are_bound_to_their_channel() -> None:
    from uptally.secrets import SecretKeyError
    from uptally.store.channels import StoredChannel, sealed

    ring = keyring()
    url, secret = sealed(ring, "a", "slack://x", "s")
    assert StoredChannel("a", url, secret, [], [], [], 0, 0, "t").opened(ring) == ("slack://x", "s")
    with pytest.raises(SecretKeyError):
        StoredChannel("b", url, secret, [], [], [], 0, 0, "t").opened(ring)


def test_the_config_checks_channel_urls_smtp_and_the_site_country() -> None:
    from uptally.config import ConfigError

    parsed = config_from(
        """
site: {country: de, subdivision: BY}
notifications:
  channels:
    - {id: a, url: {secret: slack-url}}
    - {id: b, url: "webhook+https://hooks.example.com/x", secret: {secret: key}}
  smtp: {host: mail.example.com, from: "Status <status@example.com>"}
incidents: {automation: {default: off}}
"""
    )
    assert parsed.site.country == "DE"
    assert parsed.incidents.automation.default == "off"  # YAML's bare `off` is not false here
    problems = {
        "notifications: {channels: [{id: a, url: 'not a url'}]}": "Apprise URL",
        "notifications: {channels: [{id: a, url: 'slack://x', secret: s}]}": "only a webhook",
        "notifications: {channels: [{id: a, url: 'webhook+ftp://x'}]}": "webhook+http(s)",
        "notifications: {channels: [{id: a, url: 'json://x', events: [nope.*]}]}": "unknown event",
        "site: {country: XX}": "unknown country",
        "incidents: {automation: {components: {nope: open}}}": "unknown component",
        "incidents: {automation: {runbook: missing}}": "no runbook template",
    }
    for text, expected in problems.items():
        with pytest.raises(ConfigError) as error:
            config_from(text)
        assert expected in str(error.value), (text, str(error.value))


async def test_a_missing_secret_is_retried_until_set_and_a_removed_channel_is_given_up(
    sqlite_url: str, receiver: HttpReceiver
) -> None:
    ring = keyring()
    config = config_from(
        BASE
        + """
notifications:
  retry: {first: 20ms, max: 50ms}
  channels:
    - {id: later, url: {secret: later-url}, events: ["*"]}
    - {id: gone, url: "json://127.0.0.1:9/x", events: ["*"]}
"""
    )
    runtime = await started(sqlite_url, config, ring)
    try:
        runtime.ingest.submit(down("api", 1))
        await runtime.ingest.drained()

        async def errors() -> list[str]:
            async with runtime.db.connect() as conn:
                rows = await conn.exec_driver_sql("SELECT error FROM delivery_attempts")
                return [str(r[0]) for r in rows]

        async def tried() -> bool:
            return sum("'later-url' is not set" in e for e in await errors()) >= 2

        await poll_until(tried)  # recorded as failed attempts, with backoff
        runtime.config = config.model_copy(
            update={
                "notifications": config.notifications.model_copy(
                    update={"channels": config.notifications.channels[:1]}
                )
            }
        )
        async with runtime.db.begin() as conn:
            url = f"webhook+{receiver.url}/later"
            await secret_store.put_secret(runtime.db, conn, ring, "later-url", url, 1)
        await receiver.wait_for(lambda: len(receiver.ok("/later")) == 1)

        async def given_up() -> bool:
            async with runtime.db.connect() as conn:
                rows = await conn.exec_driver_sql(
                    "SELECT state, last_error FROM deliveries WHERE target = 'channel:gone'"
                )
                return [tuple(r) for r in rows] == [("failed", "the channel was removed")]

        runtime.notifier.wake()
        await poll_until(given_up)
    finally:
        await runtime.stop()
