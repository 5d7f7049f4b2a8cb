"""A lean HTTP/1.1 client for probing: one fresh connection per request, hard deadline, capped body.

Built on asyncio protocols and the httptools (llhttp) parser because a monitoring probe spends
most of its time opening connections; aiohttp's per-request machinery costs several times more.
Everything a check needs is here: redirects, TLS with or without verification, the peer
certificate, gzip/deflate, and a clear error code for every way a target can misbehave.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote, unquote, urljoin, urlsplit

import httptools
from cryptography import x509

from uptally.checks import net
from uptally.checks.base import CheckFailed, ErrorCode, StepTiming

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_HEADER_BYTES = 64 << 10
HTTP_ALPN = ("http/1.1",)

# Called with the response headers and each new piece of the body; True ends the body there.
Until = Callable[[dict[str, str], bytes], bool]


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    url: str
    redirects: int
    peer_cert_der: bytes | None
    timings: list[StepTiming] = field(default_factory=list)
    # time.perf_counter() when the first connection was opened (after resolving the name)
    opened_at: float = 0.0

    def ms_since_opened(self) -> float:
        """The target's time so far: from opening the first connection (redirects included)
        to now; resolving the name and waiting for the event loop before it do not count."""
        return (time.perf_counter() - self.opened_at) * 1000

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
    until: Until | None = None,
) -> HttpResponse:
    """Fetch `url`; raise CheckFailed with an error code when the exchange cannot complete.

    `until(headers, piece)`, called with each piece of the body as it arrives, may end the body
    early (e.g. a server-sent event stream that stays open after the awaited event); the
    response then holds the body received so far.
    """
    seen = [url]
    timings: list[StepTiming] = []
    headers = dict(headers or {})
    redirects = 0
    started = time.perf_counter()
    opened_at = None
    while True:
        response = await _exchange(
            url,
            method,
            headers,
            body,
            user_agent,
            deadline,
            verify_tls,
            max_body,
            timings,
            until,
            started,
        )
        opened_at = opened_at or response.opened_at
        location = response.headers.get("location")
        if not (follow_redirects and response.status in REDIRECT_STATUSES and location):
            response.opened_at = opened_at
            response.redirects = redirects
            response.timings = timings
            return response
        redirects += 1
        next_url = urljoin(url, location.strip())
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
            if method != "HEAD":
                method = "GET"
            body = None
            headers = _without(headers, _BODY_HEADERS)
        if _origin(next_url) != _origin(url):
            headers = _without(headers, _CREDENTIAL_HEADERS)  # never hand them to another host
        url = next_url


_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding"})
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _without(headers: dict[str, str], names: frozenset[str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in names}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), port or (443 if scheme == "https" else 80)


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
    until: Until | None,
    fetch_started: float,
) -> HttpResponse:
    scheme, host, port = _target(url)
    head = _request_head(
        method,
        url,
        tuple(headers.items()),
        user_agent,
        len(body) if body is not None else (0 if method in ("POST", "PUT", "PATCH") else None),
    )
    request = head + body if body else head
    loop = asyncio.get_running_loop()
    phase = f"resolving {host}"
    started = time.perf_counter()
    protocol = _ResponseProtocol(loop, max_body, method == "HEAD", until)
    transport: asyncio.Transport | None = None
    cert_der = None
    opened_at = 0.0
    try:
        async with asyncio.timeout_at(deadline):
            addresses = await net.resolve(host, port)
            mark = time.perf_counter()
            timings.append(StepTiming("dns", (mark - started) * 1000))
            phase = f"connecting to {host}:{port}"
            opened_at = mark
            transport = await net.connect(lambda: protocol, addresses, host, port)
            now = time.perf_counter()
            timings.append(StepTiming("connect", (now - mark) * 1000))
            mark = now
            if scheme == "https":
                phase = "in the TLS handshake"
                transport = await net.start_tls(
                    transport, protocol, host, verify_tls, alpn=HTTP_ALPN
                )
                ssl_object = transport.get_extra_info("ssl_object")
                cert_der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
                now = time.perf_counter()
                timings.append(StepTiming("tls", (now - mark) * 1000))
                mark = now
            phase = "waiting for the response"
            transport.write(request)
            await protocol.headers_done
            now = time.perf_counter()
            timings.append(StepTiming("ttfb", (now - mark) * 1000))
            mark = now
            phase = "reading the body"
            await protocol.done
            timings.append(StepTiming("body", (time.perf_counter() - mark) * 1000))
    except TimeoutError:
        elapsed = time.perf_counter() - fetch_started
        raise CheckFailed(
            ErrorCode.TIMEOUT, f"timed out after {elapsed:.3g}s {phase} ({url})"
        ) from None
    finally:
        if transport is not None:
            if protocol.complete and not protocol.cut_short:
                transport.close()
            else:
                transport.abort()
        protocol.release()
    content = protocol.body()
    encoding = protocol.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "deflate", "x-gzip") and content:
        content = _decompress(content, encoding, max_body)
    return HttpResponse(
        protocol.status, protocol.headers, content, url, 0, cert_der, timings, opened_at
    )


@lru_cache(maxsize=16384)
def _target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL (cached: monitors fetch the same URLs again)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https") or not host:
        raise CheckFailed(ErrorCode.PROTOCOL, f"not an http(s) URL: {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise CheckFailed(ErrorCode.PROTOCOL, f"invalid port in {url!r}") from None
    return scheme, host, port


@lru_cache(maxsize=16384)
def _request_head(
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    user_agent: str,
    content_length: int | None,
) -> bytes:
    """The request line and headers (cached: a monitor sends the same request every time)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    host_header = _ascii_host(host)
    if ":" in host_header:
        host_header = f"[{host_header}]"
    if parts.port is not None:
        host_header += f":{parts.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    given = {name.lower() for name, _ in headers}
    # Every probe request identifies uptally and its location (CONTRACT.md); a configured
    # User-Agent is appended rather than replacing it.
    own = next((value for name, value in headers if name.lower() == "user-agent"), None)
    lines.append(f"User-Agent: {user_agent} {own}" if own else f"User-Agent: {user_agent}")
    if "accept" not in given:
        lines.append("Accept: */*")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate")
    if "authorization" not in given and parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        lines.append(f"Authorization: Basic {base64.b64encode(credentials.encode()).decode()}")
    for name, value in headers:
        if name.lower() in (
            "connection",
            "content-length",
            "host",
            "transfer-encoding",
            "user-agent",
        ):
            continue  # framing is ours: one request, Connection: close, Content-Length
        if not _TOKEN_RE.fullmatch(name) or "\r" in value or "\n" in value:
            raise CheckFailed(
                ErrorCode.PROTOCOL,
                f"cannot send header {name!r}: invalid name or a line break in its value",
            )
        lines.append(f"{name}: {value}")
    lines.append("Connection: close")
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise CheckFailed(ErrorCode.DNS, f"invalid host name {host!r}") from None


