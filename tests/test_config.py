"""`uptally validate`: every problem in a config is reported as FILE:LINE: message."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uptally.config import Config, ConfigError, ConfigIssue, load_config, parse_config
from uptally.config.schema import (
    HeartbeatMonitor,
    HttpMonitor,
    MetricMonitor,
    Quorum,
    ScenarioMonitor,
    TcpMonitor,
)

FILE = "uptally.yaml"


def errors(text: str) -> list[str]:
    """The lines `uptally validate` would print for this config (which must be invalid)."""
    with pytest.raises(ConfigError) as raised:
        parse_config(text, FILE)
    return raised.value.lines()


def the_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def valid(text: str) -> Config:
    return parse_config(text, FILE)


# -- the shape of the report -------------------------------------------------------------------


def test_an_error_names_the_file_the_line_and_the_path() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    colour: blue
"""
    with pytest.raises(ConfigError) as raised:
        parse_config(text, FILE)
    error = raised.value
    assert error.file == FILE
    assert error.issues == [ConfigIssue(5, "monitors[0].colour", "unknown key 'colour'")]
    assert error.lines() == ["uptally.yaml:5: monitors[0].colour: unknown key 'colour'"]
    assert str(error) == "uptally.yaml:5: monitors[0].colour: unknown key 'colour'"


def test_errors_are_listed_in_the_order_of_their_lines() -> None:
    text = """\
components:
  - id: web
    monitors: [nowhere]
monitors:
  - id: api
    kind: http
    url: https://example.com
    interval: soon
site:
  tint: red
"""
    assert errors(text) == [
        "uptally.yaml:3: components[0].monitors[0]: unknown monitor 'nowhere'",
        "uptally.yaml:8: monitors[0].interval: invalid duration 'soon': "
        "use a number with ms, s, m, h or d",
        "uptally.yaml:10: site.tint: unknown key 'tint'",
    ]


def test_structure_and_reference_errors_are_all_reported_together() -> None:
    text = """\
locations:
  - name: eu-west
monitors:
  - id: api
    kind: http
    url: https://example.com
    locations: [local, mars]
    expect:
      - status = 200
  - id: api
    kind: tcp
    host: example.com
  - id: job
    kind: heartbeat
components:
  - id: platform
    monitors: [api, ghost]
sla:
  policies:
    - id: gold
      target: 101
      components: [platform, nothing]
"""
    assert errors(text) == [
        "uptally.yaml:7: monitors[0].locations[1]: unknown location 'mars'",
        "uptally.yaml:9: monitors[0].expect[0]: use '==' rather than '=' after 'status' "
        "in 'status = 200'",
        "uptally.yaml:10: monitors[1].id: duplicate id 'api' (first used in monitors[0])",
        "uptally.yaml:10: monitors[1].port: missing required key 'port' for a tcp monitor",
        "uptally.yaml:13: monitors[2]: a heartbeat needs exactly one of period or schedule",
        "uptally.yaml:17: components[0].monitors[1]: unknown monitor 'ghost'",
        "uptally.yaml:21: sla.policies[0].target: Input should be less than or equal to 100",
        "uptally.yaml:22: sla.policies[0].components[1]: unknown component 'nothing'",
    ]


def test_a_valid_config_gives_the_validated_model() -> None:
    config = valid("""\
site:
  title: Ours
monitors:
  - id: api
    kind: http
    url: https://example.com
""")
    assert isinstance(config, Config)
    assert config.site.title == "Ours"
    assert config.monitor("api") is not None
    assert config.monitor("nope") is None


def test_an_empty_file_is_a_valid_config_with_defaults() -> None:
    config = valid("")
    assert config.monitors == []
    assert config.site.title == "Status"
    assert config.site.timezone == "UTC"
    assert config.location_names == ["local"]


def test_a_config_that_is_not_a_mapping_is_refused_on_line_one() -> None:
    assert the_error("- a\n- b\n") == "uptally.yaml:1: the config must be a mapping of sections"


def test_the_file_name_defaults_to_a_placeholder() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("oops: 1\n")
    assert raised.value.lines() == ["<config>:1: oops: unknown key 'oops'"]


# -- reading files -----------------------------------------------------------------------------


def test_load_config_reads_and_validates_a_file(tmp_path: Path) -> None:
    path = tmp_path / "uptally.yaml"
    path.write_text("monitors:\n  - id: api\n    kind: http\n    url: https://x.test\n")
    assert load_config(path).monitors[0].id == "api"


