"""The tcp check against real local servers: connect, TLS, send/expect and conversations."""

from __future__ import annotations

import asyncio
import re

from tests.targets import (
    TcpTarget,
    check,
    line_server,
    make_certificate,
    monitor_from_yaml,
    reply_with,
    server_tls,
    timed_check,
)
from uptally.checks.base import ErrorCode
from uptally.checks.registry import run_check

MARGIN = 0.5


async def test_a_connect_only_check_is_up_when_the_port_accepts() -> None:
    async with TcpTarget(reply_with(b"", close=False)) as target:
        result = await check(kind="tcp", host=target.host, port=target.port, timeout="1s")
    assert result.ok, result.message
    assert [timing.name for timing in result.timings] == ["dns", "connect"]
    assert target.connections == 1


async def test_a_connect_only_check_is_down_when_nothing_listens() -> None:
    async with TcpTarget(reply_with(b"")) as target:
        port = target.port
    result = await check(kind="tcp", host="127.0.0.1", port=port, timeout="1s")
    assert result.error == ErrorCode.CONNECT_REFUSED
    assert result.message == f"connection refused by 127.0.0.1:{port}"


async def test_a_monitor_from_the_contract_example_sends_ping_and_expects_pong() -> None:
    async with TcpTarget(line_server({"ping": "pong\n"})) as target:
        config = f"""
monitors:
  - id: gateway
    kind: tcp
    host: {target.host}
    port: {target.port}
    send: "ping\\n"
    timeout: 1s
    expect: ["reply contains pong"]
"""
        result = await run_check(monitor_from_yaml(config))
    assert result.ok, result.message
    assert [timing.name for timing in result.timings] == ["dns", "connect", "reply"]


async def test_it_succeeds_as_soon_as_the_reply_matches_without_waiting_for_close() -> None:
    async with TcpTarget(line_server({"ping": "pong\n"})) as target:  # never closes by itself
        result, elapsed = await timed_check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"'],
            timeout="3s",
        )
    assert result.ok, result.message
    assert elapsed < 1.5


async def test_a_reply_arriving_in_pieces_is_collected() -> None:
    async def slow_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        for piece in (b"p", b"o", b"n", b"g\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)  # separate segments, not synchronisation
        await asyncio.Event().wait()

    async with TcpTarget(slow_pong) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply == "pong\\n"'],
            timeout="2s",
        )
    assert result.ok, result.message


async def test_a_banner_can_be_expected_without_sending() -> None:
    async with TcpTarget(reply_with(b"220 mail.example ESMTP ready\r\n", close=False)) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            expect=['reply matches "^220 "', 'reply contains "ESMTP"'],
            timeout="1s",
        )
    assert result.ok, result.message


async def test_a_send_without_expectations_only_delivers_the_data() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.readline())

    async with TcpTarget(sink) as target:
        result = await check(
            kind="tcp", host=target.host, port=target.port, send="hello\n", timeout="1s"
        )
        line = await asyncio.wait_for(received.get(), 2)
    assert result.ok, result.message
    assert line == b"hello\n"


async def test_a_wrong_reply_fails_with_what_was_received_when_the_server_closes() -> None:
    async with TcpTarget(reply_with(b"ERR busy\n")) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"'],
            timeout="1s",
        )
    assert result.error == ErrorCode.ASSERTION
    assert 'reply does not contain "pong"' in result.message
    assert "ERR busy" in result.message


async def test_a_close_without_any_reply_fails_as_closed() -> None:
    async with TcpTarget(reply_with(b"")) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"'],
            timeout="1s",
        )
    assert result.error == ErrorCode.CLOSED
    assert "no reply" in result.message


async def test_a_missing_reply_times_out_with_the_unmet_expectation() -> None:
    async with TcpTarget(line_server({"ping": "still thinking\n"})) as target:
        result, elapsed = await timed_check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"'],
            timeout="500ms",
        )
    assert result.error == ErrorCode.TIMEOUT
    assert re.match(r"timed out after (0\.4\d*|0\.5\d*)s", result.message)  # from connect
    assert "waiting for the reply" in result.message
    assert 'reply does not contain "pong"' in result.message
    assert "still thinking" in result.message
    assert elapsed < 0.5 + MARGIN


async def test_a_reply_larger_than_max_reply_fails() -> None:
    async with TcpTarget(reply_with(b"x" * 5000, close=False)) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            expect=['reply contains "END"'],
            max_reply="1KiB",
            timeout="1s",
        )
    assert result.error == ErrorCode.BODY_TOO_LARGE
    assert "1024 bytes" in result.message


async def test_latency_and_length_of_the_reply_can_be_expected() -> None:
    async with TcpTarget(line_server({"ping": "pong\n"})) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=["len(reply) == 5", "latency < 2s"],
            timeout="2s",
        )
    assert result.ok, result.message


