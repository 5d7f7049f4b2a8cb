"""The `jsonrpc` check: a JSON-RPC 2.0 call over HTTP POST (plain JSON or an MCP event stream)."""

from __future__ import annotations

import json
import time
from typing import Any

from uptally.checks.base import CheckContext, CheckFailed, CheckResult, ErrorCode
from uptally.checks.http import response_facts
from uptally.checks.httpclient import HttpResponse, fetch
from uptally.checks.judge import judge
from uptally.conditions import expand
from uptally.config.schema import JsonRpcMonitor, JsonRpcStep

REQUEST_ID = 1


async def run(spec: JsonRpcMonitor | JsonRpcStep, ctx: CheckContext) -> CheckResult:
    params = _expand(spec.params, ctx.variables) if ctx.variables else spec.params
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": REQUEST_ID, "method": spec.method}
    if params is not None:
        call["params"] = params
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    headers.update(spec.headers)
    started = time.perf_counter()
    try:
        response = await fetch(
            spec.url,
            method="POST",
            headers=headers,
            body=json.dumps(call).encode(),
            user_agent=ctx.user_agent,
            deadline=ctx.deadline,
            verify_tls=spec.verify_tls,
            max_body=spec.max_body,
        )
        latency = (time.perf_counter() - started) * 1000
        if not 200 <= response.status < 300:
            raise CheckFailed(ErrorCode.STATUS, f"HTTP status {response.status} from {spec.method}")
        message = _rpc_message(response)
    except CheckFailed as failed:
        return CheckResult.failure(
            failed.code, failed.message, (time.perf_counter() - started) * 1000
        )
    expects_error = any(condition.root == "error" for condition in spec.expect)
    if "error" in message and not expects_error:
        error = message["error"] if isinstance(message["error"], dict) else {}
        return CheckResult.failure(
            ErrorCode.JSONRPC_ERROR,
            f"JSON-RPC error {error.get('code')}: {error.get('message', message['error'])}",
            latency,
            tuple(response.timings),
        )
    facts = response_facts(
        response,
        latency,
        result=lambda: message.get("result"),
        error=lambda: message.get("error"),
        json=message,
    )
    return judge(
        spec.expect, facts, latency, response.timings, ctx.variables, getattr(spec, "capture", None)
    )


def _rpc_message(response: HttpResponse) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" in content_type:
        candidates = [
            line[5:].strip() for line in response.text().splitlines() if line.startswith("data:")
        ]
    else:
        candidates = [response.text()]
    for candidate in candidates:
        try:
            message = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == REQUEST_ID:
            if message.get("jsonrpc") != "2.0":
                raise CheckFailed(
                    ErrorCode.PROTOCOL, 'the answer is not JSON-RPC 2.0 (jsonrpc != "2.0")'
                )
            if "result" not in message and "error" not in message:
                raise CheckFailed(
                    ErrorCode.PROTOCOL, "the JSON-RPC answer has neither result nor error"
                )
            return message
    sample = response.text()[:60]
    raise CheckFailed(
        ErrorCode.PROTOCOL,
        f"no JSON-RPC answer to request {REQUEST_ID} in the response ({sample!r})",
    )


def _expand(value: Any, variables: Any) -> Any:
    if isinstance(value, str):
        return expand(value, variables)
    if isinstance(value, list):
        return [_expand(item, variables) for item in value]
    if isinstance(value, dict):
        return {key: _expand(item, variables) for key, item in value.items()}
    return value
