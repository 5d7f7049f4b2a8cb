"""The `jsonrpc` check: a JSON-RPC 2.0 call over HTTP POST (plain JSON or an MCP event stream)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from uptally.checks.base import CheckContext, CheckFailed, CheckResult, ErrorCode
from uptally.checks.http import response_facts
from uptally.checks.httpclient import HttpResponse, fetch
from uptally.checks.judge import captures_of, expand_all, judge
from uptally.config.schema import JsonRpcMonitor, JsonRpcStep
from uptally.redaction import Redactor

REQUEST_ID = 1
CLOSE_GRACE_S = 1.0
log = logging.getLogger(__name__)


async def run(spec: JsonRpcMonitor | JsonRpcStep, ctx: CheckContext) -> CheckResult:
    params = expand_all(spec.params, ctx.variables) if ctx.variables else spec.params
    call: dict[str, Any] = {"jsonrpc": "2.0", "id": REQUEST_ID, "method": spec.method}
    if params is not None:
        call["params"] = params
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    given = {name.lower() for name in spec.headers}
    headers = {name: value for name, value in headers.items() if name.lower() not in given}
    headers.update(expand_all(spec.headers, ctx.variables) if ctx.variables else spec.headers)
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
            until=_AnswerWatcher(),
        )
    except CheckFailed as failed:
        return CheckResult.failure(
            failed.code, failed.message, (time.perf_counter() - started) * 1000
        )
    try:
        return _judged(spec, ctx, response, started)
    finally:
        # A session this call opened (not one it was given). A scenario's steps may share
        # theirs, so a scenario ends it itself (an http step: DELETE with the header).
        session = response.headers.get("mcp-session-id")
        if session and isinstance(spec, JsonRpcMonitor) and "mcp-session-id" not in given:
            await _close_session(spec, ctx, headers, session)


async def _close_session(
    spec: JsonRpcMonitor, ctx: CheckContext, headers: dict[str, str], session: str
) -> None:
    """End the MCP session the call opened (a DELETE, as the spec asks of clients), so that
    a check every minute does not leave a server holding idle sessions."""
    loop = asyncio.get_running_loop()
    close = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "accept")}
    close["Mcp-Session-Id"] = session
    try:
        await fetch(
            spec.url,
            method="DELETE",
            headers=close,
            user_agent=ctx.user_agent,
            # not part of the check: a short grace if its deadline is (nearly) spent
            deadline=max(ctx.deadline, loop.time() + CLOSE_GRACE_S),
            verify_tls=spec.verify_tls,
            follow_redirects=False,
            max_body=4096,
        )
    except CheckFailed as failed:  # the server ends idle sessions itself in the end
        shown = Redactor()
        log.debug(
            "closing MCP session at %s failed: %s", shown.url(spec.url), shown.text(failed.message)
        )


def _judged(
    spec: JsonRpcMonitor | JsonRpcStep, ctx: CheckContext, response: HttpResponse, started: float
) -> CheckResult:
    try:
        latency = response.ms_since_opened()
        if not 200 <= response.status < 300:
            raise CheckFailed(ErrorCode.STATUS, f"HTTP status {response.status} from {spec.method}")
        message = _rpc_message(response)
    except CheckFailed as failed:
        return CheckResult.failure(
            failed.code, failed.message, (time.perf_counter() - started) * 1000
        )
    expects_error = any(condition.root == "error" for condition in spec.expect)
    if message.get("error") is not None and not expects_error:
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
    return judge(spec.expect, facts, latency, response.timings, ctx.variables, captures_of(spec))


class _AnswerWatcher:
    """Watches an event stream arrive piece by piece; true once our answer has come.

    An MCP server may keep the stream open after answering, so the check stops reading then.
    Only the unfinished last event is kept and rescanned, so a long stream costs linear time.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = bytearray()

    def __call__(self, headers: dict[str, str], piece: bytes) -> bool:
        if "text/event-stream" not in headers.get("content-type", ""):
            return False
        start = max(0, len(self._pending) - 3)  # a separator may straddle two pieces
        self._pending += piece
        end = 0
        for match in _EVENT_END.finditer(self._pending, start):
            end = match.end()
        if not end:
            return False
        complete = self._pending[:end].decode("utf-8", "replace")
        del self._pending[:end]
        return any(_is_answer(candidate) for candidate in _events(complete))


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\n\r\n|\r\n\n|\n\r\r")


def _is_answer(candidate: str) -> bool:
    try:
        message = json.loads(candidate)
    except ValueError:
        return False
    return _answers_us(message)


def _answers_us(message: Any) -> bool:
    if not isinstance(message, dict):
        return False
    ident = message.get("id")
    return ident == REQUEST_ID and not isinstance(ident, bool)


def _events(text: str) -> list[str]:
    """The data of each complete server-sent event (data: lines joined with newlines)."""
    events = []
    data: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:  # a blank line dispatches the event
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:  # the stream ended without the closing blank line
        events.append("\n".join(data))
    return events


def _rpc_message(response: HttpResponse) -> dict[str, Any]:
    content_type = response.headers.get("content-type", "")
    if "text/event-stream" in content_type:
        candidates = _events(response.text())
    else:
        candidates = [response.text()]
    for candidate in candidates:
        try:
            message = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(message, list):  # a batch answer: find ours
            message = next((item for item in message if _answers_us(item)), None)
        if _answers_us(message):
            if message.get("jsonrpc") != "2.0":
                raise CheckFailed(
                    ErrorCode.PROTOCOL, 'the answer is not JSON-RPC 2.0 (jsonrpc != "2.0")'
                )
            if "result" not in message and "error" not in message:
                raise CheckFailed(
                    ErrorCode.PROTOCOL, "the JSON-RPC answer has neither result nor error"
                )
            return message  # type: ignore[no-any-return]
    sample = response.text()[:60]
    raise CheckFailed(
        ErrorCode.PROTOCOL,
        f"no JSON-RPC answer to request {REQUEST_ID} in the response ({sample!r})",
    )
