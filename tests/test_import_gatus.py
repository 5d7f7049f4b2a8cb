"""`uptally import gatus`: Gatus' own example configurations become uptally YAML that validates,
with every condition, provider and endpoint either mapped, approximated or named as left out;
--apply creates the monitors through the `config apply` path."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from uptally.audit.log import AuditFilter, list_entries
from uptally.cli import app
from uptally.config import parse_config
from uptally.config.schema import Component, HttpMonitor
from uptally.managed.load import load
from uptally.store.database import Database

DATA = Path(__file__).resolve().parent / "data" / "gatus"
EXAMPLES = sorted(DATA.glob("*.yaml"))


def apprise_takes(url: str) -> bool:
    """Whether the real Apprise library accepts the URL (it loads its plugins on first use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        return bool(apprise.Apprise().add(url))


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["import", "gatus", *args])
    return result.exit_code, result.stdout, result.stderr


def imported(name: str) -> tuple[dict[str, Any], str]:
    code, out, err = run(str(DATA / name))
    assert code == 0, err
    document = yaml.safe_load(out)
    assert isinstance(document, dict)
    return document, err


def monitor(document: dict[str, Any], monitor_id: str) -> dict[str, Any]:
    found = [m for m in document["monitors"] if m["id"] == monitor_id]
    assert found, [m["id"] for m in document["monitors"]]
    return found[0]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_gatus_example_becomes_yaml_that_uptally_validates(example: Path) -> None:
    code, out, err = run(str(example))
    assert code == 0, err
    config = parse_config(out, str(example))  # raises with FILE:LINE problems if invalid
    assert config.monitors
    assert " mapped, " in err
    assert " left out" in err


def test_conditions_become_expectations_and_what_cannot_is_named() -> None:
    document, report = imported("root-config.yaml")
    assert monitor(document, "front-end")["expect"] == [
        "status == 200",
        'json.status == "UP"',
        "latency < 150ms",
    ]
    assert monitor(document, "back-end")["expect"] == ["status == 200", "cert.expires_in > 48h"]
    dns = monitor(document, "example-dns-query")
    assert (dns["kind"], dns["host"], dns["record"], dns["server"]) == (
        "dns",
        "example.com",
        "A",
        "8.8.8.8",
    )
    assert dns["expect"] == ['answers contains "93.184.216.34"', 'rcode == "NOERROR"']
    components = {c["id"]: c for c in document["components"]}
    assert components["front-end"]["group"] == "core"
    assert components["nas"]["group"] == "internal"
    assert monitor(document, "front-end")["interval"] == "5m"
    ids = {m["id"] for m in document["monitors"]}
    assert "icmp-ping" not in ids
    assert "price-aggregation-service" not in ids
    lines = report.splitlines()

    def row(item: str) -> str:
        return next(line for line in lines if item in line)

    assert "left out" in row("endpoint icmp-ping ")
    assert "ICMP" in row("endpoint icmp-ping ")
    assert "left out" in row("[DOMAIN_EXPIRATION] > 720h")
    assert "gRPC" in row("endpoint price-aggregation-service ")
    assert "approximated" in row("[BODY] == 93.184.216.34")
    assert "none maps" in row("check-domain-expiration: conditions")


def test_tcp_endpoints_connect_and_body_functions_map() -> None:
    document, _ = imported("tcp.yaml")
    redis = monitor(document, "redis")
    assert (redis["kind"], redis["host"], redis["port"], redis["interval"]) == (
        "tcp",
        "127.0.0.1",
        6379,
        "30s",
    )
    assert "expect" not in redis  # [CONNECTED] == true is what a tcp check does
    document, _ = imported("readme-examples.yaml")
    assert monitor(document, "with-body-patterns")["expect"] == [
        "status in [200, 429]",
        'body matches "^.*<h1>Example Domain</h1>.*$"',
        "len(json.data) > 0",
        "json.errors not exists",
        "json.data[0].id == 1",
    ]