def test_load_config_names_the_file_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("site:\n  tint: red\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.lines() == [f"{path}:2: site.tint: unknown key 'tint'"]


def test_a_missing_file_is_reported_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.lines() == [f"{path}:0: cannot read the file: No such file or directory"]


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("site:\n  title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.lines() == [f"{path}:0: the file is not UTF-8 text"]


# -- YAML --------------------------------------------------------------------------------------


def test_it_reports_a_yaml_syntax_error_on_its_line() -> None:
    text = """\
site:
  title: Example
    subtitle: broken indent
"""
    assert the_error(text) == (
        "uptally.yaml:3: YAML syntax error: mapping values are not allowed in this context"
    )


def test_it_reports_an_unclosed_quote_where_it_was_opened() -> None:
    text = """\
site:
  title: "Example
monitors: []
"""
    assert the_error(text).startswith("uptally.yaml:2: YAML syntax error: ")


def test_it_reports_an_unclosed_bracket_where_it_was_opened() -> None:
    text = """\
site:
  title: x
monitors: [a, b
components: []
"""
    assert the_error(text).startswith("uptally.yaml:3: YAML syntax error: did not find")


def test_it_reports_a_tab_in_the_indentation() -> None:
    assert the_error("site:\n\ttitle: x\n").startswith("uptally.yaml:2: YAML syntax error: ")


def test_it_reports_a_control_character_on_its_line() -> None:
    assert the_error("site:\n  title: a\x1fb\n") == (
        "uptally.yaml:2: YAML error: control characters are not allowed (U+001F)"
    )


def test_it_reports_a_second_document_as_a_syntax_error() -> None:
    assert the_error("site: {}\n---\nsite: {}\n").startswith("uptally.yaml:2: YAML syntax error")


def test_it_reports_a_duplicate_key_on_the_second_occurrence() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://one.example
    url: https://two.example
"""
    assert the_error(text) == "uptally.yaml:5: monitors[0].url: duplicate key 'url'"


def test_a_duplicate_key_does_not_hide_other_errors() -> None:
    text = """\
site:
  title: One
  title: Two
  tint: red
"""
    assert errors(text) == [
        "uptally.yaml:3: site.title: duplicate key 'title'",
        "uptally.yaml:4: site.tint: unknown key 'tint'",
    ]


def test_a_duplicate_top_level_section_is_reported() -> None:
    assert the_error("site: {title: a}\nsite: {title: b}\n") == (
        "uptally.yaml:2: site: duplicate key 'site'"
    )


def test_anchors_and_merge_keys_share_settings_between_monitors() -> None:
    config = valid("""\
monitors:
  - &web
    id: www
    kind: http
    url: https://www.example.com
    interval: 30s
    expect: [status == 200]
  - <<: *web
    id: shop
    url: https://shop.example.com
  - <<: [*web]
    id: blog
    interval: 2m
""")
    _, shop, blog = config.monitors
    assert isinstance(shop, HttpMonitor)
    assert isinstance(blog, HttpMonitor)
    assert (shop.id, shop.url, shop.interval) == ("shop", "https://shop.example.com", 30_000)
    assert (blog.id, blog.url, blog.interval) == ("blog", "https://www.example.com", 120_000)
    assert [c.text for c in shop.expect] == ["status == 200"]


def test_a_merged_key_may_be_overridden_without_a_duplicate_key_error() -> None:
    config = valid("""\
monitors:
  - &base
    id: a
    kind: tcp
    host: a.example
    port: 22
  - <<: *base
    id: b
    port: 2222
""")
    monitor = config.monitors[1]
    assert isinstance(monitor, TcpMonitor)
    assert (monitor.id, monitor.host, monitor.port) == ("b", "a.example", 2222)


def test_an_error_in_a_merged_value_points_at_where_it_is_written() -> None:
    text = """\
monitors:
  - &base
    id: a
    kind: http
    url: https://a.example
    interval: 5s
  - <<: *base
    id: b
    timeout: 1ms
"""
    assert errors(text) == [
        "uptally.yaml:9: monitors[1].timeout: must be at least 100ms",
    ]


def test_merging_something_that_is_not_a_mapping_is_refused() -> None:
    assert the_error("site:\n  <<: 5\n") == (
        "uptally.yaml:2: site: '<<' merges a mapping (such as *base) or a list of them"
    )


def test_an_alias_that_contains_itself_is_refused_instead_of_looping() -> None:
    assert "an alias refers to itself" in errors("monitors: &m\n  - <<: *m\n")[0]


def test_an_alias_bomb_is_refused_instead_of_eating_memory() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for name, previous in zip("bcdefg", "abcdef", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    assert "the YAML expands to more than" in the_error("\n".join(lines) + "\n")


def test_keys_are_names_even_when_yaml_would_read_them_as_booleans() -> None:
    assert the_error("site:\n  on: x\n") == "uptally.yaml:2: site.on: unknown key 'on'"


def test_a_key_must_be_a_plain_name() -> None:
    assert the_error("? [a, b]\n: 1\n") == "uptally.yaml:1: keys must be plain names"


def test_a_value_yaml_cannot_construct_is_reported_once() -> None:
    assert the_error("site:\n  title: !custom x\n") == (
        "uptally.yaml:2: site.title: bad value: could not determine a constructor "
        "for the tag '!custom'"
    )


# -- unknown keys, types and values ------------------------------------------------------------


def test_it_reports_an_unknown_key_on_its_own_line() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com

    retries: 3
"""
    assert the_error(text) == "uptally.yaml:6: monitors[0].retries: unknown key 'retries'"


def test_it_reports_an_unknown_section() -> None:
    assert the_error("site: {}\nalerts: []\n") == "uptally.yaml:2: alerts: unknown key 'alerts'"


def test_it_reports_a_key_that_belongs_to_another_kind() -> None:
    text = """\
monitors:
  - id: nightly
    kind: heartbeat
    period: 24h
    interval: 1m
"""
    assert the_error(text) == "uptally.yaml:5: monitors[0].interval: unknown key 'interval'"


def test_it_reports_a_bad_duration_with_the_accepted_units() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    timeout: 5 parsecs
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].timeout: invalid duration '5 parsecs': "
        "use a number with ms, s, m, h or d"
    )


def test_it_reports_an_infinite_duration_as_an_error_not_a_crash() -> None:
    text = """\
retention:
  results: .inf
"""
    assert the_error(text) == (
        "uptally.yaml:2: retention.results: invalid duration inf: "
        "use a number with ms, s, m, h or d"
    )


