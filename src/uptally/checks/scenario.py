"""The `scenario` check: ordered steps of other kinds under one deadline, sharing captures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel

from uptally.checks import dns, http, jsonrpc, tcp
from uptally.checks.base import CheckContext, CheckResult, ErrorCode, StepTiming
from uptally.checks.judge import expand_all
from uptally.conditions import expand
from uptally.config.schema import ScenarioMonitor

_STEPS: dict[str, Callable[[Any, CheckContext], Awaitable[CheckResult]]] = {
    "http": http.run,
    "tcp": tcp.run,
    "jsonrpc": jsonrpc.run,
    "dns": dns.run,
}
M = TypeVar("M", bound=BaseModel)
_TEMPLATED = ("url", "body", "host", "send", "server_name")


async def run(spec: ScenarioMonitor, ctx: CheckContext) -> CheckResult:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    variables: dict[str, Any] = dict(ctx.variables)
    timings: list[StepTiming] = []
    captured: dict[str, Any] = {}
    for number, step in enumerate(spec.steps, 1):
        label = f"step {number}" + (f" ({step.name})" if step.name else f" ({step.kind})")
        deadline = ctx.deadline
        if step.timeout is not None:
            deadline = min(deadline, loop.time() + step.timeout / 1000)
        if loop.time() >= ctx.deadline:
            return CheckResult.failure(
                ErrorCode.TIMEOUT,
                f"the scenario deadline passed before {label}",
                _ms(started),
                tuple(timings),
            )
        mark = time.perf_counter()
        result = await _STEPS[step.kind](
            with_variables(step, variables), replace(ctx, deadline=deadline, variables=variables)
        )
        timings.append(StepTiming(step.name or f"step {number}", _ms(mark)))
        if not result.ok:
            return CheckResult(
                False, _ms(started), result.error, f"{label}: {result.message}", tuple(timings)
            )
        variables.update(result.captured)
        captured.update(result.captured)
    return CheckResult(True, _ms(started), None, "", tuple(timings), captured)


def with_variables(step: M, variables: dict[str, Any]) -> M:
    """The step with ${name} placeholders in its strings replaced by captured values."""
    if not variables:
        return step
    update: dict[str, Any] = {}
    for name in _TEMPLATED:
        value = getattr(step, name, None)
        if isinstance(value, str) and "${" in value:
            update[name] = expand(value, variables)
    headers = getattr(step, "headers", None)
    if headers and any("${" in value for value in headers.values()):
        update["headers"] = {key: expand(value, variables) for key, value in headers.items()}
    json_body = getattr(step, "json_body", None)
    if json_body is not None:
        update["json_body"] = expand_all(json_body, variables)
    return step.model_copy(update=update) if update else step


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
