"""Socket plumbing shared by the checks: resolve, connect and TLS, each failure with its error code.

Every function raises CheckFailed with a specific code (`dns`, `connect_refused`, `connect`,
`tls`) and a message naming the host, so that the http, jsonrpc, metric and tcp checks all
report the same way. None of them sets its own timeout: callers run them under their deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, lru_cache

from uptally.checks.base import CheckFailed, ErrorCode
from uptally.netguard import Guard

# Seconds to wait for the peer's close_notify when closing a TLS connection gracefully; the
# response is complete by then, so a peer that never answers must not keep the socket for 30 s.
TLS_SHUTDOWN_TIMEOUT = 2.0

# OpenSSL reasons that mean "the other side does not speak TLS at all".
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)


@cache
def tls_context(verify: bool, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


# Set while a check runs on someone else's behalf (a monitor body sent to the API): the
# addresses it may connect to, and what it was refused.
_gate: ContextVar[tuple[Guard, list[str]] | None] = ContextVar("uptally_check_guard", default=None)


@contextmanager
def guarded(guard: Guard | None) -> Iterator[list[str]]:
    """Within: checks connect only to addresses the SSRF guard permits (None: any); yields what
    it refused (a check that tries fails with `connect`, "refused by the SSRF guard: …")."""
    refused: list[str] = []
    if guard is None:
        yield refused
        return
    token = _gate.set((guard, refused))
    try:
        yield refused
    finally:
        _gate.reset(token)


def screen(host: str, addresses: list[str]) -> None:
    """CheckFailed unless the guard in effect (if any) permits every address of `host`."""
    gate = _gate.get()
    if gate is None:
        return
    guard, refused = gate
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not guard.permits(host, ip):
            problem = f"{host}: {ip} is not a public address"
            refused.append(problem)
            raise CheckFailed(ErrorCode.CONNECT, f"refused by the SSRF guard ({problem})")


async def resolve(host: str, port: int) -> list[tuple[int, str]]:
    """The addresses of `host` as (family, address), in the resolver's order (only those the
    SSRF guard permits, when one is in effect: see `guarded`)."""
    found = await _resolve(host, port)
    screen(host, [address for _, address in found])
    return found


async def _resolve(host: str, port: int) -> list[tuple[int, str]]:
    family = _literal_family(host)
    if family is not None:
        return [(family, host)]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as error:
        raise CheckFailed(
            ErrorCode.DNS, f"cannot resolve {host}: {error.strerror or error}"
        ) from None
    except (UnicodeError, ValueError) as error:  # e.g. an empty or over-long label
        raise CheckFailed(ErrorCode.DNS, f"invalid host name {host!r}: {error}") from None
    if not infos:
        raise CheckFailed(ErrorCode.DNS, f"cannot resolve {host}: no addresses")
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


@lru_cache(maxsize=16384)
def _literal_family(host: str) -> int | None:
    """The address family if `host` is an IP address literal (cached: parsing it is slow)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def connect(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    addresses: list[tuple[int, str]],
    host: str,
    port: int,
) -> asyncio.Transport:
    """A TCP connection to the first address that accepts one."""
    loop = asyncio.get_running_loop()
    errors: list[OSError] = []
    for _family, address in addresses:
        try:
            transport, _ = await loop.create_connection(protocol_factory, address, port)
        except OSError as error:
            errors.append(error)
            continue
        return transport
    if errors and all(isinstance(error, ConnectionRefusedError) for error in errors):
        raise CheckFailed(ErrorCode.CONNECT_REFUSED, f"connection refused by {host}:{port}")
    last = next(
        (error for error in errors if not isinstance(error, ConnectionRefusedError)),
        errors[-1] if errors else None,
    )
    reason = (last.strerror if last and last.strerror else str(last or "")) or "unreachable"
    raise CheckFailed(ErrorCode.CONNECT, f"cannot connect to {host}:{port}: {reason}")


async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    host: str,
    verify: bool,
    *,
    server_name: str | None = None,
    alpn: tuple[str, ...] = (),
) -> asyncio.Transport:
    """Upgrade `transport` to TLS; certificate and handshake failures become `tls` errors."""
    loop = asyncio.get_running_loop()
    with tls_failures(host):
        tls = await loop.start_tls(
            transport,  # type: ignore[arg-type]
            protocol,
            tls_context(verify, alpn),
            server_hostname=server_name or host,
            ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
        )
    if tls is None:
        raise CheckFailed(ErrorCode.TLS, f"TLS handshake with {host} failed: connection closed")
    return tls


@contextmanager
def tls_failures(host: str) -> Iterator[None]:
    """Turn what a TLS handshake with `host` raises into CheckFailed(TLS, <why>)."""
    try:
        yield
    except ssl.SSLCertVerificationError as error:
        raise CheckFailed(
            ErrorCode.TLS, f"TLS certificate of {host} rejected: {error.verify_message}"
        ) from None
    except ssl.SSLError as error:
        raise CheckFailed(
            ErrorCode.TLS, f"TLS handshake with {host} failed: {tls_reason(error)}"
        ) from None
    except OSError as error:  # reset or closed during the handshake
        detail = error.strerror or str(error) or "connection closed"
        raise CheckFailed(
            ErrorCode.TLS, f"TLS handshake with {host} failed: {detail} (does it speak TLS?)"
        ) from None


def tls_reason(error: ssl.SSLError) -> str:
    reason = error.reason or str(error)
    if reason in _NOT_TLS_REASONS:
        return f"{reason} (the port does not speak TLS; plain text instead?)"
    return reason