def test_it_reports_an_interval_below_100ms() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    interval: 50ms
"""
    assert the_error(text) == "uptally.yaml:5: monitors[0].interval: must be at least 100ms"


def test_it_accepts_durations_in_every_unit_and_combination() -> None:
    config = valid("""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    interval: 1h30m
    retry_interval: 500ms
    timeout: 2s
  - id: job
    kind: heartbeat
    period: 1d
    grace: 90
""")
    api, job = config.monitors
    assert isinstance(api, HttpMonitor)
    assert (api.interval, api.retry_interval, api.timeout) == (5_400_000, 500, 2_000)
    assert isinstance(job, HeartbeatMonitor)
    assert (job.period, job.grace) == (86_400_000, 90_000)


def test_it_reports_a_bad_size() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    max_body: 1.5MiB
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].max_body: invalid size '1.5MiB': use bytes or KiB, MiB, KB, MB"
    )


def test_it_asks_for_quotes_when_text_looks_like_a_number_or_date() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    name: 2025-01-01
    description: 12
"""
    assert errors(text) == [
        "uptally.yaml:5: monitors[0].name: expected text, not a date (put it in quotes)",
        "uptally.yaml:6: monitors[0].description: expected text, not a number (put it in quotes)",
    ]


def test_it_reports_a_section_of_the_wrong_shape() -> None:
    assert errors("monitors: 3\nsite: [a]\n") == [
        "uptally.yaml:1: monitors: expected a list, not a number",
        "uptally.yaml:2: site: expected a mapping (key: value), not a list",
    ]


def test_it_reports_an_id_that_is_not_a_name() -> None:
    text = """\
components:
  - id: "web site"
"""
    assert the_error(text) == (
        "uptally.yaml:2: components[0].id: invalid value 'web site': an id is 1 to 64 letters, "
        "digits, '_', '.' or '-', the first a letter or digit"
    )


def test_it_reports_a_value_outside_its_choices() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    method: FETCH
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].method: Input should be 'GET', 'HEAD', 'POST', 'PUT', "
        "'PATCH', 'DELETE' or 'OPTIONS'"
    )


def test_it_reports_an_unknown_timezone() -> None:
    assert the_error("site:\n  timezone: Mars/Olympus\n") == (
        "uptally.yaml:2: site.timezone: unknown timezone 'Mars/Olympus' "
        "(use an IANA name such as Europe/Berlin)"
    )


def test_it_reports_a_maintenance_window_that_ends_before_it_starts() -> None:
    text = """\
maintenance:
  - title: Upgrade
    start: 2026-01-10T10:00:00Z
    end: 2026-01-10T09:00:00Z
"""
    assert the_error(text) == "uptally.yaml:2: maintenance[0]: end must be after start"


# -- kinds -------------------------------------------------------------------------------------


def test_it_reports_a_missing_kind_on_the_monitor() -> None:
    text = """\
monitors:
  - id: api
    url: https://example.com
"""
    assert the_error(text) == "uptally.yaml:2: monitors[0]: missing required key 'kind'"


def test_it_reports_an_unknown_kind_on_the_kind_line() -> None:
    text = """\
monitors:
  - id: mail
    kind: smtp
"""
    assert the_error(text) == (
        "uptally.yaml:3: monitors[0]: unknown kind 'smtp'; expected one of 'http', 'tcp', "
        "'jsonrpc', 'dns', 'scenario', 'heartbeat', 'metric', 'external'"
    )


@pytest.mark.parametrize(
    ("monitor", "missing"),
    [
        ("kind: http", "missing required key 'url' for an http monitor"),
        ("kind: tcp\n    host: gw.example", "missing required key 'port' for a tcp monitor"),
        ("kind: jsonrpc\n    url: https://x.test", "missing required key 'method' for a jsonrpc"),
        ("kind: dns", "missing required key 'host' for a dns monitor"),
        ("kind: scenario", "missing required key 'steps' for a scenario monitor"),
        ("kind: metric\n    url: https://x.test\n    expect: [value > 1]", "key 'source' for a"),
    ],
)
def test_it_reports_fields_a_kind_needs_on_the_monitor(monitor: str, missing: str) -> None:
    text = f"monitors:\n  - id: thing\n    {monitor}\n"
    line = the_error(text)
    assert line.startswith("uptally.yaml:2: monitors[0].")
    assert missing in line


def test_it_reports_fields_a_scenario_step_needs_on_the_step() -> None:
    text = """\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: http
        url: https://x.test
      - kind: tcp
        host: gw.example
"""
    assert the_error(text) == (
        "uptally.yaml:7: monitors[0].steps[1].port: missing required key 'port' for a tcp step"
    )


def test_it_reports_a_step_kind_that_cannot_be_a_step() -> None:
    text = """\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: heartbeat
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].steps[0]: unknown kind 'heartbeat'; "
        "expected one of 'http', 'tcp', 'jsonrpc', 'dns'"
    )


def test_it_accepts_a_scenario_whose_later_steps_use_what_earlier_ones_captured() -> None:
    config = valid("""\
monitors:
  - id: login
    kind: scenario
    steps:
      - kind: http
        url: https://auth.example/login
        method: POST
        json: {user: probe}
        capture:
          token: json.token
          base: json.links.api
      - kind: http
        url: ${base}/me
        headers:
          Authorization: Bearer ${token}
        expect:
          - json.session == "${token}"
          - header.x-user matches "^${token}-\\d+$"
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, ScenarioMonitor)
    assert monitor.timeout == 30_000
    assert [step.kind for step in monitor.steps] == ["http", "http"]


