"""The condition language of `expect:` and `capture:`: parsing, error messages and judging."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from uptally.conditions import (
    Capture,
    Condition,
    ConditionError,
    Facts,
    Missing,
    Op,
    Template,
    VarRef,
    expand,
    parse_capture,
    parse_condition,
    variables_in,
)

DAY_MS = 86_400_000


def judge(text: str, variables: dict[str, Any] | None = None, **facts: Any) -> tuple[bool, str]:
    verdict = parse_condition(text).evaluate(Facts(facts), variables)
    return verdict.ok, verdict.message


def holds(text: str, variables: dict[str, Any] | None = None, **facts: Any) -> bool:
    return judge(text, variables, **facts)[0]


# -- paths -------------------------------------------------------------------------------------


def test_it_parses_a_bare_root() -> None:
    condition = parse_condition("status == 200")
    assert condition.path.root == "status"
    assert condition.path.parts == ()
    assert condition.path.text == "status"
    assert condition.op is Op.EQ
    assert condition.value == 200


def test_it_parses_dotted_keys_indexes_and_quoted_keys() -> None:
    condition = parse_condition('json.data.items[0]["odd.key"][-1] == 1')
    assert condition.path.root == "json"
    assert condition.path.parts == ("data", "items", 0, "odd.key", -1)
    assert condition.path.text == 'json.data.items[0]["odd.key"][-1]'


def test_a_quoted_key_may_hold_escaped_quotes_and_spaces() -> None:
    condition = parse_condition(r'json["say \"hi\" there"] exists')
    assert condition.path.parts == ('say "hi" there',)


def test_a_dotted_key_may_be_a_number_or_contain_dashes() -> None:
    assert parse_condition("json.items.0 == 1").path.parts == ("items", "0")
    assert parse_condition("header.content-type contains json").path.parts == ("content-type",)
    assert parse_condition("header.X-Request-Id exists").path.parts == ("X-Request-Id",)


def test_len_counts_the_wrapped_path() -> None:
    for text in ("len(json.items) > 2", "len( json.items ) > 2", "len(json.items)>2"):
        condition = parse_condition(text)
        assert condition.path.count is True
        assert condition.path.parts == ("items",)
        assert condition.path.text == "len(json.items)"
        assert condition.op is Op.GT


def test_cert_expires_in_is_a_root_of_its_own() -> None:
    condition = parse_condition("cert.expires_in > 14d")
    assert condition.root == "cert.expires_in"
    assert condition.path.parts == ()
    assert condition.value == 14 * DAY_MS


def test_other_cert_fields_stay_under_cert() -> None:
    condition = parse_condition("cert.issuer contains Example")
    assert condition.root == "cert"
    assert condition.path.parts == ("issuer",)


# -- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("status == 200", Op.EQ),
        ("status != 200", Op.NE),
        ("status < 400", Op.LT),
        ("status <= 399", Op.LE),
        ("status > 199", Op.GT),
        ("status >= 200", Op.GE),
        ("status in [200, 204]", Op.IN),
        ("status not in [500, 503]", Op.NOT_IN),
        ("status not   in [500]", Op.NOT_IN),
        ("body contains UP", Op.CONTAINS),
        ("body not contains DOWN", Op.NOT_CONTAINS),
        ('body matches "^UP"', Op.MATCHES),
        ('body not matches "^DOWN"', Op.NOT_MATCHES),
        ("json.id exists", Op.EXISTS),
        ("json.error not exists", Op.NOT_EXISTS),
    ],
)
def test_it_knows_every_operator(text: str, op: Op) -> None:
    assert parse_condition(text).op is op


@pytest.mark.parametrize("text", ["status==200", "status!=500", "latency<200ms", "json.n>=1"])
def test_symbolic_operators_need_no_spaces(text: str) -> None:
    assert parse_condition(text).path.text in ("status", "latency", "json.n")


def test_exists_and_not_exists_take_no_value() -> None:
    assert parse_condition("json.id exists").value is None
    with pytest.raises(ConditionError, match="'exists' takes no value"):
        parse_condition("json.id exists 1")


def test_surrounding_whitespace_is_ignored_and_the_text_kept() -> None:
    condition = parse_condition("  status == 200 \n")
    assert condition.text == "status == 200"


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("json.n == 200", 200),
        ("json.n == -1", -1),
        ("json.n == 1.5", 1.5),
        ("json.n == 1e3", 1000.0),
        ('json.s == "UP"', "UP"),
        ('json.s == "caf\\u00e9"', "café"),
        ("json.s == 'single quoted \\d'", "single quoted \\d"),
        ("json.b == true", True),
        ("json.b == false", False),
        ("json.x == null", None),
        ("json.x == [1, 2]", [1, 2]),
        ('json.x == {"a": 1}', {"a": 1}),
        ("status in []", []),
    ],
)
def test_values_are_json_literals(text: str, value: Any) -> None:
    parsed = parse_condition(text).value
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("reply contains pong", "pong"),
        ("json.status == UP", "UP"),
        ("json.status == all good", "all good"),
        ("json.version == 1.2.3", "1.2.3"),
        ("json.x == NaN", "NaN"),
        ("json.x == Infinity", "Infinity"),
    ],
)
def test_a_bare_word_is_a_string(text: str, value: str) -> None:
    assert parse_condition(text).value == value


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("latency < 200ms", 200),
        ("latency < 1.5s", 1_500),
        ("latency < 1h30m", 5_400_000),
        ("cert.expires_in > 14d", 14 * DAY_MS),
    ],
)
def test_a_duration_is_read_as_milliseconds(text: str, ms: int) -> None:
    assert parse_condition(text).value == ms


def test_a_variable_is_a_reference_to_a_captured_value() -> None:
    assert parse_condition("json.id == ${id}").value == VarRef("id")


def test_a_variable_inside_a_string_makes_a_template() -> None:
    assert parse_condition('body contains "user ${name}!"').value == Template("user ${name}!")
    assert parse_condition("body contains id=${id}").value == Template("id=${id}")


def test_dollar_text_that_is_not_a_variable_stays_a_string() -> None:
    assert parse_condition('body contains "${1} costs $5"').value == "${1} costs $5"


def test_a_regular_expression_is_written_as_is_inside_quotes() -> None:
    condition = parse_condition(r'body matches "count=(\d+)\b"')
    assert condition.value == re.compile(r"count=(\d+)\b")


def test_a_regular_expression_may_be_single_quoted_or_bare() -> None:
    assert parse_condition(r"body matches '^\w+$'").value == re.compile(r"^\w+$")
    assert parse_condition("body matches ^[a-z]+$").value == re.compile("^[a-z]+$")


def test_an_escaped_quote_in_a_regular_expression_matches_a_quote() -> None:
    assert holds(r'body matches "say \"hi\""', body='they say "hi"')


def test_a_regular_expression_with_a_variable_is_a_template() -> None:
    condition = parse_condition(r'body matches "^id=${id}\b"')
    assert condition.value == Template(r"^id=${id}\b", regex=True)


# -- parse errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a name such as status, body or json at the start of ''"),
        ("== 200", "expected a name such as status, body or json"),
        ("1abc == 2", "expected a name such as status"),
        ("status", "expected an operator (==, !=, <, <=, >, >=, in, contains, matches, exists)"),
        ("status is 200", "expected an operator"),
        ("status notin [1]", "expected an operator"),
        ("len(body)", "after 'len(body)' in 'len(body)'"),
        ("status = 200", "use '==' rather than '=' after 'status'"),
        ("status => 200", "use '>=' rather than '=>'"),
        ("status =< 200", "use '<=' rather than '=<'"),
        ("status === 200", "unexpected '= 200' after '=='"),
        ("status <> 200", "did you mean '!='?"),
        ("status ==", "missing value after '=='"),
        ("body contains", "missing value after 'contains'"),
        ("json.", "unexpected '.' after 'json'"),
        ("json[", "unexpected '[' after 'json'"),
        ('json["a"', "unexpected '[\"a\"' after 'json'"),
        ("json.a$b == 1", "unexpected '$b == 1' after 'json.a'"),
        (r'json["\x"] == 1', "cannot read the key"),
        ("len(json.items > 2", "missing ')' after len(json.items"),
        ("status == [1,", "cannot read the value '[1,'"),
        ('body contains "x" extra', "cannot read the value '\"x\" extra'"),
        ('body contains "unclosed', "cannot read the value"),
        ("body contains 'unclosed", "cannot read the value"),
        ("status in 200", "'in' needs a list such as [200, 204]"),
        ("status not in 200", "'not in' needs a list"),
        ('status < "a"', "'<' compares numbers or durations"),
        ("status >= true", "'>=' compares numbers or durations"),
        ('body matches "("', "invalid regular expression '('"),
        ('body matches "a{99999999999}"', "invalid regular expression"),
        ('body matches "[[a]"', "ambiguous: Possible nested set"),
        ('body matches "unclosed', "unterminated quoted regular expression"),
        ("body matches ${re}", "'matches' needs a quoted regular expression"),
        ("cert.expires_in > 14", "compare cert.expires_in with a duration such as 14d"),
        ('cert.expires_in == "14d"', "compare cert.expires_in with a duration"),
        ("cert.expires_in contains 1d", "compare cert.expires_in with a duration"),
        ("latency < 36501d", "longer than 100 years"),
    ],
)
def test_bad_conditions_are_refused_with_a_helpful_message(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as raised:
        parse_condition(text)
    assert message in str(raised.value)


def test_an_error_message_quotes_the_whole_condition() -> None:
    with pytest.raises(ConditionError, match=re.escape("in 'status in 200'")):
        parse_condition("status in 200")


@pytest.mark.parametrize("value", [200, None, ["status == 200"], {"status": 200}])
def test_a_condition_must_be_a_string(value: object) -> None:
    with pytest.raises(ConditionError, match="a condition is a string such as 'status == 200'"):
        parse_condition(value)


def test_a_parsed_condition_is_passed_through() -> None:
    condition = parse_condition("status == 200")
    assert parse_condition(condition) is condition


def test_roots_limit_what_a_check_can_test() -> None:
    with pytest.raises(
        ConditionError, match="unknown field 'body' here; this check can test: latency, reply"
    ):
        parse_condition("body contains x", roots={"reply", "latency"})
    assert parse_condition("reply contains x", roots={"reply", "latency"}).root == "reply"


def test_cert_expires_in_is_allowed_where_cert_is() -> None:
    assert parse_condition("cert.expires_in > 7d", roots={"cert"}).root == "cert.expires_in"
    with pytest.raises(ConditionError, match=r"unknown field 'cert\.expires_in'"):
        parse_condition("cert.expires_in > 7d", roots={"status"})


def test_cert_expires_in_may_be_compared_with_a_captured_duration() -> None:
    assert parse_condition("cert.expires_in > ${min}").value == VarRef("min")


# -- judging -----------------------------------------------------------------------------------


def test_a_condition_that_holds_says_nothing() -> None:
    assert judge("status == 200", status=200) == (True, "")


def test_a_failing_condition_says_what_was_seen_and_expected() -> None:
    assert judge("status == 200", status=503) == (False, "status is 503, expected == 200")


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("json.n == 42", "42", True),
        ("json.n == 42", " 42 ", True),
        ("json.n == 42", "42.0", True),
        ('json.n == "42"', 42, True),
        ('json.n == "1"', 1.0, True),
        ("json.n == 42", "forty-two", False),
        ("json.n == 1000", "1_000", False),
        ("json.n == 1000", "1e3", True),
        ("json.n > 41", "42", True),
        ("json.n < 41.5", "41.25", True),
        ('json.n == "042"', "42", False),
        ('json.s == "UP"', "UP", True),
        ('json.s == "UP"', "up", False),
    ],
)
def test_numbers_and_their_decimal_text_are_equal(text: str, value: Any, expected: bool) -> None:
    assert holds(text, json={"n": value, "s": value}) is expected


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("json.b == true", True, True),
        ("json.b == false", False, True),
        ("json.b == true", 1, False),
        ("json.b == 1", True, False),
        ("json.b == 0", False, False),
        ('json.b == "true"', True, False),
        ("json.b == true", "true", False),
        ("json.b != true", 1, True),
        ("json.b in [true]", True, True),
        ("json.b in [1]", True, False),
    ],
)
def test_booleans_equal_only_booleans(text: str, value: Any, expected: bool) -> None:
    assert holds(text, json={"b": value}) is expected


def test_null_equals_only_null() -> None:
    assert holds("json.x == null", json={"x": None})
    assert not holds("json.x == null", json={"x": 0})
    assert not holds("json.x == 0", json={"x": None})


def test_lists_and_objects_compare_whole() -> None:
    assert holds("json.x == [1, 2]", json={"x": [1, 2]})
    assert not holds("json.x == [1, 2]", json={"x": [2, 1]})
    assert holds('json.x == {"a": 1}', json={"x": {"a": 1}})


def test_ordering_a_value_that_is_not_a_number_fails_with_a_reason() -> None:
    assert judge("json.x > 3", json={"x": "UP"}) == (False, 'json.x is "UP": not a number')
    assert judge("json.x < 3", json={"x": True}) == (False, "json.x is true: not a number")
    assert judge("json.x < 3", json={"x": "nan"}) == (False, 'json.x is "nan": not a number')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status < 400", True),
        ("status <= 204", True),
        ("status > 204", False),
        ("status >= 204", True),
        ("status in [200, 204]", True),
        ('status in ["204"]', True),
        ("status not in [200, 204]", False),
        ("status not in [500]", True),
    ],
)
def test_ordering_and_membership(text: str, expected: bool) -> None:
    assert holds(text, status=204) is expected


def test_a_missing_path_fails_every_operator_but_not_exists() -> None:
    facts = {"json": {"a": 1}}
    for text in ("json.b == 1", "json.b != 1", "json.b exists", "json.b not contains x"):
        ok, message = judge(text, **facts)
        assert not ok
        assert message == "json.b is missing (no key 'b')"
    assert judge("json.b not exists", **facts) == (True, "")


@pytest.mark.parametrize(
    ("text", "facts", "message"),
    [
        ("json.items[5] == 1", {"json": {"items": [1]}}, "no item [5] in a list of 1"),
        ("json.a.b == 1", {"json": {"a": "text"}}, "str has no 'b'"),
        ("body == 1", {}, "body is not available"),
        ("len(json.n) == 1", {"json": {"n": 1.5}}, "cannot count a float"),
    ],
)
def test_a_missing_value_says_why(text: str, facts: dict[str, Any], message: str) -> None:
    ok, said = judge(text, **facts)
    assert not ok
    assert said.endswith(f"({message})") or message in said


def test_exists_is_false_for_null_and_not_exists_true() -> None:
    assert judge("json.x exists", json={"x": None}) == (False, "json.x is null")
    assert judge("json.x not exists", json={"x": None}) == (True, "")
    assert judge("json.x exists", json={"x": 0}) == (True, "")
    assert judge("json.x not exists", json={"x": 0}) == (False, "json.x exists (0)")


def test_indexes_count_from_the_end_when_negative() -> None:
    assert holds("json.items[-1] == 3", json={"items": [1, 2, 3]})
    assert holds("json.items.0 == 1", json={"items": [1, 2, 3]})


def test_len_counts_lists_objects_and_text() -> None:
    assert holds("len(json.items) == 3", json={"items": [1, 2, 3]})
    assert holds("len(json) == 2", json={"a": 1, "b": 2})
    assert holds("len(body) == 5", body="hello")


def test_header_names_are_looked_up_without_regard_to_case() -> None:
    headers = {"content-type": "application/json"}
    assert holds("header.Content-Type contains json", header=headers)
    assert holds('header["CONTENT-TYPE"] contains json', header=headers)
    assert holds("header.content-type contains json", header={"Content-Type": "text/json"})


def test_json_keys_are_case_sensitive() -> None:
    assert not holds("json.Status exists", json={"status": "UP"})


@pytest.mark.parametrize(
    ("text", "actual", "expected"),
    [
        ("body contains UP", "all UP", True),
        ("body contains UP", b"all UP", True),
        ("body contains 200", "HTTP 200 OK", True),
        ("body not contains DOWN", "all UP", True),
        ("json.x contains 2", [1, 2, 3], True),
        ('json.x contains "2"', [1, 2, 3], True),
        ("json.x contains 4", [1, 2, 3], False),
        ("json.x contains key", {"key": 1}, True),
        ("json.x contains key", None, False),
    ],
)
def test_contains_searches_text_lists_and_keys(text: str, actual: Any, expected: bool) -> None:
    assert holds(text, body=actual, json={"x": actual}) is expected


def test_contains_in_a_number_fails_with_a_reason() -> None:
    assert judge("status contains 2", status=200) == (
        False,
        "status is 200: cannot search in a number",
    )


def test_contains_failures_name_what_was_not_found() -> None:
    assert judge("body contains UP", body="DOWN") == (False, 'body does not contain "UP"')
    assert judge("body not contains DOWN", body="DOWN") == (False, 'body contains "DOWN"')


def test_matches_searches_anywhere_in_the_text() -> None:
    assert holds(r'body matches "\d{3}"', body="code 200 ok")
    assert not holds(r'body matches "^\d{3}$"', body="code 200 ok")
    assert judge(r'body matches "^\d+$"', body="x") == (False, r'body does not match "^\\d+$"')
    assert judge('body not matches "x"', body="x") == (False, 'body matches "x"')


def test_matches_reads_numbers_as_their_json_text() -> None:
    assert holds(r'json.n matches "^\d+$"', json={"n": 42})


def test_a_latency_failure_is_told_in_durations() -> None:
    assert judge("latency < 200ms", latency=250.4) == (
        False,
        "latency is 250ms, expected < 200ms",
    )


def test_cert_expires_in_is_judged_in_milliseconds() -> None:
    assert holds("cert.expires_in > 14d", **{"cert.expires_in": 30 * DAY_MS})
    assert judge("cert.expires_in > 14d", **{"cert.expires_in": 3 * DAY_MS}) == (
        False,
        "cert.expires_in is 3d, expected > 14d",
    )


def test_cert_expires_in_may_also_come_from_the_cert_facts() -> None:
    assert holds("cert.expires_in > 14d", cert={"expires_in": 30 * DAY_MS})
    assert judge("cert.expires_in > 14d", cert=None) == (
        False,
        "cert.expires_in is missing (there is no TLS certificate)",
    )


def test_a_variable_is_compared_with_its_captured_value() -> None:
    assert holds("json.id == ${id}", {"id": "42"}, json={"id": 42})
    assert not holds("json.id == ${id}", {"id": "43"}, json={"id": 42})
    assert holds("status in ${ok}", {"ok": [200, 204]}, status=204)


def test_a_variable_that_was_not_captured_fails() -> None:
    assert judge("json.id == ${id}", None, json={"id": 1}) == (
        False,
        "variable ${id} was not captured",
    )
    assert judge('body contains "a${x}"', {}, body="a${x}") == (
        False,
        "variable ${x} was not captured",
    )


def test_a_template_is_filled_in_with_captured_values() -> None:
    assert holds('body contains "user ${name}!"', {"name": "ada"}, body="hello user ada!")
    assert holds('body contains "n=${n}"', {"n": 5}, body="n=5")


def test_a_captured_value_goes_into_a_regular_expression_as_plain_text() -> None:
    assert holds(r'body matches "^id=${id}$"', {"id": "a.b"}, body="id=a.b")
    assert not holds(r'body matches "^id=${id}$"', {"id": "a.b"}, body="id=aXb")
    assert holds(r'body matches "^(${id})+$"', {"id": "a+"}, body="a+a+")


def test_an_ordering_with_a_captured_text_fails_with_a_reason() -> None:
    assert judge("status < ${max}", {"max": "many"}, status=200) == (
        False,
        "status is 200: not a number",
    )


# -- facts -------------------------------------------------------------------------------------


def test_facts_are_computed_once_and_only_when_asked() -> None:
    calls: list[str] = []

    def body() -> str:
        calls.append("body")
        return "UP"

    facts = Facts({"body": body, "status": 200})
    assert calls == []
    assert parse_condition("body contains UP").evaluate(facts).ok
    assert parse_condition("body not contains DOWN").evaluate(facts).ok
    assert calls == ["body"]


def test_a_fact_that_is_missing_when_computed_fails_the_condition() -> None:
    def not_json() -> Any:
        raise Missing("the body is not JSON")

    verdict = parse_condition("json.a == 1").evaluate(Facts({"json": not_json}))
    assert verdict.ok is False
    assert verdict.message == "json.a is missing (the body is not JSON)"


def test_asking_for_an_unknown_fact_raises_missing() -> None:
    with pytest.raises(Missing, match="reply is not available"):
        Facts({}).get("reply")


# -- captures ----------------------------------------------------------------------------------


def test_a_capture_takes_the_value_at_a_path() -> None:
    capture = parse_capture("json.data.token")
    assert capture.take(Facts({"json": {"data": {"token": "abc"}}})) == "abc"


def test_a_capture_with_a_group_takes_the_first_group() -> None:
    capture = parse_capture(r'reply matches "count=(\d+)"')
    assert capture.take(Facts({"reply": "ok count=12\n"})) == "12"


def test_a_capture_without_a_group_takes_the_whole_match() -> None:
    assert parse_capture(r'reply matches "\d+"').take(Facts({"reply": "n=12"})) == "12"


def test_a_capture_that_does_not_match_is_missing() -> None:
    with pytest.raises(Missing, match="does not match"):
        parse_capture(r'reply matches "x(\d+)"').take(Facts({"reply": "y"}))


def test_a_capture_of_an_absent_path_is_missing() -> None:
    with pytest.raises(Missing, match="no key 'a'"):
        parse_capture("json.a").take(Facts({"json": {}}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a name such as status"),
        ("json.a.", "unexpected '.' after 'json.a'"),
        ("json.a extra", 'a capture is a path, optionally with matches "regex"'),
        ("json.a == 1", 'a capture is a path, optionally with matches "regex"'),
        ('json.a not matches "x"', 'a capture is a path, optionally with matches "regex"'),
        ("json.a matches", "matches needs a quoted regular expression"),
        ('json.a matches "("', "invalid regular expression '('"),
        ('json.a matches "${x}"', "a capture's regular expression cannot use ${...}"),
        ("json.a matches ${x}", "a capture's regular expression cannot use ${...}"),
    ],
)
def test_bad_captures_are_refused_with_a_helpful_message(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as raised:
        parse_capture(text)
    assert message in str(raised.value)


def test_a_capture_must_be_a_string_and_may_be_limited_to_roots() -> None:
    with pytest.raises(ConditionError, match=r"a capture is a path such as 'json\.token'"):
        parse_capture(3)
    with pytest.raises(
        ConditionError, match="unknown field 'body' here; this check can test: json"
    ):
        parse_capture("body", roots={"json"})
    capture = parse_capture("json.x")
    assert isinstance(capture, Capture)
    assert parse_capture(capture) is capture


# -- expand ------------------------------------------------------------------------------------


def test_expand_fills_in_known_variables_and_leaves_unknown_ones() -> None:
    assert expand("Bearer ${token} for ${user}", {"token": "t1"}) == "Bearer t1 for ${user}"
    assert expand("n=${n} l=${l}", {"n": 5, "l": [1, "a"]}) == 'n=5 l=[1,"a"]'
    assert expand("no variables", {"x": 1}) == "no variables"


def test_variables_in_lists_the_names_used() -> None:
    assert variables_in("${a} and ${b_2} but not ${1} or $c") == ["a", "b_2"]


# -- properties --------------------------------------------------------------------------------

CONDITION_PIECES = st.sampled_from(
    [
        *"abjsonstatuslen()[].\"'${}\\=!<>0123456789 -_,:dmsh*+?^|\n\t",
        "in",
        "not",
        "contains",
        "matches",
        "exists",
        "json.",
        "status ",
        " == ",
        " matches ",
        "${x}",
        "[0]",
        '["k"]',
        "\\u",
        "\\x",
        "len(",
        "cert.expires_in",
        "14d",
        "{",
        "(?P<",
    ]
)
CONDITION_LIKE = st.lists(CONDITION_PIECES, max_size=16).map("".join)


@given(st.one_of(st.text(max_size=40), CONDITION_LIKE))
def test_parsing_any_text_gives_a_condition_or_a_condition_error(text: str) -> None:
    for parse in (parse_condition, parse_capture):
        with contextlib.suppress(ConditionError):
            parse(text)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def literal(value: Any) -> str:
    return json.dumps(value)


@given(JSON_VALUES, JSON_VALUES)
def test_equal_and_not_equal_always_disagree_about_a_present_value(
    actual: Any, expected: Any
) -> None:
    text = literal(expected)
    assume("${" not in text)
    facts = {"json": {"x": actual}}
    assert holds(f"json.x == {text}", **facts) is not holds(f"json.x != {text}", **facts)


@given(JSON_VALUES, st.lists(JSON_SCALARS, max_size=4))
def test_in_and_not_in_always_disagree_about_a_present_value(actual: Any, items: list[Any]) -> None:
    text = literal(items)
    assume("${" not in text)
    facts = {"json": {"x": actual}}
    assert holds(f"json.x in {text}", **facts) is not holds(f"json.x not in {text}", **facts)


@given(st.text(max_size=20), st.text(min_size=1, max_size=4))
def test_contains_and_not_contains_always_disagree_about_text(body: str, part: str) -> None:
    text = literal(part)
    assume("${" not in text)
    assert holds(f"body contains {text}", body=body) is not holds(
        f"body not contains {text}", body=body
    )


@given(st.text(max_size=20), st.from_regex(r"[a-z.^$*+?|]{1,6}", fullmatch=True))
def test_matches_and_not_matches_always_disagree(body: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error:
        assume(False)
    assert holds(f'body matches "{pattern}"', body=body) is not holds(
        f'body not matches "{pattern}"', body=body
    )


IDENTIFIERS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
DOTTED_KEYS = st.from_regex(r"[A-Za-z0-9_\-]{1,8}", fullmatch=True)
PARTS = st.lists(
    st.one_of(
        DOTTED_KEYS.map(lambda key: ("dot", key)),
        st.integers(min_value=-5, max_value=50).map(lambda i: ("index", i)),
        st.text(max_size=6).map(lambda key: ("quoted", key)),
    ),
    max_size=4,
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.floats(allow_nan=False, allow_infinity=False),
)
PLAIN_TEXT = st.text(max_size=10).filter(lambda s: "${" not in s)


@st.composite
def conditions(draw: st.DrawFn) -> tuple[str, str, tuple[Any, ...], bool, Op, Any]:
    root = draw(IDENTIFIERS.filter(lambda r: r != "cert"))
    parts = draw(PARTS)
    count = draw(st.booleans())
    path = root
    for kind, key in parts:
        if kind == "dot":
            path += f".{key}"
        elif kind == "index":
            path += f"[{key}]"
        else:
            path += f"[{json.dumps(key)}]"
    if count:
        path = f"len({path})"
    op = draw(st.sampled_from(list(Op)))
    value: Any
    if op in (Op.EXISTS, Op.NOT_EXISTS):
        value, text = None, ""
    elif op in (Op.LT, Op.LE, Op.GT, Op.GE):
        value = draw(NUMBERS)
        text = json.dumps(value)
    elif op in (Op.IN, Op.NOT_IN):
        value = draw(st.lists(st.one_of(NUMBERS, PLAIN_TEXT, st.booleans(), st.none())))
        text = json.dumps(value)
    elif op in (Op.MATCHES, Op.NOT_MATCHES):
        pattern = draw(st.from_regex(r"[A-Za-z0-9 .*+?^$|\\d]{1,8}", fullmatch=True))
        try:
            value = re.compile(pattern)
        except re.error:
            assume(False)
        text = '"' + pattern.replace('"', '\\"') + '"'
    else:
        value = draw(st.one_of(NUMBERS, PLAIN_TEXT, st.booleans(), st.none()))
        text = json.dumps(value)
    rendered = f"{path} {op.value} {text}".rstrip()
    expected_parts = tuple(key for _, key in parts)
    return rendered, root, expected_parts, count, op, value


@given(conditions())
def test_a_rendered_condition_parses_back_to_what_it_says(
    case: tuple[str, str, tuple[Any, ...], bool, Op, Any],
) -> None:
    rendered, root, parts, count, op, value = case
    condition = parse_condition(rendered)
    assert isinstance(condition, Condition)
    assert condition.text == rendered
    assert condition.path.root == root
    assert condition.path.parts == parts
    assert condition.path.count is count
    assert condition.op is op
    assert condition.value == value
    assert parse_condition(condition.text) == condition
