"""The `tcp` check: connect (optionally TLS), then a conversation of sends and expected replies."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from uptally.checks import net
from uptally.checks.base import CheckContext, CheckFailed, CheckResult, ErrorCode, StepTiming
from uptally.checks.judge import captures_of, judge
from uptally.conditions import Capture, Condition, Facts, Missing, Op, expand
from uptally.config.schema import TcpMonitor, TcpStep


async def run(spec: TcpMonitor | TcpStep, ctx: CheckContext) -> CheckResult:
    exchanges = [(x.send, x.expect, x.capture) for x in spec.conversation]
    captures = dict(captures_of(spec) or {})
    if spec.send is not None or spec.expect or captures:
        exchanges.append((spec.send, spec.expect, captures))
    # The latency counts from the moment the socket is opened: resolving the name (through a
    # thread) and waiting for a turn of a busy event loop before it are not the target's time.
    began = started = time.perf_counter()
    timings: list[StepTiming] = []
    variables: dict[str, Any] = dict(ctx.variables)
    captured: dict[str, Any] = {}
    writer: asyncio.StreamWriter | None = None
    phase = f"connecting to {spec.host}:{spec.port}"
    progress: list[str] = []  # the latest unmet expectation, for the timeout message
    try:
        async with asyncio.timeout_at(ctx.deadline):
            addresses = await net.resolve(spec.host, spec.port)
            started = time.perf_counter()
            timings.append(StepTiming("dns", (started - began) * 1000))
            reader, writer = await _connect(spec, addresses)
            timings.append(StepTiming("connect", _ms_since(started)))
            cert_der = None
            if spec.tls:
                phase = f"in the TLS handshake with {spec.host}:{spec.port}"
                mark = time.perf_counter()
                cert_der = await _start_tls(spec, writer)
                timings.append(StepTiming("tls", _ms_since(mark)))
            for number, (send, expect, capture) in enumerate(exchanges, 1):
                mark = time.perf_counter()
                label = f"exchange {number}" if len(exchanges) > 1 else "reply"
                if send is not None:
                    phase = f"sending ({label})"
                    writer.write(expand(send, variables).encode())
                    await writer.drain()
                phase = f"waiting for the {label}"
                result = await _await_reply(
                    reader,
                    expect,
                    capture,
                    variables,
                    cert_der,
                    spec.max_reply,
                    started,
                    progress,
                )
                timings.append(StepTiming(label, _ms_since(mark)))
                if not result.ok:
                    prefix = f"{label}: " if len(exchanges) > 1 else ""
                    return CheckResult(
                        False,
                        _ms_since(started),
                        result.error,
                        prefix + result.message,
                        tuple(timings),
                    )
                variables.update(result.captured)
                captured.update(result.captured)
    except TimeoutError:
        elapsed = time.perf_counter() - began
        detail = f"; {progress[-1]}" if progress else ""
        return CheckResult.failure(
            ErrorCode.TIMEOUT,
            f"timed out after {elapsed:.3g}s {phase}{detail}",
            _ms_since(started),
            tuple(timings),
        )
    except CheckFailed as failed:
        return CheckResult.failure(failed.code, failed.message, _ms_since(started), tuple(timings))
    except ssl.SSLError as error:  # after the handshake: a broken TLS record
        return CheckResult.failure(
            ErrorCode.TLS,
            f"TLS error {phase}: {net.tls_reason(error)}",
            _ms_since(started),
            tuple(timings),
        )
    except OSError as error:  # reset or broken pipe once connected
        reason = error.strerror or str(error) or type(error).__name__
        return CheckResult.failure(
            ErrorCode.CLOSED,
            f"connection lost {phase}: {reason}",
            _ms_since(started),
            tuple(timings),
        )
    finally:
        if writer is not None:
            writer.transport.abort()
    return CheckResult(True, _ms_since(started), None, "", tuple(timings), captured)


async def _connect(
    spec: TcpMonitor | TcpStep, addresses: list[tuple[int, str]]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=max(spec.max_reply, 1024), loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = await net.connect(lambda: protocol, addresses, spec.host, spec.port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def _start_tls(spec: TcpMonitor | TcpStep, writer: asyncio.StreamWriter) -> bytes | None:
    with net.tls_failures(spec.host):
        await writer.start_tls(
            net.tls_context(spec.verify_tls), server_hostname=spec.server_name or spec.host
        )
    ssl_object = writer.get_extra_info("ssl_object")
    return ssl_object.getpeercert(binary_form=True) if ssl_object else None


async def _await_reply(
    reader: asyncio.StreamReader,
    expect: list[Condition],
    capture: dict[str, Capture],
    variables: dict[str, Any],
    cert_der: bytes | None,
    max_reply: int,
    started: float,
    progress: list[str],
) -> CheckResult:
    """Read until every condition holds (early success), the peer closes, or the cap is hit.

    Conditions that cannot come true by reading more (on the certificate, or an upper bound
    on latency) fail the exchange at once.
    """
    if not expect and not capture:
        return CheckResult(True, _ms_since(started))
    others = [condition for condition in expect if _settled(condition)]
    on_reply = [condition for condition in expect if not _settled(condition)]
    reply = bytearray()
    progress.clear()
    while True:
        facts = _facts(bytes(reply), started, cert_der)
        result = judge(others, facts, _ms_since(started), variables=variables)
        if not result.ok:
            return result
        result = judge(on_reply, facts, _ms_since(started), variables=variables, captures=capture)
        if result.ok:
            return result
        seen = f" (received {_sample(reply)})" if reply else " (received nothing)"
        progress[:] = [f"last: {result.message}{seen}"]
        if len(reply) >= max_reply:
            return CheckResult.failure(
                ErrorCode.BODY_TOO_LARGE,
                f"reply reached max_reply ({max_reply} bytes) and still {result.message}",
            )
        chunk = await reader.read(max_reply - len(reply))
        if not chunk:
            if not reply:
                return CheckResult.failure(
                    ErrorCode.CLOSED, f"connection closed with no reply; {result.message}"
                )
            return CheckResult.failure(
                ErrorCode.ASSERTION,
                f"connection closed; {result.message} (received {_sample(reply)})",
            )
        reply.extend(chunk)


def _settled(condition: Condition) -> bool:
    """True for a condition that waiting for more of the reply cannot make hold."""
    if condition.root == "latency":
        return condition.op in (Op.LT, Op.LE) and not condition.path.count
    return condition.root != "reply"


def _sample(reply: bytearray, limit: int = 60) -> str:
    text = repr(bytes(reply[:limit]).decode("utf-8", "replace"))
    more = f"… {len(reply)} bytes" if len(reply) > limit else ""
    return text + more


def _facts(reply: bytes, started: float, cert_der: bytes | None) -> Facts:
    def cert_expires_in() -> float:
        if not cert_der:
            raise Missing("no TLS certificate (tls is off)")
        not_after = x509.load_der_x509_certificate(cert_der).not_valid_after_utc
        return (not_after - datetime.now(UTC)).total_seconds() * 1000

    return Facts(
        {
            "reply": reply.decode("utf-8", "replace"),
            "latency": _ms_since(started),
            "cert.expires_in": cert_expires_in,
        }
    )


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