def test_it_reports_a_variable_no_earlier_step_captures() -> None:
    text = """\
monitors:
  - id: login
    kind: scenario
    steps:
      - kind: http
        url: https://auth.example/login
        capture: {token: json.token}
      - kind: http
        url: https://auth.example/me
        headers:
          Authorization: Bearer ${tokn}
"""
    assert the_error(text) == (
        "uptally.yaml:11: monitors[0].steps[1].headers.Authorization: "
        "unknown variable ${tokn}: no earlier step captures it"
    )


def test_it_reports_a_variable_a_step_uses_before_capturing_it() -> None:
    text = """\
monitors:
  - id: login
    kind: scenario
    steps:
      - kind: http
        url: https://auth.example/${token}
        capture: {token: json.token}
"""
    assert the_error(text) == (
        "uptally.yaml:6: monitors[0].steps[0].url: "
        "unknown variable ${token}: no earlier step captures it"
    )


def test_a_tcp_conversation_may_use_what_an_earlier_exchange_captured() -> None:
    text = """\
monitors:
  - id: chat
    kind: tcp
    host: chat.example
    port: 7000
    conversation:
      - send: "HELLO\\n"
        capture: {session: reply matches "session=(\\w+)"}
      - send: "JOIN ${session}\\n"
        expect: ["reply contains ${session}", "reply contains ${later}"]
        capture: {later: reply}
"""
    assert the_error(text) == (
        "uptally.yaml:10: monitors[0].conversation[1].expect[1]: "
        "unknown variable ${later}: no earlier step captures it"
    )


def test_a_later_step_may_use_what_a_tcp_conversation_captured() -> None:
    config = valid("""\
monitors:
  - id: chat
    kind: scenario
    steps:
      - kind: tcp
        host: chat.example
        port: 7000
        conversation:
          - send: "SEND hi\\n"
            capture: {n: reply matches "count=(\\d+)"}
      - kind: http
        url: https://chat.example/api/messages/count
        expect: ["json.count == ${n}"]
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, ScenarioMonitor)
    assert len(monitor.steps) == 2


def test_a_variable_in_a_plain_monitor_condition_can_never_hold() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    expect:
      - body contains ${x}
"""
    assert the_error(text) == (
        "uptally.yaml:6: monitors[0].expect[0]: unknown variable ${x}: "
        "only scenario steps and tcp conversations capture"
    )


def test_it_reports_an_error_in_a_step_capture_on_its_line() -> None:
    text = """\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: http
        url: https://x.test
        capture:
          token: json.token
          broken: json.data.
          count: body matches "("
          other: reply
"""
    assert errors(text) == [
        "uptally.yaml:9: monitors[0].steps[0].capture.broken: "
        "unexpected '.' after 'json.data' in 'json.data.'",
        "uptally.yaml:10: monitors[0].steps[0].capture.count: invalid regular expression '(' "
        "(missing ), unterminated subpattern at position 0) in 'body matches \"(\"'",
        "uptally.yaml:11: monitors[0].steps[0].capture.other: unknown field 'reply' here; "
        "this check can test: body, cert, header, json, latency, status",
    ]


def test_it_reports_a_capture_name_that_cannot_be_used_as_a_variable() -> None:
    text = """\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: http
        url: https://x.test
        capture:
          api-token: json.token
"""
    assert the_error(text) == (
        "uptally.yaml:8: monitors[0].steps[0].capture.api-token: invalid value 'api-token': "
        "a variable name is letters, digits and '_', the first not a digit"
    )


def test_captured_regular_expressions_are_compiled_at_load_time() -> None:
    config = valid("""\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: tcp
        host: gw.example
        port: 25
        capture:
          code: reply matches "^(\\d{3})"
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, ScenarioMonitor)
    step = monitor.steps[0]
    pattern = step.capture["code"].pattern
    assert pattern is not None
    assert pattern.pattern == r"^(\d{3})"


# -- conditions --------------------------------------------------------------------------------


def test_it_reports_an_invalid_condition_on_its_line() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    expect:
      - status == 200
      - status in 200
"""
    assert the_error(text) == (
        "uptally.yaml:7: monitors[0].expect[1]: 'in' needs a list such as [200, 204] "
        "in 'status in 200'"
    )


def test_it_reports_a_condition_about_something_the_kind_cannot_see() -> None:
    text = """\
monitors:
  - id: gw
    kind: tcp
    host: gw.example
    port: 1
    expect: ["status == 200"]
"""
    assert the_error(text) == (
        "uptally.yaml:6: monitors[0].expect[0]: unknown field 'status' here; "
        "this check can test: cert, latency, reply"
    )


def test_it_reports_expect_given_as_one_string() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    expect: status == 200
"""
    assert the_error(text) == "uptally.yaml:5: monitors[0].expect: expected a list, not text"


def test_it_reports_a_condition_that_is_not_text() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    expect:
      - {status: 200}
"""
    assert the_error(text) == (
        "uptally.yaml:6: monitors[0].expect[0]: a condition is a string such as "
        "'status == 200', not {'status': 200}"
    )


def test_it_reports_cert_expiry_compared_with_a_plain_number() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    expect: ["cert.expires_in > 14"]
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].expect[0]: compare cert.expires_in with a duration "
        "such as 14d: 'cert.expires_in > 14'"
    )


# -- locations and consensus -------------------------------------------------------------------


