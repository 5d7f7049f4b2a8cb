"""Compacted monitors are the same config: equal values, dumps and copies."""

from __future__ import annotations

import yaml

from uptally.config import Config, parse_config
from uptally.config.schema import HttpMonitor

TEXT = """\
site: {title: t}
monitors:
  - {id: a, kind: http, url: "http://127.0.0.1:1/a", expect: ["status == 200"]}
  - {id: b, kind: http, url: "http://127.0.0.1:1/b", expect: ["status == 200"],
     headers: {x-token: one}}
  - {id: c, kind: http, url: "http://127.0.0.1:1/c", expect: ["status == 204"],
     headers: {x-token: one}, locations: [local]}
  - {id: d, kind: tcp, host: 127.0.0.1, port: 1}
"""


def test_compacted_monitors_equal_freshly_validated_ones() -> None:
    config = parse_config(TEXT)
    validated = Config.model_validate(yaml.safe_load(TEXT))  # pydantic alone, not compacted
    assert len(config.monitors) == len(validated.monitors) == 4
    for monitor, fresh in zip(config.monitors, validated.monitors, strict=True):
        assert type(monitor) is type(fresh)
        assert monitor == fresh
        assert monitor.model_dump() == fresh.model_dump()
        assert monitor.model_fields_set == fresh.model_fields_set


def test_equal_values_are_one_object_and_copies_stay_independent() -> None:
    a, b, c, _ = parse_config(TEXT).monitors
    assert isinstance(a, HttpMonitor)
    assert isinstance(b, HttpMonitor)
    assert isinstance(c, HttpMonitor)
    assert a.expect is b.expect
    assert b.headers is c.headers
    assert a.locations is b.locations is c.locations
    assert a.model_fields_set is not b.model_fields_set  # b sets headers, a does not

    changed = a.model_copy(update={"confirm": 5})
    assert changed.confirm == 5
    assert a.confirm == 2
    assert "confirm" in changed.model_fields_set
    assert "confirm" not in a.model_fields_set
    assert "confirm" not in parse_config(TEXT).monitors[0].model_fields_set


def test_lists_of_equal_but_differently_typed_values_are_not_merged() -> None:
    config = parse_config(
        "site: {title: t}\nmonitors:\n"
        "  - {id: a, kind: http, url: 'http://127.0.0.1:1/', json: [1]}\n"
        "  - {id: b, kind: http, url: 'http://127.0.0.1:1/', json: [true]}\n"
    )
    a, b = config.monitors
    assert isinstance(a, HttpMonitor)
    assert isinstance(b, HttpMonitor)
    assert a.json_body == [1]
    assert type(a.json_body[0]) is int
    assert type(b.json_body[0]) is bool
