"""The contract's example config and every file in examples/ are valid configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from uptally.config import load_config, parse_config
from uptally.config.schema import (
    HeartbeatMonitor,
    HttpMonitor,
    JsonRpcMonitor,
    TcpMonitor,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The YAML block of CONTRACT.md ("Config (YAML)"), word for word, except for the two
# placeholders: `token: 8c2f…` and `url: slack://…` are replaced by values of their form.
CONTRACT_EXAMPLE = """\
site:
  title: Example status
  timezone: Europe/Berlin
locations:                       # remote probes; `local` always exists
  - name: eu-west
    token_env: PROBE_EU_WEST_TOKEN
monitors:
  - id: api
    name: Public API
    kind: http                   # http | tcp | jsonrpc | dns | scenario | heartbeat | metric
    url: https://api.example.com/actuator/health
    interval: 60s
    retry_interval: 10s
    timeout: 10s
    confirm: 2                   # consecutive failures at a location
    locations: [local, eu-west]  # default [local]
    consensus: all               # all | any | {quorum: N}
    expect:                      # all must hold
      - status == 200
      - latency < 200ms
      - json.status == "UP"
      - body contains "UP"
      - cert.expires_in > 14d
  - id: mcp
    kind: jsonrpc
    url: https://api.example.com/v1/mcp
    method: initialize
    params: {protocolVersion: "2025-06-18", capabilities: {}, clientInfo: {name: uptally, version: "1"}}
    timeout: 1s
  - id: gateway
    kind: tcp
    host: gw.example.com
    port: 20100
    send: "ping\\n"
    expect: ["reply contains pong"]
  - id: backup
    kind: heartbeat
    period: 24h                  # or schedule: "0 3 * * *" (cron, site timezone)
    grace: 1h
    token: 8c2f0a9b1d3e4f56                 # optional; generated and shown by the API if absent
components:
  - id: api
    name: API
    group: Platform
    monitors: [api, mcp]
maintenance: []                  # may also be created through the API
sla:
  policies:
    - id: scale
      target: 99.9
      period: month
      components: [api]
      credits:                   # uptime below the smallest matching `below` earns its credit %
        - {below: 99.9, credit: 10}
        - {below: 99.0, credit: 25}
        - {below: 95.0, credit: 70}
notifications:
  channels:
    - id: ops
      url: slack://T000/B000/XXXX             # any Apprise URL, or webhook+https://…
      events: [monitor.down, monitor.up, incident.*]
"""  # noqa: E501


def test_the_contract_example_is_a_valid_config() -> None:
    config = parse_config(CONTRACT_EXAMPLE, "CONTRACT.md")
    assert config.site.title == "Example status"
    assert config.site.timezone == "Europe/Berlin"
    assert config.location_names == ["local", "eu-west"]
    assert [m.id for m in config.monitors] == ["api", "mcp", "gateway", "backup"]
    assert [c.id for c in config.components] == ["api"]
    assert config.maintenance == []


def test_the_contract_example_reads_each_monitor_as_written() -> None:
    api, mcp, gateway, backup = parse_config(CONTRACT_EXAMPLE).monitors
    assert isinstance(api, HttpMonitor)
    assert (api.interval, api.retry_interval, api.timeout, api.confirm) == (
        60_000,
        10_000,
        10_000,
        2,
    )
    assert api.locations == ["local", "eu-west"]
    assert api.required_locations == 2
    assert [c.text for c in api.expect] == [
        "status == 200",
        "latency < 200ms",
        'json.status == "UP"',
        'body contains "UP"',
        "cert.expires_in > 14d",
    ]
    assert isinstance(mcp, JsonRpcMonitor)
    assert mcp.method == "initialize"
    assert mcp.timeout == 1_000
    assert mcp.params == {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "uptally", "version": "1"},
    }
    assert isinstance(gateway, TcpMonitor)
    assert gateway.send == "ping\n"
    assert [c.value for c in gateway.expect] == ["pong"]
    assert isinstance(backup, HeartbeatMonitor)
    assert (backup.period, backup.grace_ms) == (86_400_000, 3_600_000)


def test_the_contract_example_reads_sla_and_notifications() -> None:
    config = parse_config(CONTRACT_EXAMPLE)
    policy = config.sla.policies[0]
    assert (policy.id, policy.target, policy.period, policy.components) == (
        "scale",
        99.9,
        "month",
        ["api"],
    )
    assert [(tier.below, tier.credit) for tier in policy.credits] == [
        (99.9, 10),
        (99.0, 25),
        (95.0, 70),
    ]
    channel = config.notifications.channels[0]
    assert channel.events == ["monitor.down", "monitor.up", "incident.*"]


def test_the_contract_example_with_a_schedule_instead_of_a_period_is_valid() -> None:
    text = CONTRACT_EXAMPLE.replace("period: 24h   ", 'schedule: "0 3 * * *"')
    backup = parse_config(text).monitors[3]
    assert isinstance(backup, HeartbeatMonitor)
    assert backup.schedule == "0 3 * * *"


def test_the_contract_example_with_a_quorum_and_a_webhook_is_valid() -> None:
    text = CONTRACT_EXAMPLE.replace("consensus: all  ", "consensus: {quorum: 1}").replace(
        "url: slack://T000/B000/XXXX", "url: webhook+https://hooks.example.com/x\n      secret: s"
    )
    config = parse_config(text)
    assert config.notifications.channels[0].secret == "s"
    api = config.monitors[0]
    assert isinstance(api, HttpMonitor)
    assert api.required_locations == 1


EXAMPLE_FILES = sorted([*EXAMPLES.glob("*.yaml"), *EXAMPLES.glob("*.yml")])


def test_there_are_examples_to_check() -> None:
    assert EXAMPLES / "demo.yaml" in EXAMPLE_FILES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_every_example_file_is_a_valid_config(path: Path) -> None:
    config = load_config(path)
    assert config.monitors