def test_it_refuses_local_declared_as_a_location() -> None:
    text = """\
locations:
  - name: eu-west
  - name: local
"""
    assert the_error(text) == (
        "uptally.yaml:3: locations[1].name: 'local' is the embedded probe and always exists; "
        "do not declare it"
    )


def test_it_reports_an_unknown_location() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    locations:
      - local
      - mars
"""
    assert the_error(text) == "uptally.yaml:7: monitors[0].locations[1]: unknown location 'mars'"


def test_it_reports_a_location_listed_twice() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    locations: [local, local]
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].locations[1]: location 'local' is listed twice"
    )


def test_it_reports_duplicate_location_names() -> None:
    text = """\
locations:
  - name: eu
  - name: eu
"""
    assert the_error(text) == (
        "uptally.yaml:3: locations[1].name: duplicate name 'eu' (first used in locations[0])"
    )


def test_it_reports_a_quorum_larger_than_the_locations() -> None:
    text = """\
locations:
  - name: eu
monitors:
  - id: api
    kind: http
    url: https://example.com
    locations: [local, eu]
    consensus:
      quorum: 3
"""
    assert the_error(text) == (
        "uptally.yaml:9: monitors[0].consensus.quorum: quorum 3 is more than the 2 location(s) "
        "of this monitor"
    )


def test_a_quorum_counts_the_default_location() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    consensus: {quorum: 2}
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[0].consensus.quorum: quorum 2 is more than the 1 location(s) "
        "of this monitor"
    )


def test_it_accepts_every_consensus() -> None:
    config = valid("""\
locations:
  - name: eu
  - name: us
monitors:
  - {id: a, kind: http, url: "https://a.test", locations: [local, eu, us], consensus: all}
  - {id: b, kind: http, url: "https://b.test", locations: [local, eu, us], consensus: any}
  - {id: c, kind: http, url: "https://c.test", locations: [local, eu, us], consensus: {quorum: 2}}
""")
    a, b, c = config.monitors
    assert isinstance(a, HttpMonitor)
    assert isinstance(b, HttpMonitor)
    assert isinstance(c, HttpMonitor)
    assert c.consensus == Quorum(quorum=2)
    assert [m.required_locations for m in (a, b, c)] == [3, 1, 2]


@pytest.mark.parametrize(
    ("consensus", "message"),
    [
        ("most", "monitors[0].consensus: consensus is all, any or {quorum: N}"),
        ("{quorum: 0}", "monitors[0].consensus.quorum: Input should be greater than or equal to 1"),
        ("{quorum: 1, of: 2}", "monitors[0].consensus.of: unknown key 'of'"),
        ("[all]", "monitors[0].consensus: consensus is all, any or {quorum: N}"),
        ("{}", "monitors[0].consensus.quorum: missing required key 'quorum'"),
    ],
)
def test_it_reports_a_bad_consensus_once(consensus: str, message: str) -> None:
    text = f"""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    consensus: {consensus}
"""
    assert the_error(text) == f"uptally.yaml:5: {message}"


# -- duplicates and references -----------------------------------------------------------------


def test_it_reports_duplicate_monitor_ids_at_the_second() -> None:
    text = """\
monitors:
  - id: api
    kind: heartbeat
    period: 1h
  - id: api
    kind: heartbeat
    period: 2h
"""
    assert the_error(text) == (
        "uptally.yaml:5: monitors[1].id: duplicate id 'api' (first used in monitors[0])"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "components:\n  - id: web\n  - id: web\n",
            "uptally.yaml:3: components[1].id: duplicate id 'web' (first used in components[0])",
        ),
        (
            "sla:\n  policies:\n    - {id: gold, target: 99}\n    - {id: gold, target: 98}\n",
            "uptally.yaml:4: sla.policies[1].id: duplicate id 'gold' (first used in policies[0])",
        ),
        (
            "notifications:\n  channels:\n    - {id: ops, url: 'mailto://a'}\n"
            "    - {id: ops, url: 'mailto://b'}\n",
            "uptally.yaml:4: notifications.channels[1].id: duplicate id 'ops' "
            "(first used in channels[0])",
        ),
        (
            "maintenance:\n"
            "  - {id: m, title: a, start: 2026-01-01T00:00:00Z, end: 2026-01-01T01:00:00Z}\n"
            "  - {id: m, title: b, start: 2026-01-02T00:00:00Z, end: 2026-01-02T01:00:00Z}\n",
            "uptally.yaml:3: maintenance[1].id: duplicate id 'm' (first used in maintenance[0])",
        ),
    ],
)
def test_it_reports_duplicate_ids_in_every_section(text: str, message: str) -> None:
    assert the_error(text) == message


def test_it_reports_a_heartbeat_token_used_twice() -> None:
    text = """\
monitors:
  - {id: a, kind: heartbeat, period: 1h, token: shared-token-1}
  - {id: b, kind: heartbeat, period: 1h, token: shared-token-1}