def test_alerting_providers_become_urls_that_apprise_accepts() -> None:
    document, report = imported("readme-examples.yaml")
    channels = {c["id"]: c for c in document["notifications"]["channels"]}
    assert set(channels) == {"telegram", "pagerduty", "email", "custom"}
    for channel in channels.values():
        if not channel["url"].startswith("webhook+"):
            assert apprise_takes(channel["url"]), channel["url"]
        assert channel["monitors"] == ["website"]  # only what alerted through it
    assert channels["telegram"]["url"].startswith("tgram://")
    assert channels["email"]["url"].startswith("mailtos://")
    assert channels["custom"]["url"] == (
        "webhook+https://hooks.slack.com/services/**********/**********/**********"
    )
    assert channels["telegram"]["events"] == ["monitor.down", "monitor.up"]  # send-on-resolved
    assert monitor(document, "website")["confirm"] == 3  # the smallest failure-threshold
    teams = next(line for line in report.splitlines() if "alerting.teams" in line)
    assert "left out" in teams
    assert "workflows://" in teams
    assert "left out" in next(line for line in report.splitlines() if "starttls-smtp" in line)

    document, report = imported("alerting.yaml")
    discord = document["notifications"]["channels"]
    assert [c["id"] for c in discord] == ["discord"]
    assert apprise_takes(discord[0]["url"])
    # The example's Slack webhook has a placeholder token that Apprise (rightly) refuses.
    slack = next(line for line in report.splitlines() if "alerting.slack" in line)
    assert "left out" in slack
    assert "Apprise refuses" in slack


def test_external_endpoints_become_heartbeats_and_maintenance_recurs() -> None:
    document, report = imported("readme-examples.yaml")
    beat = monitor(document, "ext-ep-test")
    assert (beat["kind"], beat["period"]) == ("heartbeat", "24h")
    assert "token" not in beat  # "potato" is too weak for uptally: one is generated
    row = next(
        line for line in report.splitlines() if "external endpoint core/ext-ep-test " in line
    )
    assert "approximated" in row
    assert "/ping/<token>" in row
    assert document["site"] == {"timezone": "Europe/Amsterdam"}
    [window] = document["maintenance"]
    assert (window["rrule"], window["duration"]) == ("FREQ=WEEKLY;BYDAY=MO,TH", "1h")
    assert window["start"].endswith("T23:00")


def test_what_is_not_a_gatus_config_is_refused_with_why(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("monitors: []\n")
    code, out, err = run(str(tmp_path / "other.yaml"))
    assert (code, out) == (2, "")
    assert "no endpoints or external-endpoints" in err
    (tmp_path / "broken.yaml").write_text("endpoints: [\n")
    code, _, err = run(str(tmp_path / "broken.yaml"))
    assert code == 2
    assert "cannot read it as YAML" in err


@pytest.fixture
def site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPTALLY_DATA_DIR", raising=False)
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("UPTALLY_DATABASE_URL", db_url)
    else:
        monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    return tmp_path


async def stored(db_url: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            loaded = await load(conn)
            entries = await list_entries(conn, AuditFilter(limit=100))
    finally:
        await db.close()
    return loaded.objects, sorted((e.action, e.target) for e in entries)


def test_apply_creates_the_monitors_and_components_through_config_apply(
    site: Path, db_url: str
) -> None:
    code, out, err = run(str(DATA / "root-config.yaml"), "--apply", "--data-dir", ".")
    assert code == 0, err
    assert "applied 12 changes (12 to create)" in out
    objects, audit = asyncio.run(stored(db_url))
    assert set(objects["monitor"]) == {
        "front-end",
        "back-end",
        "monitoring",
        "nas",
        "example-dns-query",
        "check-domain-expiration",
    }
    front, nas = objects["monitor"]["front-end"], objects["component"]["nas"]
    assert isinstance(front, HttpMonitor)
    assert isinstance(nas, Component)
    assert [c.text for c in front.expect] == [
        "status == 200",
        'json.status == "UP"',
        "latency < 150ms",
    ]
    assert nas.group == "internal"
    assert ("monitor.created", "monitor:front-end") in audit
    code, out, _ = run(str(DATA / "root-config.yaml"), "--apply", "--data-dir", ".")
    assert (code, out.strip()) == (0, "no changes")
