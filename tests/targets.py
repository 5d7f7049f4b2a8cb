"""Small, real servers for testing the check executors: raw TCP, HTTP(S) and DNS on 127.0.0.1.

Every server binds to port 0 on 127.0.0.1 and is an async context manager: entering starts it,
leaving stops it, cancels the connection handlers still running and waits until every socket is
closed (so file-descriptor counts taken afterwards are exact). Handler errors other than a peer
going away are re-raised when the server stops, so a broken test server cannot pass silently.

    async with HttpTarget({"/health": Response(200, b'{"status": "UP"}')}) as target:
        result = await run_check(monitor(kind="http", url=target.url("/health")))
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip as gzip_module
import ipaddress
import json
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
import uvloop
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from uptally.checks.base import CheckResult
from uptally.checks.registry import run_check
from uptally.config import parse_config
from uptally.config.schema import ActiveMonitor

HOST = "127.0.0.1"
PEER_GONE = (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, EOFError)

# -- building monitors --------------------------------------------------------------------------


def monitor(**fields: Any) -> ActiveMonitor:
    """One monitor parsed through the real config loader, e.g. monitor(kind="http", url=...)."""
    fields.setdefault("id", "target")
    return monitor_from_yaml(yaml.safe_dump({"monitors": [fields]}, sort_keys=False))


def monitor_from_yaml(text: str) -> ActiveMonitor:
    """The first monitor of a YAML config (a whole config, or just `monitors:` and one item)."""
    config = parse_config(text)
    first = config.monitors[0]
    assert isinstance(first, ActiveMonitor)
    return first


async def check(**fields: Any) -> CheckResult:
    """Parse a monitor from fields and run its check once from location `local`."""
    return await run_check(monitor(**fields), location="local")


async def hang() -> None:
    """Wait forever (until cancelled when the server stops): a target that never answers."""
    await asyncio.Event().wait()


# -- raw TCP ------------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class TcpTarget:
    """A TCP server whose every connection is served by `handler(reader, writer)`.

    `connections` counts accepted connections and `peers` lists their client addresses.
    With `ssl`, the server speaks TLS (see `server_tls`).
    """

    def __init__(self, handler: Handler, *, ssl: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl = ssl
        self.host = HOST
        self.port = 0
        self.connections = 0
        self.peers: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> TcpTarget:
        self._server = await asyncio.start_server(
            self._serve, HOST, 0, ssl=self.ssl, ssl_handshake_timeout=5 if self.ssl else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        for writer in list(self._writers):
            with contextlib.suppress(*PEER_GONE, OSError):
                await writer.wait_closed()
        self._server = None
        if self.errors:
            raise AssertionError(f"the test server failed: {self.errors[0]!r}") from self.errors[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The handler runs in a task of its own so that stopping the server can cancel it without
        # cancelling asyncio's own connection callback task (which logs an error on 3.11).
        self._writers.add(writer)
        self.connections += 1
        self.peers.append(writer.get_extra_info("peername")[:2])
        task = asyncio.create_task(self._handle(reader, writer))
        self._tasks.add(task)
        try:
            await asyncio.wait([task])
        finally:
            self._tasks.discard(task)
        with contextlib.suppress(*PEER_GONE, OSError):
            await writer.wait_closed()
        self._writers.discard(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            await writer.drain()
        except PEER_GONE:
            pass
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception as error:  # a bug in the test server: report it when stopping
            self.errors.append(error)
        finally:
            if not writer.is_closing():
                writer.close()


def reply_with(data: bytes, *, close: bool = True) -> Handler:
    """A handler that sends `data` at once, then closes (or keeps the connection open)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if not close:
            await hang()

    return handler


def line_server(answers: Mapping[str, str | Callable[[str], str]], greeting: str = "") -> Handler:
    """A line protocol: each received line (without its newline) is looked up in `answers`.

    Unknown lines are answered with "ERR unknown command". The connection stays open until the
    client closes it.
    """

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if greeting:
            writer.write(greeting.encode())
            await writer.drain()
        while line := await reader.readline():
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            answer = answers.get(text, answers.get("*", "ERR unknown command\n"))
            reply = answer(text) if callable(answer) else answer
            writer.write(reply.encode())
            await writer.drain()

    return handler