"""
    assert the_error(text) == "uptally.yaml:3: monitors[1].token: token already used by monitors[0]"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "components:\n  - id: web\n    monitors: [ghost]\n",
            "uptally.yaml:3: components[0].monitors[0]: unknown monitor 'ghost'",
        ),
        (
            "sla:\n  policies:\n    - id: gold\n      target: 99.9\n      components: [ghost]\n",
            "uptally.yaml:5: sla.policies[0].components[0]: unknown component 'ghost'",
        ),
        (
            "maintenance:\n  - title: Upgrade\n    start: 2026-01-01T00:00:00Z\n"
            "    end: 2026-01-01T01:00:00Z\n    monitors: [ghost]\n",
            "uptally.yaml:5: maintenance[0].monitors[0]: unknown monitor 'ghost'",
        ),
        (
            "maintenance:\n  - title: Upgrade\n    start: 2026-01-01T00:00:00Z\n"
            "    end: 2026-01-01T01:00:00Z\n    components: [ghost]\n",
            "uptally.yaml:5: maintenance[0].components[0]: unknown component 'ghost'",
        ),
        (
            "notifications:\n  channels:\n    - id: ops\n      url: mailto://ops@example.com\n"
            "      monitors: [ghost]\n",
            "uptally.yaml:5: notifications.channels[0].monitors[0]: unknown monitor 'ghost'",
        ),
        (
            "notifications:\n  channels:\n    - id: ops\n      url: mailto://ops@example.com\n"
            "      components: [ghost]\n",
            "uptally.yaml:5: notifications.channels[0].components[0]: unknown component 'ghost'",
        ),
    ],
)
def test_it_reports_references_to_unknown_monitors_and_components(
    section: str, message: str
) -> None:
    assert the_error(section) == message


# -- heartbeats --------------------------------------------------------------------------------


def test_a_heartbeat_needs_a_period_or_a_schedule() -> None:
    text = """\
monitors:
  - id: nightly
    kind: heartbeat
    grace: 1h
"""
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0]: a heartbeat needs exactly one of period or schedule"
    )


def test_a_heartbeat_cannot_have_both_a_period_and_a_schedule() -> None:
    text = """\
monitors:
  - id: nightly
    kind: heartbeat
    period: 24h
    schedule: "0 3 * * *"
"""
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0]: a heartbeat needs exactly one of period or schedule"
    )


def test_a_heartbeat_schedule_must_be_a_cron_expression() -> None:
    text = """\
monitors:
  - id: nightly
    kind: heartbeat
    schedule: every night at three
"""
    assert the_error(text) == (
        "uptally.yaml:4: monitors[0].schedule: invalid cron expression 'every night at three'"
    )


def test_a_heartbeat_period_is_at_least_a_second() -> None:
    text = "monitors:\n  - {id: fast, kind: heartbeat, period: 500ms}\n"
    assert the_error(text) == "uptally.yaml:2: monitors[0]: period must be at least 1s"


def test_a_heartbeat_token_is_long_enough_to_be_secret() -> None:
    text = "monitors:\n  - {id: job, kind: heartbeat, period: 1h, token: short}\n"
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0].token: invalid value 'short': "
        "a token is 8 to 128 letters, digits, '_' or '-'"
    )


def test_a_heartbeat_with_a_schedule_is_valid() -> None:
    config = valid("monitors:\n  - {id: job, kind: heartbeat, schedule: '0 3 * * *'}\n")
    monitor = config.monitors[0]
    assert isinstance(monitor, HeartbeatMonitor)
    assert monitor.schedule == "0 3 * * *"
    assert monitor.period is None
    assert monitor.grace_ms == 3_600_000


def test_a_heartbeat_grace_defaults_to_its_period_up_to_an_hour() -> None:
    config = valid("""\
monitors:
  - {id: often, kind: heartbeat, period: 5m}
  - {id: daily, kind: heartbeat, period: 24h}
""")
    often, daily = config.monitors
    assert isinstance(often, HeartbeatMonitor)
    assert isinstance(daily, HeartbeatMonitor)
    assert often.grace_ms == 300_000
    assert daily.grace_ms == 3_600_000


# -- metrics -----------------------------------------------------------------------------------


def test_a_prometheus_metric_needs_a_query() -> None:
    text = """\
monitors:
  - id: errors
    kind: metric
    source: prometheus
    url: https://prom.example
    expect: [value < 0.01]
"""
    assert (
        the_error(text) == "uptally.yaml:2: monitors[0]: a prometheus metric needs query: <PromQL>"
    )


def test_combine_is_one_of_min_max_sum_avg_and_only_for_prometheus() -> None:
    base = """\
monitors:
  - id: errors
    kind: metric
    url: https://prom.example
    expect: [value < 0.01]
"""
    ok = valid(base + "    source: prometheus\n    query: up\n    combine: max\n")
    assert ok.monitors[0].combine == "max"  # type: ignore[union-attr]
    wrong = the_error(base + "    source: prometheus\n    query: up\n    combine: median\n")
    assert wrong.startswith("uptally.yaml:8: monitors[0].combine:"), wrong
    assert "'min', 'max', 'sum' or 'avg'" in wrong
    json_metric = base + "    source: json\n    path: json.n\n    combine: sum\n"
    assert the_error(json_metric) == (
        "uptally.yaml:2: monitors[0]: combine is for source prometheus "
        "(a json path names one value)"
    )


def test_a_json_metric_needs_a_path() -> None:
    text = """\
monitors:
  - id: queue
    kind: metric
    source: json
    url: https://app.example/stats
    expect: [value < 100]
"""
    assert the_error(text) == "uptally.yaml:2: monitors[0]: a json metric needs path: json.<field>"


def test_a_json_metric_path_is_checked_as_a_json_path_on_its_line() -> None:
    text = """\
monitors:
  - id: queue
    kind: metric
    source: json
    url: https://app.example/stats
    path: body.queue
    expect: [value < 100]
  - id: depth
    kind: metric
    source: json
    url: https://app.example/stats
    path: json.queues[0].
    expect: [value < 100]