async def test_a_slow_reply_fails_on_latency_rather_than_timing_out() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        await asyncio.sleep(0.3)  # a slow server, not synchronisation
        writer.write(b"pong\n")
        await writer.drain()
        await asyncio.Event().wait()

    async with TcpTarget(slow) as target:
        result, elapsed = await timed_check(
            kind="tcp",
            host=target.host,
            port=target.port,
            send="ping\n",
            expect=['reply contains "pong"', "latency < 100ms"],
            timeout="3s",
        )
    assert result.error == ErrorCode.ASSERTION
    assert result.message.startswith("latency is ")
    assert "expected < 100ms" in result.message
    assert elapsed < 1.5


# -- TLS ----------------------------------------------------------------------------------------


async def test_tls_without_verification_connects_and_talks() -> None:
    async with TcpTarget(line_server({"ping": "pong\n"}), ssl=server_tls()) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            tls=True,
            verify_tls=False,
            send="ping\n",
            expect=['reply contains "pong"'],
            timeout="2s",
        )
    assert result.ok, result.message
    assert [timing.name for timing in result.timings] == ["dns", "connect", "tls", "reply"]


async def test_tls_with_verification_rejects_a_self_signed_certificate() -> None:
    async with TcpTarget(line_server({}), ssl=server_tls()) as target:
        result = await check(kind="tcp", host=target.host, port=target.port, tls=True, timeout="2s")
    assert result.error == ErrorCode.TLS
    assert "self-signed" in result.message


async def test_tls_cert_expiry_is_checked_without_waiting_for_a_reply() -> None:
    soon = server_tls(make_certificate(3))
    async with TcpTarget(line_server({"ping": "pong\n"}), ssl=soon) as target:
        fields = {
            "kind": "tcp",
            "host": target.host,
            "port": target.port,
            "tls": True,
            "verify_tls": False,
            "timeout": "2s",
        }
        fine, _ = await timed_check(**fields, expect=["cert.expires_in > 2d"])
        failing, elapsed = await timed_check(
            **fields, send="ping\n", expect=['reply contains "pong"', "cert.expires_in > 14d"]
        )
    assert fine.ok, fine.message
    assert failing.error == ErrorCode.ASSERTION
    assert failing.message == "cert.expires_in is 2d 23h, expected > 14d"
    assert elapsed < 1.5  # an expiring certificate does not get better by waiting


async def test_server_name_is_sent_for_sni() -> None:
    names: list[str | None] = []
    context = server_tls()

    def remember(sock: object, name: str | None, ctx: object) -> None:
        names.append(name)

    context.sni_callback = remember  # type: ignore[assignment]
    async with TcpTarget(reply_with(b"hi", close=False), ssl=context) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            tls=True,
            verify_tls=False,
            server_name="gw.example.test",
            timeout="2s",
        )
    assert result.ok, result.message
    assert names == ["gw.example.test"]


# -- conversations ------------------------------------------------------------------------------


def session_server() -> TcpTarget:
    """Greets with a session id, wants it back in AUTH, then answers COUNT."""
    state = {"authed": False}

    def auth(line: str) -> str:
        state["authed"] = line == "AUTH s-4711"
        return "OK welcome\n" if state["authed"] else "ERR bad session\n"

    def count(line: str) -> str:
        return "count=42\n" if state["authed"] else "ERR not authenticated\n"

    return TcpTarget(line_server({"COUNT": count, "*": auth}, greeting="HELLO session=s-4711 v2\n"))


async def test_a_conversation_runs_several_exchanges_over_one_connection_with_captures() -> None:
    async with session_server() as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            timeout="2s",
            conversation=[
                {
                    "expect": ['reply contains "HELLO"'],
                    "capture": {"session": 'reply matches "session=(\\S+)"'},
                },
                {"send": "AUTH ${session}\n", "expect": ['reply contains "OK"']},
                {
                    "send": "COUNT\n",
                    "expect": ['reply matches "count=\\d+"'],
                    "capture": {"count": 'reply matches "count=(\\d+)"'},
                },
            ],
        )
    assert result.ok, result.message
    assert result.captured == {"session": "s-4711", "count": "42"}
    assert target.connections == 1
    names = [timing.name for timing in result.timings]
    assert names == ["dns", "connect", "exchange 1", "exchange 2", "exchange 3"]


async def test_a_failing_exchange_is_named_in_the_message() -> None:
    async with session_server() as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            timeout="500ms",
            conversation=[
                {"expect": ['reply contains "HELLO"']},
                {"send": "AUTH wrong\n", "expect": ['reply contains "OK"']},
            ],
        )
    assert result.error == ErrorCode.TIMEOUT
    assert "exchange 2" in result.message
    assert "ERR bad session" in result.message


async def test_a_captured_value_can_be_expected_in_a_later_exchange() -> None:
    async def echo_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"token=abc\n")
        while line := await reader.readline():
            writer.write(b"echo " + line)
            await writer.drain()

    async with TcpTarget(echo_twice) as target:
        result = await check(
            kind="tcp",
            host=target.host,
            port=target.port,
            timeout="1s",
            conversation=[
                {"capture": {"token": 'reply matches "token=(\\w+)"'}},
                {"send": "${token}\n", "expect": ["reply contains ${token}"]},
            ],
        )
    assert result.ok, result.message
    assert result.captured == {"token": "abc"}