# -- HTTP ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One request as the HTTP target received it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class Response:
    """What a route answers. `body` may be bytes, str or a JSON-able value (sent as JSON).

    chunked: send with Transfer-Encoding: chunked, one chunk per item of `chunks` (or the body
    in two pieces). gzip: compress and send Content-Encoding: gzip. delay: seconds to wait
    before answering (a slow server).
    """

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    chunks: list[bytes] | None = None
    gzip: bool = False
    delay: float = 0.0
    reason: str = ""

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def redirect(location: str, status: int = 302) -> Response:
    return Response(status, b"", {"Location": location})


RawRoute = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]
Route = Response | Callable[[Request], Response | Awaitable[Response]]


class Raw:
    """A route that writes the answer itself (anything, including nothing, forever)."""

    def __init__(self, handler: RawRoute) -> None:
        self.handler = handler


REASONS = {200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found", 303: "See Other"}


class HttpTarget(TcpTarget):
    """An HTTP/1.1 server routing request paths to Responses, callables or Raw handlers.

    Every request is recorded in `requests`. Paths without a route answer 404.
    """

    def __init__(
        self,
        routes: Mapping[str, Route | Raw] | None = None,
        *,
        ssl: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(self._serve_http, ssl=ssl)
        self.routes: dict[str, Route | Raw] = dict(routes or {})
        self.requests: list[Request] = []

    @property
    def scheme(self) -> str:
        return "https" if self.ssl else "http"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        while True:
            try:
                request = await read_request(reader, peer)
            except BadRequest:
                await write_response(writer, Response(400, b"bad request"), head=False)
                return
            if request is None:
                return
            self.requests.append(request)
            route = self.routes.get(request.path, self.routes.get(request.target))
            if isinstance(route, Raw):
                await route.handler(request, writer)
                return
            if route is None:
                response = Response(404, b"not found")
            elif isinstance(route, Response):
                response = route
            else:
                answer = route(request)
                response = await answer if isinstance(answer, Awaitable) else answer
            if response.delay:
                await asyncio.sleep(response.delay)  # a slow server, not synchronisation
            await write_response(writer, response, head=request.method == "HEAD")
            if request.headers.get("connection", "").lower() == "close":
                return


class BadRequest(Exception):
    """The bytes received are not an HTTP request."""


async def read_request(reader: asyncio.StreamReader, peer: tuple[str, int]) -> Request | None:
    """Read one request; None at EOF. Like real servers, reject garbage at its first byte."""
    try:
        first = await reader.readexactly(1)
        if not first.isalpha():
            raise BadRequest(f"not an HTTP request: {first!r}")
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body, peer)


async def write_response(writer: asyncio.StreamWriter, response: Response, head: bool) -> None:
    body = response.payload()
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if not isinstance(response.body, bytes | str):
        headers["Content-Type"] = "application/json"
    headers.update(response.headers)
    if response.gzip:
        body = gzip_module.compress(body)
        headers["Content-Encoding"] = "gzip"
    no_body = response.status in (204, 304) or 100 <= response.status < 200
    if response.chunked:
        headers["Transfer-Encoding"] = "chunked"
    elif not no_body:
        headers.setdefault("Content-Length", str(len(body)))
    reason = response.reason or REASONS.get(response.status, "Status")
    lines = [f"HTTP/1.1 {response.status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if head or no_body:
        await writer.drain()
        return
    if response.chunked:
        chunks = response.chunks or [body[: len(body) // 3], body[len(body) // 3 :]]
        for chunk in chunks:
            if chunk:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        writer.write(body)
    await writer.drain()


# -- TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes
    not_after: datetime


@cache
def make_certificate(days: float = 90, hostname: str = "localhost") -> Certificate:
    """A self-signed certificate for `hostname` and 127.0.0.1 that expires in `days` days."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    not_after = now + timedelta(days=days)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.not_valid_after_utc,
    )


def server_tls(certificate: Certificate | None = None) -> ssl.SSLContext:
    """A server-side TLS context presenting `certificate` (default: valid for 90 days)."""
    certificate = certificate or make_certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:
        cert_file = Path(directory, "cert.pem")
        key_file = Path(directory, "key.pem")
        cert_file.write_bytes(certificate.cert_pem)
        key_file.write_bytes(certificate.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


# -- DNS ----------------------------------------------------------------------------------------

Records = Mapping[str, Mapping[str, list[str]]]


class DnsTarget:
    """A DNS server on 127.0.0.1, UDP and TCP on the same port, answering from `records`.

    records: {"example.test": {"A": ["1.2.3.4"], "MX": ["10 mail.example.test."]}, ...}.
    CNAMEs are followed within the records. Unknown names answer NXDOMAIN; `rcode` forces an
    answer code for every query (e.g. "SERVFAIL"); `silent` never answers; `truncate_udp`
    answers UDP queries with the TC flag only, so that clients must retry over TCP.
    `queries` lists (name, type, "udp"|"tcp") as received.
    """

    def __init__(
        self,
        records: Records | None = None,
        *,
        rcode: str | None = None,
        silent: bool = False,
        truncate_udp: bool = False,
    ) -> None:
        self.records = {
            dns.name.from_text(name): {rtype.upper(): values for rtype, values in types.items()}
            for name, types in (records or {}).items()
        }
        self.rcode = rcode
        self.silent = silent
        self.truncate_udp = truncate_udp
        self.host = HOST
        self.port = 0
        self.queries: list[tuple[str, str, str]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp = TcpTarget(self._serve_tcp)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> DnsTarget:
        loop = asyncio.get_running_loop()
        for _attempt in range(20):  # find a port that is free for both UDP and TCP
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DnsDatagrams(self), local_addr=(HOST, 0)
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                server = await asyncio.start_server(self._tcp._serve, HOST, port)
            except OSError:
                transport.close()
                continue
            self._udp = transport
            self._tcp._server = server
            self._tcp.port = self.port = port
            return self
        raise RuntimeError("no port free for both UDP and TCP")

    async def __aexit__(self, *exc_info: object) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        await self._tcp.stop()

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.queries.append(
            (question.name.to_text(), dns.rdatatype.to_text(question.rdtype), transport)
        )
        if self.silent:
            return None
        response = dns.message.make_response(query)
        if transport == "udp" and self.truncate_udp:
            response.flags |= dns.flags.TC
            return response.to_wire()
        if self.rcode is not None:
            response.set_rcode(dns.rcode.from_text(self.rcode))
            return response.to_wire()
        name = question.name
        wanted = dns.rdatatype.to_text(question.rdtype)
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        for _hop in range(8):
            types = self.records.get(name, {})
            if wanted in types:
                response.answer.append(_rrset(name, wanted, types[wanted]))
                break
            if "CNAME" in types:
                response.answer.append(_rrset(name, "CNAME", types["CNAME"]))
                name = dns.name.from_text(types["CNAME"][0])
                continue
            break
        return response.to_wire()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                size = int.from_bytes(await reader.readexactly(2), "big")
            except asyncio.IncompleteReadError:
                return
            answer = self.answer(await reader.readexactly(size), "tcp")
            if answer is None:
                await hang()
                return
            writer.write(len(answer).to_bytes(2, "big") + answer)
            await writer.drain()


def _rrset(name: dns.name.Name, rtype: str, values: list[str]) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(name, 300, dns.rdataclass.IN, rtype, values)


class _DnsDatagrams(asyncio.DatagramProtocol):
    def __init__(self, target: DnsTarget) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        answer = self.target.answer(data, "udp")
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


# -- event loops and process hygiene ----------------------------------------------------------


def open_fds() -> int:
    """How many file descriptors this process has open (Linux)."""
    return len(list(Path("/proc/self/fd").iterdir()))


async def timed_check(**fields: Any) -> tuple[CheckResult, float]:
    """Like check(), also returning the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await check(**fields)
    return result, loop.time() - started


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,  # what `uptally serve` runs on
}


def on_each_loop(test: Callable[[], Awaitable[None]]) -> Callable[[str], None]:
    """Turn an async test into one that runs on asyncio's own event loop and on uvloop."""

    @pytest.mark.parametrize("loop", list(LOOPS))
    def run(loop: str) -> None:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            runner.run(test())  # type: ignore[arg-type]

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


async def settled_fds(limit: int, within: float = 2.0) -> int:
    """The open descriptor count once it is at most `limit` (closes finish on later loop turns)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    count = open_fds()
    while count > limit and loop.time() < give_up:
        await asyncio.sleep(0.01)
        count = open_fds()
    return count


class Listener:
    """A TCP port whose connections the kernel completes at once (a backlog of 4096) and a
    thread accepts and closes: a target that answers in well under a millisecond whatever the
    test's event loop is doing, for thousands of TCP checks a second."""

    def __init__(self) -> None:
        self._socket = socket.create_server((HOST, 0), backlog=4096)
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            connection.close()

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