"""
    assert errors(text) == [
        "uptally.yaml:6: monitors[0].path: path must be a JSON path such as json.data.rate: "
        "unknown field 'body' here; this check can test: json",
        "uptally.yaml:12: monitors[1].path: path must be a JSON path such as json.data.rate: "
        "unexpected '.' after 'json.queues[0]' in 'json.queues[0].'",
    ]


def test_a_metric_refuses_the_field_of_the_other_source() -> None:
    text = """\
monitors:
  - id: queue
    kind: metric
    source: prometheus
    url: https://prom.example
    query: up
    path: json.x
    expect: [value > 0]
"""
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0]: path is for source json; a prometheus metric uses query"
    )


def test_a_metric_needs_expectations() -> None:
    text = """\
monitors:
  - id: queue
    kind: metric
    source: json
    url: https://app.example/stats
    path: json.queue
"""
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0].expect: missing required key 'expect' for a metric monitor"
    )


def test_a_json_metric_with_a_good_path_is_valid() -> None:
    config = valid("""\
monitors:
  - id: queue
    kind: metric
    source: json
    url: https://app.example/stats
    path: json.queues["mail.out"].depth
    expect: [value < 100]
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, MetricMonitor)
    assert monitor.path == 'json.queues["mail.out"].depth'


# -- requests: urls, headers, bodies -----------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com", "https://", "http:///path", "file:///etc/passwd"]
)
def test_an_http_url_must_be_http_or_https_and_name_a_host(url: str) -> None:
    text = f"monitors:\n  - id: api\n    kind: http\n    url: {url}\n"
    assert the_error(text) == (
        f"uptally.yaml:4: monitors[0].url: url must start with http:// or https:// "
        f"and name a host: {url!r}"
    )


def test_an_http_url_must_not_contain_spaces_or_line_breaks() -> None:
    text = 'monitors:\n  - id: api\n    kind: http\n    url: "https://x.test/a b\\r\\nX: y"\n'
    assert the_error(text) == (
        "uptally.yaml:4: monitors[0].url: url must not contain spaces or control characters: "
        "'https://x.test/a b\\r\\nX: y'"
    )


def test_jsonrpc_and_metric_urls_are_checked_too() -> None:
    text = """\
monitors:
  - {id: rpc, kind: jsonrpc, url: "ws://x.test", method: ping}
  - {id: m, kind: metric, source: prometheus, url: "x.test", query: up, expect: [value > 0]}
"""
    assert errors(text) == [
        "uptally.yaml:2: monitors[0].url: url must start with http:// or https:// "
        "and name a host: 'ws://x.test'",
        "uptally.yaml:3: monitors[1].url: url must start with http:// or https:// "
        "and name a host: 'x.test'",
    ]


def test_a_scenario_url_may_not_smuggle_another_scheme_before_a_variable() -> None:
    text = """\
monitors:
  - id: flow
    kind: scenario
    steps:
      - kind: http
        url: https://x.test
        capture: {host: json.host}
      - kind: http
        url: ftp://${host}/file
"""
    assert the_error(text) == (
        "uptally.yaml:9: monitors[0].steps[1].url: url must start with http:// or https:// "
        "and name a host: 'ftp://${host}/file'"
    )


@pytest.mark.parametrize(
    "value", ['"a\\r\\nX-Injected: 1"', '"line\\nbreak"', '"nul\\0"', '"bell\\a"']
)
def test_a_header_value_must_not_contain_line_breaks(value: str) -> None:
    text = f"""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    headers:
      Accept: application/json
      X-Note: {value}
"""
    line = the_error(text)
    assert line.startswith(
        "uptally.yaml:7: monitors[0].headers.X-Note: a header value must not contain "
        "line breaks or control characters: "
    )


def test_a_header_value_may_contain_a_tab() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    headers:
      X-Note: "a\\tb"
"""
    monitor = valid(text).monitors[0]
    assert isinstance(monitor, HttpMonitor)
    assert monitor.headers == {"X-Note": "a\tb"}


@pytest.mark.parametrize("name", ['"X Note"', '"X-Note:"', '"X\\r\\nInjected"', '""'])
def test_a_header_name_must_be_a_token(name: str) -> None:
    text = f"""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    headers:
      {name}: value
"""
    line = the_error(text)
    assert line.startswith("uptally.yaml:6: monitors[0].headers.")
    assert "invalid header name" in line


@pytest.mark.parametrize(
    "monitor",
    [
        "{id: rpc, kind: jsonrpc, url: 'https://x.test', method: ping, headers: {X-A: \"a\\nb\"}}",
        "{id: m, kind: metric, source: prometheus, url: 'https://x.test', query: up, "
        'expect: [value > 0], headers: {X-A: "a\\nb"}}',
    ],
)
def test_jsonrpc_and_metric_headers_are_checked_too(monitor: str) -> None:
    line = the_error(f"monitors:\n  - {monitor}\n")
    assert "monitors[0].headers.X-A: a header value must not contain line breaks" in line


def test_a_value_that_fits_no_member_of_a_union_gets_one_message() -> None:
    text = """\
monitors:
  - id: rpc
    kind: jsonrpc
    url: https://rpc.example
    method: ping
    params: 5
"""
    assert the_error(text) == (
        "uptally.yaml:6: monitors[0].params: expected a mapping or a list, not a number"
    )


def test_a_request_has_either_a_body_or_json() -> None:
    text = """\
