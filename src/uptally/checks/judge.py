"""Judge a check's facts against its expectations and take its captures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from uptally.checks.base import CheckResult, ErrorCode, StepTiming
from uptally.conditions import Capture, Condition, Facts, Missing, expand

_STATUS_ROOTS = frozenset({"status"})


def captures_of(spec: object) -> Mapping[str, Capture] | None:
    """A scenario step's captures; monitors have none (read without pydantic's slow getattr)."""
    fields = getattr(spec, "__dict__", None)
    return fields.get("capture") if fields else None


def judge(
    conditions: Iterable[Condition],
    facts: Facts,
    latency_ms: float,
    timings: Sequence[StepTiming] = (),
    variables: Mapping[str, Any] | None = None,
    captures: Mapping[str, Capture] | None = None,
) -> CheckResult:
    """Up if every condition holds; otherwise down with the first failing condition's reason."""
    for condition in conditions:
        verdict = condition.evaluate(facts, variables)
        if not verdict.ok:
            code = ErrorCode.STATUS if condition.root in _STATUS_ROOTS else ErrorCode.ASSERTION
            return CheckResult(False, latency_ms, code, verdict.message, tuple(timings))
    captured: dict[str, Any] = {}
    for name, capture in (captures or {}).items():
        try:
            captured[name] = capture.take(facts)
        except Missing as missing:
            return CheckResult(
                False,
                latency_ms,
                ErrorCode.ASSERTION,
                f"cannot capture {name}: {missing}",
                tuple(timings),
            )
    return CheckResult(True, latency_ms, None, "", tuple(timings), captured)


def expand_all(value: Any, variables: Mapping[str, Any]) -> Any:
    """${name} replaced by captured values in every string inside a JSON-like value."""
    if isinstance(value, str):
        return expand(value, variables)
    if isinstance(value, list):
        return [expand_all(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: expand_all(item, variables) for key, item in value.items()}
    return value
