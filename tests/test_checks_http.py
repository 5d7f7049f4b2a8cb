"""The http check against real local HTTP(S) servers: requests, redirects, TLS and expectations."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import zlib

import pytest

from tests.targets import (
    HttpTarget,
    Raw,
    Request,
    Response,
    check,
    make_certificate,
    monitor,
    monitor_from_yaml,
    redirect,
    server_tls,
    timed_check,
)
from uptally import __version__
from uptally.checks.base import ErrorCode
from uptally.checks.registry import run_check

MARGIN = 0.5  # seconds a check may overrun its timeout on a loaded machine

# -- requests -----------------------------------------------------------------------------------


async def test_a_monitor_parsed_from_yaml_checks_a_healthy_endpoint() -> None:
    async with HttpTarget({"/health": Response(200, {"status": "UP"})}) as target:
        config = f"""
monitors:
  - id: api
    kind: http
    url: {target.url("/health")}
    timeout: 2s
    expect:
      - status == 200
      - json.status == "UP"
"""
        result = await run_check(monitor_from_yaml(config))
    assert result.ok, result.message
    assert result.error is None
    assert result.latency_ms is not None
    assert 0 < result.latency_ms < 2000
    assert [timing.name for timing in result.timings] == ["dns", "connect", "ttfb", "body"]


async def test_without_expectations_a_status_below_400_is_up() -> None:
    async with HttpTarget({"/ok": Response(200), "/gone": Response(410)}) as target:
        up = await check(kind="http", url=target.url("/ok"), timeout="1s")
        down = await check(kind="http", url=target.url("/gone"), timeout="1s")
    assert up.ok
    assert not down.ok
    assert down.error == ErrorCode.STATUS
    assert "410" in down.message


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_it_sends_the_configured_method(method: str) -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        result = await check(kind="http", url=target.url(), method=method, timeout="1s")
    assert result.ok, result.message
    assert [request.method for request in target.requests] == [method]


async def test_it_sends_the_configured_headers_and_body() -> None:
    async with HttpTarget({"/submit": Response(200)}) as target:
        result = await check(
            kind="http",
            url=target.url("/submit?x=1"),
            method="POST",
            headers={"X-Api-Key": "secret", "Content-Type": "text/plain"},
            body="hello there",
            timeout="1s",
        )
    assert result.ok, result.message
    (request,) = target.requests
    assert request.target == "/submit?x=1"
    assert request.headers["x-api-key"] == "secret"
    assert request.headers["content-type"] == "text/plain"
    assert request.headers["content-length"] == "11"
    assert request.body == b"hello there"


async def test_it_sends_a_json_body_with_a_json_content_type() -> None:
    async with HttpTarget({"/rpc": Response(200)}) as target:
        result = await check(
            kind="http",
            url=target.url("/rpc"),
            method="POST",
            json={"name": "uptally", "tags": [1, 2]},
            timeout="1s",
        )
    assert result.ok, result.message
    (request,) = target.requests
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"name": "uptally", "tags": [1, 2]}


async def test_a_json_body_keeps_a_content_type_given_in_any_case() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        await check(
            kind="http",
            url=target.url(),
            method="POST",
            headers={"content-type": "application/vnd.api+json"},
            json={"a": 1},
            timeout="1s",
        )
    (request,) = target.requests
    assert request.headers["content-type"] == "application/vnd.api+json"


async def test_every_request_carries_the_uptally_user_agent_with_the_location() -> None:
    routes = {"/start": redirect("/end"), "/end": Response(200)}
    async with HttpTarget(routes) as target:
        result = await run_check(
            monitor(kind="http", url=target.url("/start"), timeout="1s"), location="eu-west"
        )
    assert result.ok, result.message
    assert target.paths() == ["/start", "/end"]
    agents = {request.headers["user-agent"] for request in target.requests}
    assert agents == {f"uptally/{__version__} (+location=eu-west)"}


async def test_a_configured_user_agent_is_appended_to_uptallys_own() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        result = await run_check(
            monitor(
                kind="http", url=target.url(), timeout="1s", headers={"User-Agent": "waf-pass/1"}
            )
        )
    assert result.ok, result.message
    [request] = target.requests
    assert request.headers["user-agent"] == f"uptally/{__version__} (+location=local) waf-pass/1"


async def test_each_check_opens_a_fresh_connection() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        for _ in range(3):
            result = await check(kind="http", url=target.url(), timeout="1s")
            assert result.ok, result.message
    assert target.connections == 3
    assert len(set(target.peers)) == 3
    assert all(request.headers["connection"] == "close" for request in target.requests)


async def test_a_finished_check_leaves_nothing_for_the_garbage_collector() -> None:
    # The response parser holds its protocol's callbacks: unless the check breaks that cycle,
    # every check leaves garbage that only a (rare, at serve's thresholds) collection frees.
    def protocols() -> int:
        return sum(type(o).__name__ == "_ResponseProtocol" for o in gc.get_objects())

    async with HttpTarget({"/": Response(200), "/gone": Response(410)}) as target:
        gc.collect()
        gc.disable()
        try:
            before = protocols()
            for path in ("/", "/gone") * 5:
                await check(kind="http", url=target.url(path), timeout="1s")
            for _ in range(3):
                await asyncio.sleep(0)  # the closed transports' connection_lost callbacks
            left = protocols() - before
        finally:
            gc.enable()
    assert left == 0


async def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        url = f"http://alice:s3cret@{target.host}:{target.port}/"
        result = await check(kind="http", url=url, timeout="1s")
    assert result.ok, result.message
    expected = base64.b64encode(b"alice:s3cret").decode()
    assert target.requests[0].headers["authorization"] == f"Basic {expected}"
    assert target.requests[0].headers["host"] == f"{target.host}:{target.port}"


# -- redirects ----------------------------------------------------------------------------------


async def test_it_follows_a_relative_redirect() -> None:
    routes = {"/old/page": redirect("../new/page", 301), "/new/page": Response(200, "moved")}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http", url=target.url("/old/page"), timeout="1s", expect=['body == "moved"']
        )
    assert result.ok, result.message
    assert target.paths() == ["/old/page", "/new/page"]


async def test_it_follows_an_absolute_redirect_to_another_server() -> None:
    there = HttpTarget({"/": Response(200, "there")})
    here = HttpTarget({"/": redirect("/", 307)})
    async with there, here:
        here.routes["/"] = redirect(there.url("/"), 307)
        result = await check(
            kind="http", url=here.url(), timeout="1s", expect=['body contains "there"']
        )
    assert result.ok, result.message
    assert here.paths() == ["/"]
    assert there.paths() == ["/"]


async def test_credentials_are_not_forwarded_to_another_host_on_redirect() -> None:
    there = HttpTarget({"/": Response(200)})
    here = HttpTarget()
    async with there, here:
        here.routes["/"] = redirect(there.url("/"))
        result = await check(
            kind="http",
            url=here.url(),
            headers={"Authorization": "Bearer token", "X-Trace": "1"},
            timeout="1s",
        )
    assert result.ok, result.message
    assert here.requests[0].headers["authorization"] == "Bearer token"
    assert "authorization" not in there.requests[0].headers
    assert there.requests[0].headers["x-trace"] == "1"


async def test_a_303_turns_a_post_into_a_get_without_body() -> None:
    routes = {"/form": redirect("/result", 303), "/result": Response(200, "done")}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http",
            url=target.url("/form"),
            method="POST",
            json={"a": 1},
            timeout="1s",
        )
    assert result.ok, result.message
    first, second = target.requests
    assert (first.method, first.body) == ("POST", b'{"a": 1}')
    assert (second.method, second.body) == ("GET", b"")
    assert "content-type" not in second.headers


async def test_a_307_repeats_the_post_with_its_body() -> None:
    routes = {"/form": redirect("/again", 307), "/again": Response(200)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http", url=target.url("/form"), method="POST", body="data", timeout="1s"
        )
    assert result.ok, result.message
    assert [(r.method, r.body) for r in target.requests] == [("POST", b"data"), ("POST", b"data")]


async def test_redirects_are_bounded_by_max_redirects() -> None:
    routes = {f"/{n}": redirect(f"/{n + 1}") for n in range(10)}
    async with HttpTarget(routes) as target:
        result = await check(kind="http", url=target.url("/0"), max_redirects=3, timeout="1s")
    assert not result.ok
    assert result.error == ErrorCode.REDIRECTS
    assert "more than 3 redirects" in result.message
    assert target.paths() == ["/0", "/1", "/2", "/3"]


async def test_with_follow_redirects_off_the_redirect_itself_is_judged() -> None:
    async with HttpTarget({"/": redirect("/elsewhere", 302)}) as target:
        result = await check(
            kind="http",
            url=target.url(),
            follow_redirects=False,
            timeout="1s",
            expect=["status == 302", 'header.location == "/elsewhere"'],
        )
    assert result.ok, result.message
    assert target.paths() == ["/"]


# -- TLS ----------------------------------------------------------------------------------------


async def test_a_self_signed_certificate_is_rejected_when_verifying() -> None:
    async with HttpTarget({"/": Response(200)}, ssl=server_tls()) as target:
        result = await check(kind="http", url=target.url(), timeout="2s")
    assert not result.ok
    assert result.error == ErrorCode.TLS
    assert "certificate" in result.message
    assert "self-signed" in result.message


async def test_a_self_signed_certificate_is_accepted_without_verification() -> None:
    async with HttpTarget({"/": Response(200, "secure")}, ssl=server_tls()) as target:
        result = await check(
            kind="http",
            url=target.url(),
            verify_tls=False,
            timeout="2s",
            expect=["status == 200", 'body == "secure"'],
        )
    assert result.ok, result.message
    assert [timing.name for timing in result.timings] == ["dns", "connect", "tls", "ttfb", "body"]
    assert target.requests[0].headers["user-agent"].startswith("uptally/")


async def test_cert_expires_in_passes_for_a_certificate_valid_for_90_days() -> None:
    async with HttpTarget({"/": Response(200)}, ssl=server_tls(make_certificate(90))) as target:
        result = await check(
            kind="http",
            url=target.url(),
            verify_tls=False,
            timeout="2s",
            expect=["cert.expires_in > 14d", "cert.expires_in < 91d"],
        )
    assert result.ok, result.message


async def test_cert_expires_in_fails_for_a_certificate_expiring_in_3_days() -> None:
    async with HttpTarget({"/": Response(200)}, ssl=server_tls(make_certificate(3))) as target:
        result = await check(
            kind="http",
            url=target.url(),
            verify_tls=False,
            timeout="2s",
            expect=["status == 200", "cert.expires_in > 14d"],
        )
    assert not result.ok
    assert result.error == ErrorCode.ASSERTION
    assert "cert.expires_in" in result.message
    assert "2d" in result.message  # 2 days and some hours left
    assert "14d" in result.message


async def test_cert_expires_in_on_plain_http_fails_clearly() -> None:
    async with HttpTarget({"/": Response(200)}) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=["cert.expires_in > 14d"]
        )
    assert not result.ok
    assert result.error == ErrorCode.ASSERTION
    assert "cert.expires_in" in result.message


# -- expectations -------------------------------------------------------------------------------

DOCUMENT = {"a": {"b": ["UP", "DOWN"]}, "count": 7, "ratio": 0.5, "name": "uptally"}


@pytest.mark.parametrize(
    "condition",
    [
        "status == 200",
        "status in [200, 204]",
        "latency < 200ms",
        'body contains "uptally"',
        'body matches "count.: \\d+"',
        'json.a.b[0] == "UP"',
        'json.a.b[1] != "UP"',
        "json.count < 10",
        "json.count > 5",
        "json.ratio >= 0.5",
        "len(json.a.b) == 2",
        'header.content-type contains "json"',
        'header.Content-Type contains "application/json"',
        'header.x-served-by == "edge-1"',
        "json.missing not exists",
    ],
)
async def test_a_holding_condition_passes(condition: str) -> None:
    routes = {"/doc": Response(200, DOCUMENT, headers={"X-Served-By": "edge-1"})}
    async with HttpTarget(routes) as target:
        result = await check(kind="http", url=target.url("/doc"), timeout="1s", expect=[condition])
    assert result.ok, f"{condition}: {result.message}"


@pytest.mark.parametrize(
    ("condition", "error", "fragment"),
    [
        ("status == 201", ErrorCode.STATUS, "status is 200"),
        ("status in [201, 204]", ErrorCode.STATUS, "status is 200"),
        ('body contains "DEGRADED"', ErrorCode.ASSERTION, "body does not contain"),
        ('body matches "^<html"', ErrorCode.ASSERTION, "body does not match"),
        ('json.a.b[0] == "DOWN"', ErrorCode.ASSERTION, 'json.a.b[0] is "UP"'),
        ('json.a.b[0] != "UP"', ErrorCode.ASSERTION, 'json.a.b[0] is "UP"'),
        ("json.count < 5", ErrorCode.ASSERTION, "json.count is 7"),
        ("json.count > 10", ErrorCode.ASSERTION, "json.count is 7"),
        ("json.a.b[5] == 1", ErrorCode.ASSERTION, "missing"),
        ('header.content-type contains "xml"', ErrorCode.ASSERTION, "header.content-type"),
    ],
)
async def test_a_failing_condition_is_reported_with_the_actual_value(
    condition: str, error: ErrorCode, fragment: str
) -> None:
    async with HttpTarget({"/doc": Response(200, DOCUMENT)}) as target:
        result = await check(kind="http", url=target.url("/doc"), timeout="1s", expect=[condition])
    assert not result.ok
    assert result.error == error
    assert fragment in result.message


async def test_the_first_failing_condition_decides_the_message() -> None:
    async with HttpTarget({"/": Response(503, "maintenance")}) as target:
        result = await check(
            kind="http",
            url=target.url(),
            timeout="1s",
            expect=["status == 200", 'body contains "ok"'],
        )
    assert result.error == ErrorCode.STATUS
    assert result.message == "status is 503, expected == 200"


async def test_json_conditions_on_a_non_json_body_fail_clearly() -> None:
    async with HttpTarget({"/": Response(200, "<html>")}) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['json.status == "UP"']
        )
    assert result.error == ErrorCode.ASSERTION
    assert "not valid JSON" in result.message


async def test_latency_fails_for_a_slow_server() -> None:
    async with HttpTarget({"/slow": Response(200, delay=0.3)}) as target:
        result = await check(
            kind="http", url=target.url("/slow"), timeout="2s", expect=["latency < 100ms"]
        )
    assert not result.ok
    assert result.error == ErrorCode.ASSERTION
    assert result.message.startswith("latency is ")
    assert "expected < 100ms" in result.message


# -- bodies -------------------------------------------------------------------------------------


async def test_a_chunked_body_is_reassembled() -> None:
    chunks = [b'{"status": ', b'"UP", ', b'"n": 3}']
    routes = {"/": Response(200, b"".join(chunks), chunked=True, chunks=chunks)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http",
            url=target.url(),
            timeout="1s",
            expect=['json.status == "UP"', "json.n == 3"],
        )
    assert result.ok, result.message


async def test_a_gzip_body_is_decompressed() -> None:
    routes = {"/": Response(200, {"status": "UP"}, gzip=True)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['json.status == "UP"']
        )
    assert result.ok, result.message
    assert target.requests[0].headers["accept-encoding"] == "gzip, deflate"


async def test_a_chunked_gzip_body_is_decompressed() -> None:
    routes = {"/": Response(200, "compressed and chunked", gzip=True, chunked=True)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['body == "compressed and chunked"']
        )
    assert result.ok, result.message


@pytest.mark.parametrize("raw", [False, True], ids=["zlib", "raw"])
async def test_a_deflate_body_is_decompressed(raw: bool) -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    data = compressor.compress(b"deflated!") + compressor.flush()
    routes = {"/": Response(200, data, headers={"Content-Encoding": "deflate"})}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['body == "deflated!"']
        )
    assert result.ok, result.message


async def test_a_corrupt_gzip_body_is_a_protocol_error() -> None:
    routes = {"/": Response(200, b"this is not gzip", headers={"Content-Encoding": "gzip"})}
    async with HttpTarget(routes) as target:
        result = await check(kind="http", url=target.url(), timeout="1s")
    assert result.error == ErrorCode.PROTOCOL
    assert "gzip" in result.message


async def test_a_head_request_does_not_wait_for_a_body() -> None:
    routes = {"/": Response(200, b"x" * 5000)}  # answers HEAD with Content-Length: 5000
    async with HttpTarget(routes) as target:
        result, elapsed = await timed_check(
            kind="http", url=target.url(), method="HEAD", timeout="1s", expect=["status == 200"]
        )
    assert result.ok, result.message
    assert elapsed < 0.5
    assert target.requests[0].method == "HEAD"


async def test_a_204_without_body_is_up() -> None:
    async with HttpTarget({"/": Response(204)}) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=["status in [200, 204]"]
        )
    assert result.ok, result.message


async def test_a_body_without_length_ends_when_the_server_closes() -> None:
    async def eof_delimited(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async with HttpTarget({"/": Raw(eof_delimited)}) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['body == "until the end"']
        )
    assert result.ok, result.message


async def test_a_large_body_sent_together_with_small_headers_is_read() -> None:
    body = b"z" * 300_000  # arrives in the same reads as the head

    async def one_write(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    async with HttpTarget({"/": Raw(one_write)}) as target:
        result = await check(kind="http", url=target.url(), timeout="2s", expect=["len(body) > 0"])
    assert result.ok, result.message


async def test_a_body_larger_than_max_body_fails() -> None:
    async with HttpTarget({"/": Response(200, b"x" * 5000)}) as target:
        result = await check(kind="http", url=target.url(), max_body="1KiB", timeout="1s")
    assert result.error == ErrorCode.BODY_TOO_LARGE
    assert "1024 bytes" in result.message


async def test_a_gzip_bomb_is_capped_after_decompression() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)  # about 5 KB on the wire
    routes = {"/": Response(200, bomb, headers={"Content-Encoding": "gzip"})}
    async with HttpTarget(routes) as target:
        result = await check(kind="http", url=target.url(), max_body="64KiB", timeout="1s")
    assert result.error == ErrorCode.BODY_TOO_LARGE
    assert "decompressed" in result.message


async def test_an_interim_103_answer_is_skipped() -> None:
    async def early_hints(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal"
        )
        await writer.drain()

    async with HttpTarget({"/": Raw(early_hints)}) as target:
        result = await check(
            kind="http",
            url=target.url(),
            timeout="1s",
            expect=[
                "status == 200",
                'body == "final"',
                'header.x-final == "yes"',
                "header.link not exists",
            ],
        )
    assert result.ok, result.message


async def test_repeated_headers_are_joined() -> None:
    async def two_cookies(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nVary: Accept\r\nVary: Origin\r\nContent-Length: 0\r\n\r\n"
        )
        await writer.drain()

    async with HttpTarget({"/": Raw(two_cookies)}) as target:
        result = await check(
            kind="http", url=target.url(), timeout="1s", expect=['header.vary == "Accept, Origin"']
        )
    assert result.ok, result.message


# -- one deadline -------------------------------------------------------------------------------


async def test_a_slow_answer_times_out_at_the_monitor_timeout() -> None:
    async with HttpTarget({"/": Response(200, delay=3)}) as target:
        result, elapsed = await timed_check(kind="http", url=target.url(), timeout="500ms")
    assert result.error == ErrorCode.TIMEOUT
    assert "waiting for the response" in result.message
    assert 0.45 < elapsed < 0.5 + MARGIN


async def test_the_deadline_covers_the_whole_redirect_chain() -> None:
    routes = {
        f"/{n}": Response(302, headers={"Location": f"/{n + 1}"}, delay=0.2) for n in range(5)
    }
    async with HttpTarget(routes) as target:
        result, elapsed = await timed_check(kind="http", url=target.url("/0"), timeout="500ms")
    assert result.error == ErrorCode.TIMEOUT
    assert elapsed < 0.5 + MARGIN
    assert len(target.requests) <= 3
