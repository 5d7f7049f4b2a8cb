r"""The expectation language of monitors: parse `status == 200`-style conditions and judge facts.

A condition is `<path> <op> <value>`:

- path: a root such as `status`, `latency`, `body`, `json`, `header`, `cert`, `reply`, `result`,
  `answers` or `value`, followed by `.key`, `[0]` or `["odd key"]` segments; `len(path)` counts.
- op: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `contains`, `not contains`,
  `matches`, `not matches`, `exists`, `not exists` (the last two take no value).
- value: a JSON literal (`200`, `"UP"`, `[200, 204]`, `true`, `null`), a duration (`200ms`, `14d`),
  a bare word (`reply contains pong`), a 'single-quoted' string taken as it is,
  or a scenario variable `${name}`; `${name}` also expands inside quoted strings.
  After `matches` the quoted text is the regular expression as written (`"count=(\d+)"`);
  variables expand into it as literal text.

Conditions are parsed once (when the config is loaded) and judged many times; they are pure.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from uptally.durations import format_duration_ms, parse_duration_ms

DURATION_ROOTS = frozenset({"latency", "cert.expires_in"})
_MISSING = object()


class Op(StrEnum):
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    IN = "in"
    NOT_IN = "not in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not contains"
    MATCHES = "matches"
    NOT_MATCHES = "not matches"
    EXISTS = "exists"
    NOT_EXISTS = "not exists"


_ORDERING = {Op.LT, Op.LE, Op.GT, Op.GE}
_UNARY = {Op.EXISTS, Op.NOT_EXISTS}
_SYMBOL_OP_START = "=!<>"
_OP_RE = re.compile(
    r"\s*(==|!=|<=|>=|<|>|not\s+in\b|in\b|not\s+contains\b|contains\b|"
    r"not\s+matches\b|matches\b|not\s+exists\b|exists\b)\s*"
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT_RE = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(-?\d+)\]|\[\"((?:[^\"\\]|\\.)*)\"\]")
_DURATION_LITERAL_RE = re.compile(r"^(\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")
_NUMBER_RE = re.compile(r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DOUBLE_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_SINGLE_QUOTED_RE = re.compile(r"'([^']*)'", re.DOTALL)


class ConditionError(ValueError):
    """A condition or capture that cannot be parsed, or uses something its check cannot provide."""


class Missing(Exception):
    """Raised by facts that are not available (e.g. the body is not JSON)."""


@dataclass(frozen=True, slots=True)
class Path:
    root: str
    parts: tuple[str | int, ...]
    count: bool  # wrapped in len(...)
    text: str

    def resolve(self, facts: Facts) -> Any:
        try:
            value = facts.get(self.root)
        except Missing:
            if self.root != "cert.expires_in" or not facts.has("cert"):
                raise
            cert = facts.get("cert")
            if cert is None:
                raise Missing("there is no TLS certificate") from None
            value = _step(cert, "expires_in", self)
        for part in self.parts:
            value = _step(value, part, self)
        if self.count:
            if not isinstance(value, str | list | dict):
                raise Missing(f"{self.text}: cannot count a {type(value).__name__}")
            return len(value)
        return value


@dataclass(frozen=True, slots=True)
class VarRef:
    name: str


@dataclass(frozen=True, slots=True)
class Template:
    """A quoted string with ${name} placeholders."""

    text: str
    regex: bool = False  # after `matches`: the values are inserted as literal text

    def render(self, variables: Mapping[str, Any]) -> str:
        if not self.regex:
            return expand(self.text, variables)
        return _VAR_RE.sub(
            lambda m: re.escape(_to_text(variables[m[1]])) if m[1] in variables else m[0],
            self.text,
        )

    def missing(self, variables: Mapping[str, Any]) -> list[str]:
        """The names used here that have no value."""
        return [name for name in variables_in(self.text) if name not in variables]


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    message: str


class Facts:
    """What a check observed, by root name; values may be computed lazily."""

    __slots__ = ("_cache", "_sources")

    def __init__(self, sources: Mapping[str, Callable[[], Any] | Any]) -> None:
        self._sources = sources
        self._cache: dict[str, Any] = {}

    def has(self, root: str) -> bool:
        return root in self._cache or root in self._sources

    def get(self, root: str) -> Any:
        if root in self._cache:
            return self._cache[root]
        if root not in self._sources:
            raise Missing(f"{root} is not available")
        source = self._sources[root]
        value = source() if callable(source) else source
        self._cache[root] = value
        return value


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    path: Path
    op: Op
    value: Any  # literal, VarRef, Template or compiled regex (for matches)

    @property
    def root(self) -> str:
        return self.path.root

    def evaluate(self, facts: Facts, variables: Mapping[str, Any] | None = None) -> Verdict:
        try:
            actual = self.path.resolve(facts)
        except Missing as missing:
            if self.op is Op.NOT_EXISTS:
                return Verdict(True, "")
            return Verdict(False, f"{self.path.text} is missing ({missing})")
        if self.op is Op.EXISTS:
            if actual is None:
                return Verdict(False, f"{self.path.text} is null")
            return Verdict(True, "")
        if self.op is Op.NOT_EXISTS:
            if actual is None:
                return Verdict(True, "")
            return Verdict(False, f"{self.path.text} exists ({_show(actual)})")
        expected = self.value
        if isinstance(expected, VarRef):
            if variables is None or expected.name not in variables:
                return Verdict(False, f"variable ${{{expected.name}}} was not captured")
            expected = variables[expected.name]
        elif isinstance(expected, Template):
            absent = expected.missing(variables or {})
            if absent:
                return Verdict(False, f"variable ${{{absent[0]}}} was not captured")
            expected = expected.render(variables or {})
        try:
            if self.op in (Op.MATCHES, Op.NOT_MATCHES) and isinstance(expected, str):
                expected = _regex(expected)
            ok = _judge(self.op, actual, expected)
        except _REGEX_ERRORS as error:
            return Verdict(False, f"invalid regular expression {expected!r}: {error}")
        except TypeError as error:
            return Verdict(False, f"{self.path.text} is {_show(actual)}: {error}")
        if ok:
            return Verdict(True, "")
        return Verdict(False, _failure(self, actual, expected))


@dataclass(frozen=True, slots=True)
class Capture:
    """Takes a value from one scenario step for later steps: a path, or a regex group of one."""

    path: Path
    pattern: re.Pattern[str] | None
    text: str = ""  # as written in the config

    def take(self, facts: Facts) -> Any:
        value = self.path.resolve(facts)
        if self.pattern is None:
            return value
        match = self.pattern.search(value if isinstance(value, str) else _to_text(value))
        if not match:
            raise Missing(f"{self.path.text} does not match {self.pattern.pattern!r}")
        return match.group(1) if self.pattern.groups else match.group(0)


def parse_condition(text: object, roots: Collection[str] | None = None) -> Condition:
    """Parse one condition; `roots` restricts the allowed roots (a check's vocabulary)."""
    if isinstance(text, Condition):
        return text
    if not isinstance(text, str):
        raise ConditionError(f"a condition is a string such as 'status == 200', not {text!r}")
    if isinstance(roots, frozenset) or roots is None:
        # Conditions are immutable: thousands of monitors expecting `status == 200` share one.
        return _parse_condition_cached(text, roots)
    return _parse_condition(text, roots)


@lru_cache(maxsize=4096)
def _parse_condition_cached(text: str, roots: frozenset[str] | None) -> Condition:
    return _parse_condition(text, roots)


def _parse_condition(text: str, roots: Collection[str] | None) -> Condition:
    source = text.strip()
    path, rest = _parse_path(source)
    _check_root(path, roots)
    match = _OP_RE.match(rest)
    if not match:
        raise ConditionError(_operator_expected(path, rest, source))
    op = Op(" ".join(match[1].split()))
    value_text = rest[match.end() :].strip()
    if op in _UNARY:
        if value_text:
            raise ConditionError(f"{op.value!r} takes no value in {source!r}")
        return Condition(source, path, op, None)
    if not value_text:
        raise ConditionError(f"missing value after {op.value!r} in {source!r}")
    if value_text[:1] in _SYMBOL_OP_START:
        hint = " (did you mean '!='?)" if f"{op.value}{value_text[:1]}" == "<>" else ""
        raise ConditionError(
            f"unexpected {value_text!r} after {op.value!r} in {source!r}{hint}; "
            f"use one operator and quote a value that starts with {value_text[0]!r}"
        )
    regex = op in (Op.MATCHES, Op.NOT_MATCHES)
    value = _parse_value(value_text, source, regex=regex)
    _check_value(path, op, value, value_text, source)
    if isinstance(value, str) and regex:
        value = _compile(value, source)
    return Condition(source, path, op, value)


def parse_capture(text: object, roots: Collection[str] | None = None) -> Capture:
    """Parse `json.data.token` or `reply matches "count=(\\d+)"` (group 1 is captured)."""
    if isinstance(text, Capture):
        return text
    if not isinstance(text, str):
        raise ConditionError(f"a capture is a path such as 'json.token', not {text!r}")
    source = text.strip()
    path, rest = _parse_path(source)
    _check_root(path, roots)
    if not rest.strip():
        return Capture(path, None, source)
    match = _OP_RE.match(rest)
    if not match or " ".join(match[1].split()) != "matches":
        raise ConditionError(f'a capture is a path, optionally with matches "regex": {source!r}')
    value_text = rest[match.end() :].strip()
    if not value_text:
        raise ConditionError(f"matches needs a quoted regular expression in {source!r}")
    value = _parse_value(value_text, source, regex=True)
    if not isinstance(value, str):
        raise ConditionError(f"a capture's regular expression cannot use ${{...}}: {source!r}")
    return Capture(path, _compile(value, source), source)


def expand(text: str, variables: Mapping[str, Any]) -> str:
    """Replace ${name} with captured values; unknown names are left as they are."""
    if "${" not in text:
        return text
    return _VAR_RE.sub(lambda m: _to_text(variables[m[1]]) if m[1] in variables else m[0], text)


def variables_in(text: str) -> list[str]:
    return _VAR_RE.findall(text)


# -- parsing ---------------------------------------------------------------------------------


def _parse_path(source: str) -> tuple[Path, str]:
    text = source
    count = False
    if text.startswith("len("):
        count = True
        text = text[4:].lstrip()
    ident = _IDENT_RE.match(text)
    if not ident:
        raise ConditionError(
            f"expected a name such as status, body or json at the start of {source!r}"
        )
    root = ident[0]
    pos = ident.end()
    parts: list[str | int] = []
    while True:
        seg = _SEGMENT_RE.match(text, pos)
        if not seg:
            break
        if seg[1] is not None:
            parts.append(seg[1])
        elif seg[2] is not None:
            parts.append(int(seg[2]))
        else:
            try:
                parts.append(json.loads(f'"{seg[3]}"'))
            except ValueError:
                raise ConditionError(
                    f"cannot read the key [{seg[3]!r}] in {source!r} (write a backslash as \\\\)"
                ) from None
        pos = seg.end()
    path_text = text[:pos]
    rest = text[pos:]
    if count:
        rest = rest.lstrip()
        if not rest.startswith(")"):
            raise ConditionError(f"missing ')' after len({path_text} in {source!r}")
        rest = rest[1:]
        path_text = f"len({path_text})"
    if root == "cert" and parts[:1] == ["expires_in"]:
        root, parts = "cert.expires_in", parts[1:]
    if rest and not rest[0].isspace() and not count and rest[0] not in _SYMBOL_OP_START:
        raise ConditionError(f"unexpected {rest[:10]!r} after {path_text!r} in {source!r}")
    return Path(root, tuple(parts), count, path_text), rest


def _operator_expected(path: Path, rest: str, source: str) -> str:
    given = rest.strip()
    for wrong, right in (("=>", ">="), ("=<", "<="), ("=", "==")):
        if given.startswith(wrong):
            return f"use {right!r} rather than {wrong!r} after {path.text!r} in {source!r}"
    return (
        f"expected an operator (==, !=, <, <=, >, >=, in, contains, matches, exists) "
        f"after {path.text!r} in {source!r}"
    )


def _check_root(path: Path, roots: Collection[str] | None) -> None:
    if roots is None:
        return
    root = "cert" if path.root == "cert.expires_in" else path.root
    if root not in roots:
        allowed = ", ".join(sorted(roots))
        raise ConditionError(f"unknown field {path.root!r} here; this check can test: {allowed}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number here")


def _parse_value(text: str, source: str, *, regex: bool = False) -> Any:
    var = _VAR_RE.fullmatch(text)
    if var:
        return VarRef(var[1])
    if regex:
        return _regex_value(text, source)
    if _DURATION_LITERAL_RE.match(text):
        try:
            return parse_duration_ms(text)
        except ValueError as error:
            raise ConditionError(f"{error} in {source!r}") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        single = _SINGLE_QUOTED_RE.fullmatch(text)
        if single:
            value = single[1]
        elif text[:1] in "[{\"'":
            detail = f" ({error.msg})" if isinstance(error, json.JSONDecodeError) else ""
            raise ConditionError(f"cannot read the value {text!r}{detail} in {source!r}") from None
        else:
            value = text  # a bare word such as `reply contains pong` is a string
    if isinstance(value, str) and _VAR_RE.search(value):
        return Template(value)
    return value


def _regex_value(text: str, source: str) -> str | Template:
    """The regular expression after `matches`: quoted text as written, or a bare word."""
    quoted = _DOUBLE_QUOTED_RE.fullmatch(text) or _SINGLE_QUOTED_RE.fullmatch(text)
    if quoted:
        pattern = quoted[1]
    elif text[:1] in "\"'":
        raise ConditionError(f"unterminated quoted regular expression {text!r} in {source!r}")
    else:
        pattern = text  # a bare regular expression such as ^OK$
    if _VAR_RE.search(pattern):
        _compile(_VAR_RE.sub("x", pattern), source)
        return Template(pattern, regex=True)
    return pattern


def _check_value(path: Path, op: Op, value: Any, value_text: str, source: str) -> None:
    if isinstance(value, VarRef):
        if op in (Op.MATCHES, Op.NOT_MATCHES):
            raise ConditionError(
                f"{op.value!r} needs a quoted regular expression in {source!r}; "
                f'a captured value goes inside it as text: {op.value} "^${{{value.name}}}$"'
            )
        return
    if op in (Op.IN, Op.NOT_IN) and not isinstance(value, list):
        raise ConditionError(f"{op.value!r} needs a list such as [200, 204] in {source!r}")
    if op in _ORDERING and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConditionError(f"{op.value!r} compares numbers or durations in {source!r}")
    if (
        path.root == "cert.expires_in"
        and not path.count
        and (op not in (Op.EQ, Op.NE, *_ORDERING) or not _DURATION_LITERAL_RE.match(value_text))
    ):
        raise ConditionError(f"compare cert.expires_in with a duration such as 14d: {source!r}")


def _compile(value: Any, source: str) -> re.Pattern[str]:
    pattern = value.text if isinstance(value, Template) else value
    try:
        return _regex(pattern)
    except _REGEX_ERRORS as error:
        raise ConditionError(
            f"invalid regular expression {pattern!r} ({error}) in {source!r}"
        ) from None


_REGEX_ERRORS = (re.error, OverflowError, RecursionError)


def _regex(pattern: str) -> re.Pattern[str]:
    """Compile, refusing what Python warns may change meaning (such as a nested set `[[a]`)."""
    compiled, warning = _compiled(pattern)
    if warning:
        raise re.error(f"ambiguous: {warning}")
    return compiled


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> tuple[re.Pattern[str], str]:
    # re warns only the first time it compiles a pattern, so the warning is remembered here
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = re.compile(pattern)
    found = [w for w in caught if issubclass(w.category, FutureWarning | DeprecationWarning)]
    return compiled, str(found[0].message) if found else ""


# -- judging ---------------------------------------------------------------------------------


def _step(value: Any, part: str | int, path: Path) -> Any:
    if isinstance(value, Mapping):
        if isinstance(part, str):
            if part in value:
                return value[part]
            if path.root == "header":  # header names are case-insensitive
                lowered = part.lower()
                for key, item in value.items():
                    if isinstance(key, str) and key.lower() == lowered:
                        return item
        elif str(part) in value:
            return value[str(part)]
        raise Missing(f"no key {part!r}")
    if isinstance(value, list):
        try:
            return value[int(part)]
        except (ValueError, IndexError):
            raise Missing(f"no item [{part}] in a list of {len(value)}") from None
    raise Missing(f"{type(value).__name__} has no {part!r}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER_RE.match(value):
        return float(value)
    return None


def _equal(actual: Any, expected: Any) -> bool:
    """Equal, where a number equals its decimal text ("42" == 42) but never a boolean."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float) or isinstance(actual, int | float):
        left, right = _number(actual), _number(expected)
        return left is not None and right is not None and left == right
    return bool(actual == expected)


def _judge(op: Op, actual: Any, expected: Any) -> bool:
    if op is Op.EQ:
        return _equal(actual, expected)
    if op is Op.NE:
        return not _equal(actual, expected)
    if op in _ORDERING:
        left, right = _number(actual), _number(expected)
        if left is None or right is None:
            raise TypeError("not a number")
        if op is Op.LT:
            return left < right
        if op is Op.LE:
            return left <= right
        if op is Op.GT:
            return left > right
        return left >= right
    if op in (Op.IN, Op.NOT_IN):
        if not isinstance(expected, list):
            raise TypeError("the value is not a list")
        found = any(_equal(actual, item) for item in expected)
        return found if op is Op.IN else not found
    if op in (Op.CONTAINS, Op.NOT_CONTAINS):
        found = _contains(actual, expected)
        return found if op is Op.CONTAINS else not found
    if op in (Op.MATCHES, Op.NOT_MATCHES):
        text = actual if isinstance(actual, str) else _to_text(actual)
        pattern = expected if isinstance(expected, re.Pattern) else re.compile(str(expected))
        found = pattern.search(text) is not None
        return found if op is Op.MATCHES else not found
    raise TypeError(f"unsupported operator {op}")  # pragma: no cover


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return _to_text(expected) in actual
    if isinstance(actual, bytes):
        return _to_text(expected).encode() in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, Mapping):
        return _to_text(expected) in actual
    if actual is None:
        return False
    raise TypeError(f"cannot search in {_kind(actual)}")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.dumps(value, separators=(",", ":"))


def _show(value: Any, limit: int = 80) -> str:
    text = (
        json.dumps(value, ensure_ascii=False, default=str)
        if not isinstance(value, bytes)
        else repr(value)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure(condition: Condition, actual: Any, expected: Any) -> str:
    op = condition.op
    name = condition.path.text
    shown = expected.pattern if isinstance(expected, re.Pattern) else expected
    if op in (Op.CONTAINS, Op.MATCHES) and isinstance(actual, str | bytes):
        verb = "contain" if op is Op.CONTAINS else "match"
        return f"{name} does not {verb} {_show(shown)}"
    if op in (Op.NOT_CONTAINS, Op.NOT_MATCHES) and isinstance(actual, str | bytes):
        verb = "contains" if op is Op.NOT_CONTAINS else "matches"
        return f"{name} {verb} {_show(shown)}"
    if condition.path.root in DURATION_ROOTS and not condition.path.count:
        number = _number(actual)
        if number is not None and isinstance(shown, int | float):
            expected_text = format_duration_ms(shown)
            return f"{name} is {format_duration_ms(number)}, expected {op.value} {expected_text}"
    return f"{name} is {_show(actual)}, expected {op.value} {_show(shown)}"