def _decompress(content: bytes, encoding: str, limit: int) -> bytes:
    # deflate is zlib-wrapped as specified, or raw as some servers send it
    attempts = [16 + zlib.MAX_WBITS] if "gzip" in encoding else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in attempts:
        try:
            data = zlib.decompressobj(wbits).decompress(content, limit + 1)
        except zlib.error as error:
            if wbits == attempts[-1]:
                raise CheckFailed(ErrorCode.PROTOCOL, f"invalid {encoding} body: {error}") from None
            continue
        if len(data) > limit:
            raise CheckFailed(
                ErrorCode.BODY_TOO_LARGE, f"decompressed body is larger than {limit} bytes"
            )
        return data
    raise AssertionError("unreachable")  # pragma: no cover


class _ResponseProtocol(asyncio.Protocol):
    __slots__ = (
        "_chunks",
        "_framed",
        "_head_bytes",
        "_head_only",
        "_max_body",
        "_parser",
        "_size",
        "_until",
        "complete",
        "cut_short",
        "done",
        "headers",
        "headers_done",
        "status",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
        head_only: bool,
        until: Until | None = None,
    ) -> None:
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._max_body = max_body
        self._head_only = head_only
        self._until = until
        self._chunks: list[bytes] = []
        self._size = 0
        self._head_bytes = 0  # bytes received before the (final) response head was complete
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self.headers: dict[str, str] = {}
        self.status = 0
        self.complete = False
        self.cut_short = False  # ended by `until` before the server finished the body
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def release(self) -> None:
        """Drop the parser, which holds this protocol's callbacks: the two form a reference
        cycle that only the garbage collector frees, so every check left garbage behind it,
        and what survives two young collections waits for a full one (at 10,000 monitors tens
        of MB). Without the cycle it all goes the moment the check returns."""
        self._parser = None

    def _fail(self, code: ErrorCode, message: str) -> None:
        error = CheckFailed(code, message)
        for future in (self.headers_done, self.done):
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: only one of the two is awaited

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return  # complete or failed: whatever else arrives is ignored
        if not self.headers_done.done():
            # Only bytes up to the end of the head count against the header limit: a small head
            # followed by a large body in the same read is fine, a huge head is not.
            room = MAX_HEADER_BYTES - self._head_bytes
            if len(data) > room:
                self._feed(data[:room])
                if not self.headers_done.done():
                    self._fail(
                        ErrorCode.PROTOCOL,
                        f"response headers larger than {MAX_HEADER_BYTES} bytes",
                    )
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self.done.done() or not data or self._parser is None:
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
        if self.done.done():
            return
        if self.headers_done.done() and not self._framed:
            self._finish()  # the body was delimited by closing the connection
            return
        detail = f": {exc}" if exc else ""
        if not self.headers_done.done():
            self._fail(
                ErrorCode.CLOSED, f"connection closed before the response headers arrived{detail}"
            )
        else:
            self._fail(
                ErrorCode.CLOSED,
                f"connection closed before the response body was complete "
                f"({self._size} bytes received){detail}",
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
        assert self._parser is not None  # called by the parser itself
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self.status = status
        if not self.headers_done.done():
            self.headers_done.set_result(None)
        if self._head_only or status in (204, 304):
            self._finish()

    def on_body(self, body: bytes) -> None:
        if self.done.done():
            return
        self._size += len(body)
        if self._size > self._max_body:
            self._chunks.clear()
            self._fail(
                ErrorCode.BODY_TOO_LARGE, f"response body is larger than {self._max_body} bytes"
            )
            return
        self._chunks.append(body)
        if self._until is not None and self._until(self.headers, body):
            self.cut_short = True
            self._finish()

    def on_message_complete(self) -> None:
        if not self.headers_done.done():  # the end of an interim (1xx) answer
            self.headers.clear()
            self._framed = False
            return
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
