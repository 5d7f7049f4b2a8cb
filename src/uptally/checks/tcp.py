"""The `tcp` check: connect (optionally TLS), then a conversation of sends and expected replies."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from uptally.checks.base import CheckContext, CheckResult, ErrorCode, StepTiming
from uptally.checks.httpclient import tls_context
from uptally.checks.judge import judge
from uptally.conditions import Capture, Condition, Facts, Missing, expand
from uptally.config.schema import TcpMonitor, TcpStep


async def run(spec: TcpMonitor | TcpStep, ctx: CheckContext) -> CheckResult:
    exchanges = [(x.send, x.expect, x.capture) for x in spec.conversation]
    if spec.send is not None or spec.expect or getattr(spec, "capture", None):
        exchanges.append((spec.send, spec.expect, getattr(spec, "capture", {})))
    started = time.perf_counter()
    timings: list[StepTiming] = []
    variables: dict[str, Any] = dict(ctx.variables)
    captured: dict[str, Any] = {}
    writer: asyncio.StreamWriter | None = None
    phase = f"connecting to {spec.host}:{spec.port}"
    progress: list[str] = []  # the latest unmet expectation, for the timeout message
    try:
        async with asyncio.timeout_at(ctx.deadline):
            reader, writer, cert_der = await _open(spec, ctx)
            timings.append(StepTiming("connect", _ms_since(started)))
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
        elapsed = time.perf_counter() - started
        detail = f"; {progress[-1]}" if progress else ""
        return CheckResult.failure(
            ErrorCode.TIMEOUT,
            f"timed out after {elapsed:.3g}s {phase}{detail}",
            _ms_since(started),
            tuple(timings),
        )
    except ConnectionRefusedError:
        return CheckResult.failure(
            ErrorCode.CONNECT_REFUSED,
            f"connection refused by {spec.host}:{spec.port}",
            _ms_since(started),
        )
    except ssl.SSLCertVerificationError as error:
        return CheckResult.failure(
            ErrorCode.TLS,
            f"TLS certificate of {spec.host} rejected: {error.verify_message}",
            _ms_since(started),
        )
    except ssl.SSLError as error:
        return CheckResult.failure(
            ErrorCode.TLS,
            f"TLS handshake with {spec.host} failed: {error.reason or error}",
            _ms_since(started),
        )
    except OSError as error:
        code = (
            ErrorCode.DNS
            if "Name or service not known" in str(error) or "getaddrinfo" in str(error)
            else (ErrorCode.CONNECT)
        )
        return CheckResult.failure(code, f"{phase}: {error.strerror or error}", _ms_since(started))
    finally:
        if writer is not None:
            writer.transport.abort()
    return CheckResult(True, _ms_since(started), None, "", tuple(timings), captured)


async def _open(
    spec: TcpMonitor | TcpStep, ctx: CheckContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes | None]:
    context = tls_context(spec.verify_tls) if spec.tls else None
    reader, writer = await asyncio.open_connection(
        spec.host,
        spec.port,
        ssl=context,
        server_hostname=(spec.server_name or spec.host) if context else None,
        limit=max(spec.max_reply, 1024),
    )
    cert_der = None
    if context:
        ssl_object = writer.get_extra_info("ssl_object")
        cert_der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    return reader, writer, cert_der


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
    """Read until every condition holds (early success), the peer closes, or the cap is hit."""
    if not expect and not capture:
        return CheckResult(True, _ms_since(started))
    reply = bytearray()
    progress.clear()
    while True:
        facts = _facts(bytes(reply), started, cert_der)
        result = judge(expect, facts, _ms_since(started), variables=variables, captures=capture)
        if result.ok:
            return result
        progress[:] = [f"last: {result.message}"]
        if len(reply) >= max_reply:
            return CheckResult.failure(
                ErrorCode.BODY_TOO_LARGE, f"reply reached {max_reply} bytes; {result.message}"
            )
        chunk = await reader.read(max_reply - len(reply))
        if not chunk:
            return CheckResult.failure(
                ErrorCode.ASSERTION if reply else ErrorCode.CLOSED,
                f"connection closed{' with no reply' if not reply else ''}; {result.message}",
            )
        reply.extend(chunk)


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
