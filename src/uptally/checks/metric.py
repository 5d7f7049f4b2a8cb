"""The `metric` check: read one number (a Prometheus query or a JSON field) and judge it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from uptally.checks.base import CheckContext, CheckFailed, CheckResult, ErrorCode
from uptally.checks.http import parse_json
from uptally.checks.httpclient import fetch
from uptally.checks.judge import judge
from uptally.conditions import ConditionError, Facts, Missing, parse_capture
from uptally.config.schema import MetricMonitor


async def run(spec: MetricMonitor, ctx: CheckContext) -> CheckResult:
    url = spec.url
    if spec.source == "prometheus":
        url = f"{url.rstrip('/')}/api/v1/query?{urlencode({'query': spec.query})}"
    started = time.perf_counter()
    try:
        response = await fetch(
            url,
            headers=dict(spec.headers),
            user_agent=ctx.user_agent,
            deadline=ctx.deadline,
            verify_tls=spec.verify_tls,
        )
        if response.status != 200:
            reason = (
                _prometheus_error(_json_or_none(response.body))
                if spec.source == "prometheus"
                else None
            )
            if reason:  # e.g. 400 bad_data for a query that does not parse
                raise CheckFailed(
                    ErrorCode.STATUS, f"Prometheus answered HTTP {response.status}: {reason}"
                )
            raise CheckFailed(ErrorCode.STATUS, f"HTTP status {response.status} from {url}")
        document = parse_json(response.body)
        value = (
            _prometheus_value(document, spec.combine)
            if spec.source == "prometheus"
            else _json_value(spec, document)
        )
    except CheckFailed as failed:
        return CheckResult.failure(failed.code, failed.message, _ms(started))
    except Missing as missing:
        return CheckResult.failure(ErrorCode.ASSERTION, f"no value: {missing}", _ms(started))
    latency = response.ms_since_opened()
    return judge(
        spec.expect, Facts({"value": value, "latency": latency}), latency, response.timings
    )


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _prometheus_error(document: Any) -> str | None:
    """Prometheus' own words from an error answer: `errorType: error` (None if not one)."""
    if not isinstance(document, dict) or not document.get("error"):
        return None
    kind = document.get("errorType")
    return f"{kind}: {document['error']}" if kind else str(document["error"])


def _prometheus_value(document: Any, combine: str | None) -> float:
    if not isinstance(document, dict) or document.get("status") != "success":
        error = _prometheus_error(document)
        raise CheckFailed(
            ErrorCode.PROTOCOL, f"Prometheus query failed: {error or 'unexpected answer'}"
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise CheckFailed(ErrorCode.PROTOCOL, "Prometheus answered without data")
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind in ("scalar", "string"):
            return float(result[1])  # type: ignore[index]
        if kind == "vector" and isinstance(result, list):
            return _one(result, [float(series["value"][1]) for series in result], combine)
        if kind == "matrix" and isinstance(result, list):
            # the latest sample of each series
            latest = [float(series["values"][-1][1]) for series in result if series["values"]]
            return _one(result, latest, combine)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        pass
    raise CheckFailed(
        ErrorCode.PROTOCOL, f"unexpected Prometheus result ({kind}): {str(result)[:80]}"
    )


_COMBINE: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "max": max,
    "sum": math.fsum,
    "avg": lambda values: math.fsum(values) / len(values),
}


def _one(series: list[Any], values: list[float], combine: str | None) -> float:
    """The one number of a result: its only series, or several combined as the monitor says."""
    if not values:
        raise Missing("the query returned no samples")
    if len(values) > 1 and combine is None:
        labels = ", ".join(_labels(s.get("metric")) for s in series[:3])
        more = ", …" if len(series) > 3 else ""
        raise CheckFailed(
            ErrorCode.ASSERTION,
            f"the query returned {len(series)} series ({labels}{more}): aggregate them in "
            "the query (e.g. sum(…)) or set combine: min | max | sum | avg",
        )
    return _COMBINE[combine or "min"](values)


def _labels(metric: Any) -> str:
    if not isinstance(metric, dict) or not metric:
        return "{}"
    name = str(metric.get("__name__", ""))
    rest = ",".join(f'{k}="{v}"' for k, v in metric.items() if k != "__name__")
    return f"{name}{{{rest}}}"


def _json_value(spec: MetricMonitor, document: Any) -> Any:
    try:
        capture = parse_capture(spec.path or "json", roots={"json"})
    except ConditionError as error:  # validated with the config; kept for API-made monitors
        raise CheckFailed(ErrorCode.ASSERTION, str(error)) from None
    return capture.take(Facts({"json": document}))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
