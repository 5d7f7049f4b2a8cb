"""The `http` check: one request (redirects followed) judged on status, body, JSON, headers, TLS."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from uptally.checks.base import CheckContext, CheckFailed, CheckResult
from uptally.checks.httpclient import HttpResponse, fetch
from uptally.checks.judge import captures_of, judge
from uptally.conditions import Facts, Missing, parse_condition
from uptally.config.schema import HttpMonitor, HttpStep

DEFAULT_EXPECT = (parse_condition("status < 400"),)


async def run(spec: HttpMonitor | HttpStep, ctx: CheckContext) -> CheckResult:
    body: bytes | None = spec.body.encode() if spec.body is not None else None
    headers = dict(spec.headers)
    if spec.json_body is not None:
        body = json.dumps(spec.json_body).encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    try:
        response = await fetch(
            spec.url,
            method=spec.method,
            headers=headers,
            body=body,
            user_agent=ctx.user_agent,
            deadline=ctx.deadline,
            verify_tls=spec.verify_tls,
            follow_redirects=spec.follow_redirects,
            max_redirects=spec.max_redirects,
            max_body=spec.max_body,
        )
    except CheckFailed as failed:
        return CheckResult.failure(failed.code, failed.message, _ms_since(started))
    latency = response.ms_since_opened()
    return judge(
        spec.expect or DEFAULT_EXPECT,
        response_facts(response, latency),
        latency,
        response.timings,
        ctx.variables,
        captures_of(spec),
    )


def response_facts(response: HttpResponse, latency_ms: float, **extra: Any) -> Facts:
    sources: dict[str, Callable[[], Any] | Any] = {
        "status": response.status,
        "latency": latency_ms,
        "header": response.headers,
        "body": response.text,
        "json": lambda: parse_json(response.body),
        "cert": lambda: cert_facts(response),
        "cert.expires_in": lambda: cert_facts(response)["expires_in"],
        **extra,
    }
    return Facts(sources)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Missing("the body is not valid JSON") from None


def cert_facts(response: HttpResponse) -> dict[str, Any]:
    not_after = response.cert_not_after
    if not_after is None:
        raise Missing("no TLS certificate (not https)")
    remaining = (not_after - datetime.now(UTC)).total_seconds() * 1000
    return {"expires_in": remaining, "not_after": not_after.isoformat()}


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