monitors:
  - id: api
    kind: http
    url: https://example.com
    method: POST
    body: "x"
    json: {a: 1}
"""
    assert the_error(text) == "uptally.yaml:2: monitors[0]: give either body or json, not both"


def test_text_fields_keep_their_whitespace() -> None:
    config = valid("""\
monitors:
  - id: gateway
    kind: tcp
    host: gw.example.com
    port: 20100
    send: "ping\\n"
    expect: ["reply contains pong"]
  - id: api
    kind: http
    url: https://example.com
    method: POST
    body: "  padded\\r\\n\\t"
""")
    gateway, api = config.monitors
    assert isinstance(gateway, TcpMonitor)
    assert isinstance(api, HttpMonitor)
    assert gateway.send == "ping\n"
    assert api.body == "  padded\r\n\t"


def test_a_block_scalar_body_keeps_its_lines() -> None:
    config = valid("""\
monitors:
  - id: api
    kind: http
    url: https://example.com
    method: POST
    body: |
      line one
        indented
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, HttpMonitor)
    assert monitor.body == "line one\n  indented\n"


def test_a_tcp_port_must_be_a_port_number() -> None:
    text = "monitors:\n  - {id: gw, kind: tcp, host: gw.example, port: 70000}\n"
    assert the_error(text) == (
        "uptally.yaml:2: monitors[0].port: Input should be less than or equal to 65535"
    )


# -- defaults ----------------------------------------------------------------------------------


def test_an_active_monitor_gets_the_documented_defaults() -> None:
    config = valid("""\
monitors:
  - id: api
    kind: http
    url: https://example.com
""")
    monitor = config.monitors[0]
    assert isinstance(monitor, HttpMonitor)
    assert monitor.interval == 60_000
    assert monitor.retry_interval == 10_000
    assert monitor.timeout == 10_000
    assert monitor.confirm == 2
    assert monitor.locations == ["local"]
    assert monitor.consensus == "all"
    assert monitor.required_locations == 1
    assert monitor.method == "GET"
    assert monitor.enabled is True
    assert monitor.expect == []
    assert monitor.title == "api"


def test_every_kind_of_active_monitor_gets_the_same_defaults() -> None:
    config = valid("""\
monitors:
  - {id: t, kind: tcp, host: h.example, port: 1}
  - {id: j, kind: jsonrpc, url: "https://h.example", method: ping}
  - {id: d, kind: dns, host: h.example}
  - {id: m, kind: metric, source: prometheus, url: "https://p.example", query: up,
     expect: [value > 0]}
""")
    for monitor in config.monitors:
        assert not isinstance(monitor, HeartbeatMonitor)
        assert (monitor.interval, monitor.retry_interval, monitor.timeout) == (
            60_000,
            10_000,
            10_000,
        )
        assert (monitor.confirm, monitor.locations, monitor.consensus) == (2, ["local"], "all")


# -- notifications -----------------------------------------------------------------------------


def test_a_channel_subscribes_to_known_events_or_globs_of_them() -> None:
    config = valid("""\
notifications:
  channels:
    - id: ops
      url: slack://T000/B000/XXXX
      events: [monitor.down, monitor.up, incident.*, "*"]
""")
    assert config.notifications.channels[0].events == [
        "monitor.down",
        "monitor.up",
        "incident.*",
        "*",
    ]


def test_a_channel_reports_an_unknown_event() -> None:
    text = """\
notifications:
  channels:
    - id: ops
      url: slack://T000/B000/XXXX
      events: [monitor.dwn]
"""
    line = the_error(text)
    assert line.startswith(
        "uptally.yaml:5: notifications.channels[0].events: unknown event 'monitor.dwn'; events are"
    )


def test_only_a_webhook_channel_has_a_secret() -> None:
    text = """\
notifications:
  channels:
    - id: hook
      url: webhook+https://hooks.example/uptally
      secret: s3cret
    - id: chat
      url: slack://T000/B000/XXXX
      secret: s3cret
"""
    assert the_error(text) == (
        "uptally.yaml:6: notifications.channels[1]: "
        "only a webhook+http(s):// channel can have a secret"
    )


# -- properties -------------------------------------------------------------------------------

YAML_PIECES = st.sampled_from(
    [
        *["monitors:", "components:", "locations:", "site:", "\n", "  ", "    ", "- ", ": "],
        *["id: a", "id: b", "kind: ", "http", "tcp", "heartbeat", "scenario", "metric"],
        *["url: https://x.test", "port: 1", "host: h", "period: 1h", "steps:", "name: eu"],
        *["expect: [", "status == 200", "body matches ", "]", "{", "}", ",", "&a ", "*a"],
        *["<<: ", "consensus: ", "{quorum: 2}", "locations: [local]", "monitors: [a]"],
        *["capture: {t: json.x}", "${t}", "'", '"', "!!binary ", ".inf", "~", "[", "?"],
        *["|", ">", "#", "\t", "x", "1", "-1", "on", "\x00", "é"],
    ]
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(YAML_PIECES, max_size=30).map("".join), st.text(max_size=40)))
def test_any_text_is_a_config_or_one_line_per_error_with_a_line_number(text: str) -> None:
    try:
        parse_config(text, FILE)
    except ConfigError as error:
        reported = error.lines()
    else:
        return
    assert reported
    for line in reported:
        assert "\n" not in line
        prefix, number, _ = line.split(":", 2)
        assert prefix == FILE
        assert 1 <= int(number) <= text.count("\n") + 2
