"""Targets that misbehave on purpose: every check must fail fast, with a specific error code and a
clear message, without bloating the process or leaking sockets.

Each test runs on asyncio's own event loop and on uvloop (which `uptally serve` uses).
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from typing import Any

from tests.targets import (
    DnsTarget,
    HttpTarget,
    Raw,
    Request,
    Response,
    TcpTarget,
    check,
    hang,
    on_each_loop,
    open_fds,
    redirect,
    reply_with,
    server_tls,
    settled_fds,
    timed_check,
)
from uptally.checks.base import CheckResult, ErrorCode

TIMEOUT = 0.5  # seconds: the monitors' timeout in these tests
MARGIN = 0.5  # what a check may overrun its timeout by on a loaded machine


async def fails_with(code: ErrorCode, fragment: str, **fields: Any) -> CheckResult:
    """Run the check and assert it failed with `code`, a message containing `fragment`, in time."""
    fields.setdefault("timeout", f"{TIMEOUT * 1000:.0f}ms")
    result, elapsed = await timed_check(**fields)
    assert not result.ok
    assert result.error == code, f"{result.error}: {result.message}"
    assert fragment in result.message, result.message
    assert elapsed < TIMEOUT + MARGIN, f"took {elapsed:.2f}s: {result.message}"
    assert result.latency_ms is not None
    return result


# -- the hostile servers ------------------------------------------------------------------------


async def drip_head(request: Request, writer: asyncio.StreamWriter) -> None:
    """One byte every 100 ms, forever: the head never ends."""
    data = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 1_000_000
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)  # the hostile pace, not synchronisation


async def drip_body(request: Request, writer: asyncio.StreamWriter) -> None:
    """A prompt head, then one body byte every 100 ms, forever."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while True:
        writer.write(b"z")
        await writer.drain()
        await asyncio.sleep(0.1)


