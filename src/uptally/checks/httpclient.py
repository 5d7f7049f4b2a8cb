"""A lean HTTP/1.1 client for probing: one fresh connection per request, hard deadline, capped body.

Built on asyncio protocols and the httptools (llhttp) parser because a monitoring probe spends
most of its time opening connections; aiohttp's per-request machinery costs several times more.
Everything a check needs is here: redirects, TLS with or without verification, the peer
certificate, gzip/deflate, and a clear error code for every way a target can misbehave.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from urllib.parse import urljoin, urlsplit

import httptools
from cryptography import x509

from uptally.checks.base import CheckFailed, ErrorCode, StepTiming

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_HEADER_BYTES = 64 << 10


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    url: str
    redirects: int
    peer_cert_der: bytes | None
    timings: list[StepTiming] = field(default_factory=list)

    @property
    def cert_not_after(self) -> datetime | None:
        if not self.peer_cert_der:
            return None
        return x509.load_der_x509_certificate(self.peer_cert_der).not_valid_after_utc

    def text(self) -> str:
        charset = "utf-8"
        content_type = self.headers.get("content-type", "")
        if "charset=" in content_type:
            charset = (
                content_type.split("charset=", 1)[1].split(";")[0].strip().strip('"') or "utf-8"
            )
        try:
            return self.body.decode(charset, "replace")
        except LookupError:
            return self.body.decode("utf-8", "replace")


@cache
def tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


async def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    user_agent: str,
    deadline: float,
    verify_tls: bool = True,
    follow_redirects: bool = True,
    max_redirects: int = 5,
    max_body: int = 1 << 20,
) -> HttpResponse:
    """Fetch `url`; raise CheckFailed with an error code when the exchange cannot complete."""
    seen = [url]
    timings: list[StepTiming] = []
    redirects = 0
    while True:
        response = await _exchange(
            url, method, headers or {}, body, user_agent, deadline, verify_tls, max_body, timings
        )
        location = response.headers.get("location")
        if not (follow_redirects and response.status in REDIRECT_STATUSES and location):
            response.redirects = redirects
            response.timings = timings
            return response
        redirects += 1
        next_url = urljoin(url, location)
        if redirects > max_redirects:
            raise CheckFailed(
                ErrorCode.REDIRECTS, f"more than {max_redirects} redirects (last to {next_url})"
            )
        if next_url in seen:
            chain = " → ".join([*seen[seen.index(next_url) :], next_url])
            raise CheckFailed(ErrorCode.REDIRECTS, f"redirect loop: {chain}")
        if not next_url.lower().startswith(("http://", "https://")):
            raise CheckFailed(
                ErrorCode.REDIRECTS, f"redirect to an unsupported address {next_url!r}"
            )
        seen.append(next_url)
        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
            method, body = ("HEAD" if method == "HEAD" else "GET"), None
        url = next_url


async def _exchange(
    url: str,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    user_agent: str,
    deadline: float,
    verify_tls: bool,
    max_body: int,
    timings: list[StepTiming],
) -> HttpResponse:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise CheckFailed(ErrorCode.PROTOCOL, f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise CheckFailed(ErrorCode.PROTOCOL, f"invalid port in {url!r}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    phase = "resolving"
    started = time.perf_counter()
    protocol = _ResponseProtocol(loop, max_body, method == "HEAD")
    transport: asyncio.BaseTransport | None = None
    try:
        async with asyncio.timeout_at(deadline):
            addresses = await _resolve(loop, host, port)
            mark = time.perf_counter()
            timings.append(StepTiming("dns", (mark - started) * 1000))
            phase = "connecting"
            transport = await _connect(loop, protocol, addresses, host, port)
            now = time.perf_counter()
            timings.append(StepTiming("connect", (now - mark) * 1000))
            mark = now
            cert_der = None
            if scheme == "https":
                phase = "in the TLS handshake"
                transport = await _start_tls(loop, transport, protocol, host, verify_tls)
                ssl_object = transport.get_extra_info("ssl_object")
                cert_der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
                now = time.perf_counter()
                timings.append(StepTiming("tls", (now - mark) * 1000))
                mark = now
            phase = "waiting for the response"
            transport.write(  # type: ignore[attr-defined]
                _request_bytes(method, target, parts.netloc, host, headers, body, user_agent)
            )
            await protocol.headers_done
            now = time.perf_counter()
            timings.append(StepTiming("ttfb", (now - mark) * 1000))
            mark = now
            phase = "reading the body"
            await protocol.done
            timings.append(StepTiming("body", (time.perf_counter() - mark) * 1000))
    except TimeoutError:
        elapsed = time.perf_counter() - started
        raise CheckFailed(
            ErrorCode.TIMEOUT, f"timed out after {elapsed:.3g}s {phase} ({url})"
        ) from None
    finally:
        if transport is not None:
            if protocol.complete:
                transport.close()
            else:
                transport.abort()  # type: ignore[attr-defined]
    content = protocol.body()
    encoding = protocol.headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate", "x-gzip"):
        content = _decompress(content, encoding, max_body)
    return HttpResponse(protocol.status, protocol.headers, content, url, 0, cert_der, timings)


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[int, str]]:
    try:
        ipaddress.ip_address(host)
        return [(socket.AF_INET6 if ":" in host else socket.AF_INET, host)]
    except ValueError:
        pass
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as error:
        raise CheckFailed(
            ErrorCode.DNS, f"cannot resolve {host}: {error.strerror or error}"
        ) from None
    if not infos:
        raise CheckFailed(ErrorCode.DNS, f"cannot resolve {host}: no addresses")
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def _connect(
    loop: asyncio.AbstractEventLoop,
    protocol: _ResponseProtocol,
    addresses: list[tuple[int, str]],
    host: str,
    port: int,
) -> asyncio.BaseTransport:
    last: OSError | None = None
    for _family, address in addresses:
        try:
            transport, _ = await loop.create_connection(lambda: protocol, address, port)
            return transport
        except ConnectionRefusedError as error:
            last = error
        except OSError as error:
            last = error
    if isinstance(last, ConnectionRefusedError):
        raise CheckFailed(ErrorCode.CONNECT_REFUSED, f"connection refused by {host}:{port}")
    reason = (last.strerror if last and last.strerror else str(last)) or "unreachable"
    raise CheckFailed(ErrorCode.CONNECT, f"cannot connect to {host}:{port}: {reason}")


async def _start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.BaseTransport,
    protocol: _ResponseProtocol,
    host: str,
    verify: bool,
) -> asyncio.BaseTransport:
    try:
        tls = await loop.start_tls(
            transport,  # type: ignore[arg-type]
            protocol,
            tls_context(verify),
            server_hostname=host,
        )
    except ssl.SSLCertVerificationError as error:
        raise CheckFailed(
            ErrorCode.TLS, f"TLS certificate of {host} rejected: {error.verify_message}"
        ) from None
    except ssl.SSLError as error:
        reason = error.reason or str(error)
        raise CheckFailed(ErrorCode.TLS, f"TLS handshake with {host} failed: {reason}") from None
    except (ConnectionError, OSError) as error:
        raise CheckFailed(
            ErrorCode.TLS, f"TLS handshake with {host} failed: {error or 'connection closed'}"
        ) from None
    if tls is None:
        raise CheckFailed(ErrorCode.TLS, f"TLS handshake with {host} failed: connection closed")
    return tls


def _request_bytes(
    method: str,
    target: str,
    netloc: str,
    host: str,
    headers: dict[str, str],
    body: bytes | None,
    user_agent: str,
) -> bytes:
    host_header = netloc.rsplit("@", 1)[-1]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    given = {name.lower() for name in headers}
    if "user-agent" not in given:
        lines.append(f"User-Agent: {user_agent}")
    if "accept" not in given:
        lines.append("Accept: */*")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    lines.extend(
        f"{name}: {value}" for name, value in headers.items() if name.lower() != "connection"
    )
    lines.append("Connection: close")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head + body if body else head


def _decompress(content: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        decoder = zlib.decompressobj(wbits)
        data = decoder.decompress(content, limit + 1)
        if len(data) > limit:
            raise CheckFailed(
                ErrorCode.BODY_TOO_LARGE, f"decompressed body is larger than {limit} bytes"
            )
        return data
    except zlib.error as error:
        raise CheckFailed(ErrorCode.PROTOCOL, f"invalid {encoding} body: {error}") from None


class _ResponseProtocol(asyncio.Protocol):
    __slots__ = (
        "_chunks",
        "_framed",
        "_head_bytes",
        "_head_only",
        "_max_body",
        "_parser",
        "_size",
        "complete",
        "done",
        "headers",
        "headers_done",
        "status",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int, head_only: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._max_body = max_body
        self._head_only = head_only
        self._chunks: list[bytes] = []
        self._size = 0
        self._head_bytes = 0
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self.headers: dict[str, str] = {}
        self.status = 0
        self.complete = False
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def _fail(self, code: ErrorCode, message: str) -> None:
        error = CheckFailed(code, message)
        for future in (self.headers_done, self.done):
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: only one of the two is awaited

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self.complete:
            return
        if not self.headers_done.done():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._fail(
                    ErrorCode.PROTOCOL, f"response headers larger than {MAX_HEADER_BYTES} bytes"
                )
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish()
        except httptools.HttpParserError as error:
            if not self.done.done():
                self._fail(
                    ErrorCode.PROTOCOL, f"invalid HTTP response: {_parser_reason(error, data)}"
                )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.complete:
            return
        if self.headers_done.done() and not self._framed and not self.headers_done.exception():
            self._finish()  # the body was delimited by closing the connection
            return
        detail = f": {exc}" if exc else ""
        if not self.headers_done.done():
            self._fail(
                ErrorCode.CLOSED, f"connection closed before the response headers arrived{detail}"
            )
        else:
            self._fail(
                ErrorCode.CLOSED, f"connection closed before the response body was complete{detail}"
            )

    def eof_received(self) -> bool | None:
        return None

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in ("content-length", "transfer-encoding"):
            self._framed = True
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if not self.headers_done.done():
            self.headers_done.set_result(None)
        if self._head_only or self.status in (204, 304):
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_body:
            self._chunks.clear()
            self._fail(
                ErrorCode.BODY_TOO_LARGE, f"response body is larger than {self._max_body} bytes"
            )
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.done.done():
            return
        self.complete = True
        if not self.headers_done.done():
            self.headers_done.set_result(None)
        self.done.set_result(None)


def _parser_reason(error: Exception, data: bytes) -> str:
    sample = data[:24]
    text = str(error) or type(error).__name__
    return f"{text} (received {sample!r})"
