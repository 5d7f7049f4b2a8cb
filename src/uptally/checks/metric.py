"""The `metric` check: read one number (a Prometheus query or a JSON field) and judge it."""

from __future__ import annotations

import time
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
            raise CheckFailed(ErrorCode.STATUS, f"HTTP status {response.status} from {url}")
        document = parse_json(response.body)
        value = (
            _prometheus_value(document)
            if spec.source == "prometheus"
            else _json_value(spec, document)
        )
    except CheckFailed as failed:
        return CheckResult.failure(failed.code, failed.message, _ms(started))
    except Missing as missing:
        return CheckResult.failure(ErrorCode.ASSERTION, f"no value: {missing}", _ms(started))
    latency = _ms(started)
    return judge(
        spec.expect, Facts({"value": value, "latency": latency}), latency, response.timings
    )


def _prometheus_value(document: Any) -> float:
    if not isinstance(document, dict) or document.get("status") != "success":
        error = document.get("error") if isinstance(document, dict) else None
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
            if not result:
                raise Missing("the query returned no samples")
            return float(result[0]["value"][1])
        if kind == "matrix" and isinstance(result, list):
            if not result or not result[0].get("values"):
                raise Missing("the query returned no samples")
            return float(result[0]["values"][-1][1])  # the latest sample of the first series
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        pass
    raise CheckFailed(
        ErrorCode.PROTOCOL, f"unexpected Prometheus result ({kind}): {str(result)[:80]}"
    )


def _json_value(spec: MetricMonitor, document: Any) -> Any:
    try:
        capture = parse_capture(spec.path or "json", roots={"json"})
    except ConditionError as error:  # validated with the config; kept for API-made monitors
        raise CheckFailed(ErrorCode.ASSERTION, str(error)) from None
    return capture.take(Facts({"json": document}))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