async def endless_body(request: Request, writer: asyncio.StreamWriter) -> None:
    """A chunked body that never ends, as fast as the client reads."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    while True:
        writer.write(chunk)
        await writer.drain()


async def endless_unframed_body(request: Request, writer: asyncio.StreamWriter) -> None:
    """No length, no chunking: the body is everything until the close, which never comes."""
    writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
    while True:
        writer.write(b"y" * 65536)
        await writer.drain()


async def huge_headers(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for n in range(10_000):
        writer.write(b"X-Filler-%d: %s\r\n" % (n, b"f" * 200))
        await writer.drain()
    writer.write(b"Content-Length: 0\r\n\r\n")


async def closed_mid_body(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"partial")
    await writer.drain()
    writer.transport.abort()


async def closed_mid_chunk(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly ha")
    await writer.drain()


async def bad_chunking(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a size\r\n")
    await writer.drain()
    await hang()


async def silent_after_request(request: Request, writer: asyncio.StreamWriter) -> None:
    await hang()


GARBAGE = bytes(range(256)) * 4


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- one coroutine per hostile target (reused by the leak tests) ---------------------------------


async def drip_feeding_head() -> None:
    async with HttpTarget({"/": Raw(drip_head)}) as target:
        await fails_with(
            ErrorCode.TIMEOUT, "waiting for the response", kind="http", url=target.url()
        )


async def drip_feeding_body() -> None:
    async with HttpTarget({"/": Raw(drip_body)}) as target:
        result = await fails_with(
            ErrorCode.TIMEOUT, "reading the body", kind="http", url=target.url()
        )
    assert target.url() in result.message


async def endless_chunked_body() -> None:
    async with HttpTarget({"/": Raw(endless_body)}) as target:
        await fails_with(ErrorCode.BODY_TOO_LARGE, "1048576 bytes", kind="http", url=target.url())


async def endless_body_without_length() -> None:
    async with HttpTarget({"/": Raw(endless_unframed_body)}) as target:
        await fails_with(
            ErrorCode.BODY_TOO_LARGE, "65536 bytes", kind="http", url=target.url(), max_body="64KiB"
        )


async def garbage_instead_of_http() -> None:
    async with TcpTarget(reply_with(GARBAGE, close=False)) as target:
        await fails_with(
            ErrorCode.PROTOCOL,
            "invalid HTTP response",
            kind="http",
            url=f"http://{target.address}/",
        )


async def plain_text_banner_instead_of_http() -> None:
    async with TcpTarget(reply_with(b"SSH-2.0-OpenSSH_9.6\r\n", close=False)) as target:
        result = await fails_with(
            ErrorCode.PROTOCOL,
            "invalid HTTP response",
            kind="http",
            url=f"http://{target.address}/",
        )
    assert "SSH-2.0" in result.message


async def redirect_loop() -> None:
    async with HttpTarget({"/a": redirect("/b"), "/b": redirect("/a")}) as target:
        result = await fails_with(
            ErrorCode.REDIRECTS, "redirect loop", kind="http", url=target.url("/a")
        )
    assert "/a → " in result.message
    assert target.paths() == ["/a", "/b"]


async def redirect_to_itself() -> None:
    async with HttpTarget({"/self": redirect("/self", 301)}) as target:
        await fails_with(ErrorCode.REDIRECTS, "redirect loop", kind="http", url=target.url("/self"))


async def redirect_to_another_scheme() -> None:
    async with HttpTarget({"/": redirect("ftp://files.example/", 302)}) as target:
        await fails_with(ErrorCode.REDIRECTS, "unsupported", kind="http", url=target.url())


async def tls_on_a_plain_port() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        url = f"https://{target.address}/"
        await fails_with(ErrorCode.TLS, "TLS handshake", kind="http", url=url, verify_tls=False)


async def plain_http_on_a_tls_port() -> None:
    async with HttpTarget({"/": Response(200)}, ssl=server_tls()) as target:
        url = f"http://{target.address}/"
        await fails_with(ErrorCode.CLOSED, "connection closed", kind="http", url=url)


async def accept_and_hang() -> None:
    async with TcpTarget(lambda reader, writer: hang()) as target:
        await fails_with(
            ErrorCode.TIMEOUT,
            "waiting for the response",
            kind="http",
            url=f"http://{target.address}/",
        )


async def accept_and_hang_during_tls() -> None:
    async with TcpTarget(lambda reader, writer: hang()) as target:
        await fails_with(
            ErrorCode.TIMEOUT,
            "TLS handshake",
            kind="http",
            url=f"https://{target.address}/",
            verify_tls=False,
        )


async def read_the_request_and_hang() -> None:
    async with HttpTarget({"/": Raw(silent_after_request)}) as target:
        await fails_with(
            ErrorCode.TIMEOUT, "waiting for the response", kind="http", url=target.url()
        )
    assert target.paths() == ["/"]


async def accept_and_close() -> None:
    async with TcpTarget(reply_with(b"")) as target:
        await fails_with(
            ErrorCode.CLOSED,
            "before the response headers",
            kind="http",
            url=f"http://{target.address}/",
        )


async def huge_response_headers() -> None:
    async with HttpTarget({"/": Raw(huge_headers)}) as target:
        await fails_with(ErrorCode.PROTOCOL, "headers larger than", kind="http", url=target.url())


async def connection_closed_mid_body() -> None:
    async with HttpTarget({"/": Raw(closed_mid_body)}) as target:
        await fails_with(
            ErrorCode.CLOSED, "before the response body was complete", kind="http", url=target.url()
        )


async def connection_closed_mid_chunk() -> None:
    async with HttpTarget({"/": Raw(closed_mid_chunk)}) as target:
        await fails_with(
            ErrorCode.CLOSED, "before the response body was complete", kind="http", url=target.url()
        )


async def invalid_chunked_encoding() -> None:
    async with HttpTarget({"/": Raw(bad_chunking)}) as target:
        await fails_with(ErrorCode.PROTOCOL, "invalid HTTP response", kind="http", url=target.url())


async def connection_refused() -> None:
    port = free_port()
    result = await fails_with(
        ErrorCode.CONNECT_REFUSED,
        f"127.0.0.1:{port}",
        kind="http",
        url=f"http://127.0.0.1:{port}/",
    )
    assert "refused" in result.message


async def connection_refused_by_name() -> None:
    port = free_port()
    await fails_with(
        ErrorCode.CONNECT_REFUSED, "refused", kind="http", url=f"http://localhost:{port}/"
    )


async def unresolvable_host() -> None:
    result = await fails_with(
        ErrorCode.DNS, "no-such-host.invalid", kind="http", url="http://no-such-host.invalid/"
    )
    assert "resolve" in result.message


async def tcp_connection_refused() -> None:
    await fails_with(
        ErrorCode.CONNECT_REFUSED, "refused", kind="tcp", host="127.0.0.1", port=free_port()
    )


async def tcp_unresolvable_host() -> None:
    await fails_with(
        ErrorCode.DNS, "no-such-host.invalid", kind="tcp", host="no-such-host.invalid", port=80
    )


async def tcp_endless_reply() -> None:
    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(b"noise " * 10_000)
            await writer.drain()

    async with TcpTarget(flood) as target:
        await fails_with(
            ErrorCode.BODY_TOO_LARGE,
            "max_reply",
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"'],
            max_reply="16KiB",
        )


async def tcp_drip_feeding_reply() -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            writer.write(b".")
            await writer.drain()
            await asyncio.sleep(0.1)

    async with TcpTarget(drip) as target:
        result = await fails_with(
            ErrorCode.TIMEOUT,
            "waiting for the reply",
            kind="tcp",
            host=target.host,
            port=target.port,
            expect=['reply contains "ready"'],
        )
    assert 'reply does not contain "ready"' in result.message


async def tcp_tls_on_a_plain_port() -> None:
    async with TcpTarget(reply_with(b"220 plain text\r\n", close=False)) as target:
        await fails_with(
            ErrorCode.TLS,
            "TLS handshake",
            kind="tcp",
            host=target.host,
            port=target.port,
            tls=True,
            verify_tls=False,
        )


async def jsonrpc_event_stream_without_the_answer() -> None:
    async def other_events(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        while True:
            writer.write(b'event: ping\ndata: {"jsonrpc": "2.0", "method": "ping"}\n\n')
            await writer.drain()
            await asyncio.sleep(0.1)

    async with HttpTarget({"/mcp": Raw(other_events)}) as target:
        await fails_with(
            ErrorCode.TIMEOUT,
            "reading the body",
            kind="jsonrpc",
            url=target.url("/mcp"),
            method="initialize",
        )


# -- the tests ----------------------------------------------------------------------------------


@on_each_loop
async def test_it_fails_with_timeout_when_the_server_drips_bytes() -> None:
    await drip_feeding_head()
    await drip_feeding_body()


@on_each_loop
async def test_it_fails_with_body_too_large_when_the_body_never_ends() -> None:
    await endless_chunked_body()
    await endless_body_without_length()


@on_each_loop
async def test_it_fails_with_protocol_when_the_server_sends_garbage() -> None:
    await garbage_instead_of_http()
    await plain_text_banner_instead_of_http()
    await invalid_chunked_encoding()


@on_each_loop
async def test_it_fails_with_redirects_on_a_redirect_loop() -> None:
    await redirect_loop()
    await redirect_to_itself()
    await redirect_to_another_scheme()


@on_each_loop
async def test_it_fails_with_tls_when_https_meets_a_plain_port() -> None:
    await tls_on_a_plain_port()
    await tcp_tls_on_a_plain_port()


@on_each_loop
async def test_it_fails_with_closed_when_plain_http_meets_a_tls_port() -> None:
    await plain_http_on_a_tls_port()


@on_each_loop
async def test_it_fails_with_timeout_when_the_server_accepts_and_hangs() -> None:
    await accept_and_hang()
    await accept_and_hang_during_tls()
    await read_the_request_and_hang()


@on_each_loop
async def test_it_fails_with_closed_when_the_server_closes_without_answering() -> None:
    await accept_and_close()


@on_each_loop
async def test_it_fails_with_protocol_when_the_headers_are_huge() -> None:
    await huge_response_headers()


@on_each_loop
async def test_it_fails_with_closed_when_the_connection_drops_mid_body() -> None:
    await connection_closed_mid_body()
    await connection_closed_mid_chunk()


@on_each_loop
async def test_it_fails_with_connect_refused_when_nothing_listens() -> None:
    await connection_refused()
    await connection_refused_by_name()
    await tcp_connection_refused()


@on_each_loop
async def test_it_fails_with_dns_when_the_host_name_does_not_resolve() -> None:
    await unresolvable_host()
    await tcp_unresolvable_host()


@on_each_loop
async def test_a_tcp_check_caps_an_endless_reply_and_times_out_a_dripping_one() -> None:
    await tcp_endless_reply()
    await tcp_drip_feeding_reply()


@on_each_loop
async def test_a_jsonrpc_check_times_out_on_an_event_stream_without_its_answer() -> None:
    await jsonrpc_event_stream_without_the_answer()


# -- the process stays healthy ------------------------------------------------------------------

ALL_HOSTILE = [
    drip_feeding_head,
    drip_feeding_body,
    endless_chunked_body,
    endless_body_without_length,
    garbage_instead_of_http,
    plain_text_banner_instead_of_http,
    redirect_loop,
    redirect_to_itself,
    tls_on_a_plain_port,
    plain_http_on_a_tls_port,
    accept_and_hang,
    accept_and_hang_during_tls,
    read_the_request_and_hang,
    accept_and_close,
    huge_response_headers,
    connection_closed_mid_body,
    connection_closed_mid_chunk,
    invalid_chunked_encoding,
    connection_refused,
    unresolvable_host,
    tcp_connection_refused,
    tcp_endless_reply,
    tcp_tls_on_a_plain_port,
]


@on_each_loop
async def test_no_file_descriptors_leak_across_all_hostile_targets() -> None:
    await endless_chunked_body()  # warm up: lazily opened resources are not leaks
    before = open_fds()
    await asyncio.gather(*(case() for case in ALL_HOSTILE))  # all at once, as a probe does
    await asyncio.gather(*(case() for case in ALL_HOSTILE))
    assert await settled_fds(before) == before


async def healthy_checks_of_every_kind() -> None:
    """Successful checks of each kind, TLS included, to compare descriptor counts against."""

    async def open_stream(request: Request, writer: asyncio.StreamWriter) -> None:
        body = b'data: {"jsonrpc": "2.0", "id": %d, "result": {}}\n\n' % request.json()["id"]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + body)
        await writer.drain()
        await hang()  # the stream stays open: the check ends it

    async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"pong\n")
        await writer.drain()
        await hang()

    routes = {"/": Response(200, {"status": "UP"}, gzip=True), "/mcp": Raw(open_stream)}
    zone = {"example.test": {"A": ["1.2.3.4"]}}
    async with (
        HttpTarget(routes) as plain,
        HttpTarget(routes, ssl=server_tls()) as secure,
        TcpTarget(pong, ssl=server_tls()) as tls_port,
        DnsTarget(zone) as dns_server,
    ):
        results = await asyncio.gather(
            check(kind="http", url=plain.url(), timeout="2s", expect=['json.status == "UP"']),
            check(
                kind="http",
                url=secure.url(),
                verify_tls=False,
                timeout="2s",
                expect=["cert.expires_in > 14d"],
            ),
            check(kind="jsonrpc", url=plain.url("/mcp"), method="initialize", timeout="2s"),
            check(
                kind="jsonrpc",
                url=secure.url("/mcp"),
                method="initialize",
                verify_tls=False,
                timeout="2s",
            ),
            check(
                kind="tcp",
                host=tls_port.host,
                port=tls_port.port,
                tls=True,
                verify_tls=False,
                send="ping\n",
                expect=["reply contains pong"],
                timeout="2s",
            ),
            check(kind="dns", host="example.test", server=dns_server.address, timeout="2s"),
            check(
                kind="dns",
                host="example.test",
                server=dns_server.address,
                protocol="tcp",
                timeout="2s",
            ),
        )
    assert [(result.ok, result.message) for result in results] == [(True, "")] * len(results)


@on_each_loop
async def test_healthy_checks_of_every_kind_leak_no_file_descriptors_either() -> None:
    await healthy_checks_of_every_kind()  # warm up
    before = open_fds()
    for _ in range(3):
        await healthy_checks_of_every_kind()
    assert await settled_fds(before) == before


@on_each_loop
async def test_running_the_endless_body_check_20_times_keeps_memory_bounded() -> None:
    async with HttpTarget({"/": Raw(endless_body)}) as target:
        await check(kind="http", url=target.url(), timeout="2s")  # warm up caches and pools
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            for _ in range(20):
                result = await check(kind="http", url=target.url(), timeout="2s")
                assert result.error == ErrorCode.BODY_TOO_LARGE
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    mib = 1 << 20
    assert peak - baseline < 4 * mib, f"peak grew by {(peak - baseline) / mib:.1f} MiB"
    assert current - baseline < 1 * mib, f"{(current - baseline) / mib:.1f} MiB kept after 20 runs"
