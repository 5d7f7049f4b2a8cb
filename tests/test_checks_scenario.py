"""The scenario check: ordered steps of other kinds under one deadline, sharing captured values."""

from __future__ import annotations

import asyncio

from tests.targets import (
    DnsTarget,
    HttpTarget,
    Request,
    Response,
    TcpTarget,
    check,
    monitor_from_yaml,
    timed_check,
)
from uptally.checks.base import ErrorCode
from uptally.checks.registry import run_check

MARGIN = 0.5


class Chat:
    """A tiny chat service: a TCP line protocol to post messages, an HTTP API to count them."""

    def __init__(self, lose_messages: bool = False) -> None:
        self.messages = ["welcome to the chat"]
        self.accepted = len(self.messages)  # what the TCP side claims to have stored
        self.lose_messages = lose_messages
        self.tcp = TcpTarget(self._session)
        self.http = HttpTarget({"/api/messages/count": self._count})

    async def __aenter__(self) -> Chat:
        await self.tcp.__aenter__()
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.http.__aexit__(*exc_info)
        await self.tcp.__aexit__(*exc_info)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = None
        while line := (await reader.readline()).decode().strip():
            command, _, argument = line.partition(" ")
            if command == "IDENTIFY":
                name = argument
                writer.write(f"WELCOME {name}\n".encode())
            elif command == "SEND" and name:
                self.accepted += 1
                if not self.lose_messages:
                    self.messages.append(argument)
                writer.write(f"OK stored count={self.accepted}\n".encode())
            else:
                writer.write(b"ERR identify first\n")
            await writer.drain()

    def _count(self, request: Request) -> Response:
        return Response(200, {"count": len(self.messages)})


DESIGN_EXAMPLE = """
monitors:
  - id: chat-roundtrip
    name: Chat round trip
    kind: scenario
    timeout: 3s
    steps:
      - name: identify and send
        kind: tcp
        host: 127.0.0.1
        port: {tcp_port}
        conversation:
          - send: "IDENTIFY probe\\n"
            expect: ['reply contains "WELCOME probe"']
        send: "SEND hello from uptally\\n"
        expect: ['reply contains "OK"']
        capture:
          n: 'reply matches "count=(\\d+)"'
      - name: compare counts
        kind: http
        url: {count_url}
        expect:
          - status == 200
          - json.count == ${{n}}
"""


async def test_the_design_example_connects_identifies_sends_fetches_and_compares_counts() -> None:
    async with Chat() as chat:
        config = DESIGN_EXAMPLE.format(
            tcp_port=chat.tcp.port, count_url=chat.http.url("/api/messages/count")
        )
        result = await run_check(monitor_from_yaml(config))
    assert result.ok, result.message
    assert chat.messages == ["welcome to the chat", "hello from uptally"]
    assert result.captured == {"n": "2"}
    assert [timing.name for timing in result.timings] == ["identify and send", "compare counts"]


async def test_the_design_example_fails_naming_the_step_when_counts_differ() -> None:
    async with Chat(lose_messages=True) as chat:
        config = DESIGN_EXAMPLE.format(
            tcp_port=chat.tcp.port, count_url=chat.http.url("/api/messages/count")
        )
        result = await run_check(monitor_from_yaml(config))
    assert not result.ok
    assert result.error == ErrorCode.ASSERTION
    assert result.message.startswith("step 2 (compare counts): json.count is 1")
    assert '"2"' in result.message


async def test_a_token_captured_from_json_is_used_in_url_headers_and_bodies() -> None:
    def login(request: Request) -> Response:
        return Response(200, {"token": "t-123", "user": {"id": 42}})

    def profile(request: Request) -> Response:
        ok = request.headers.get("authorization") == "Bearer t-123"
        return Response(200 if ok else 401, {"name": "alice", "posts": 3})

    routes = {
        "/login": login,
        "/users/42": profile,
        "/audit": Response(204),
        "/search": Response(200, {"hits": 1}),
    }
    async with HttpTarget(routes) as target:
        result = await check(
            kind="scenario",
            timeout="2s",
            steps=[
                {
                    "name": "login",
                    "kind": "http",
                    "url": target.url("/login"),
                    "method": "POST",
                    "json": {"user": "alice"},
                    "capture": {"token": "json.token", "uid": "json.user.id"},
                },
                {
                    "name": "profile",
                    "kind": "http",
                    "url": target.url("/users/${uid}"),
                    "headers": {"Authorization": "Bearer ${token}"},
                    "expect": ["status == 200", 'json.name == "alice"'],
                    "capture": {"posts": "json.posts"},
                },
                {
                    "kind": "http",
                    "url": target.url("/audit"),
                    "method": "POST",
                    "json": {"token": "${token}", "seen": ["${uid}", 1]},
                },
                {
                    "kind": "http",
                    "url": target.url("/search"),
                    "method": "POST",
                    "body": "user=${uid}&posts=${posts}",
                },
            ],
        )
    assert result.ok, result.message
    assert result.captured == {"token": "t-123", "uid": 42, "posts": 3}
    _login, profile_request, audit_request, search_request = target.requests
    assert profile_request.path == "/users/42"
    assert audit_request.json() == {"token": "t-123", "seen": ["42", 1]}
    assert search_request.body == b"user=42&posts=3"


async def test_a_failing_step_stops_the_scenario_and_is_named() -> None:
    routes = {"/one": Response(200), "/two": Response(500), "/three": Response(200)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="scenario",
            timeout="2s",
            steps=[
                {"kind": "http", "url": target.url("/one")},
                {"kind": "http", "url": target.url("/two"), "expect": ["status == 200"]},
                {"kind": "http", "url": target.url("/three")},
            ],
        )
    assert result.error == ErrorCode.STATUS
    assert result.message == "step 2 (http): status is 500, expected == 200"
    assert target.paths() == ["/one", "/two"]


async def test_all_steps_share_one_deadline() -> None:
    routes = {f"/{n}": Response(200, delay=0.3) for n in range(5)}
    async with HttpTarget(routes) as target:
        result, elapsed = await timed_check(
            kind="scenario",
            timeout="1s",
            steps=[
                {"name": f"hop {n}", "kind": "http", "url": target.url(f"/{n}")} for n in range(5)
            ],
        )
    assert result.error == ErrorCode.TIMEOUT
    assert result.message.startswith("step 4 (hop 3): timed out")
    assert elapsed < 1 + MARGIN
    assert target.paths() == ["/0", "/1", "/2", "/3"]


async def test_a_step_timeout_ends_that_step_early() -> None:
    async with HttpTarget({"/slow": Response(200, delay=3)}) as target:
        result, elapsed = await timed_check(
            kind="scenario",
            timeout="5s",
            steps=[
                {"name": "slow", "kind": "http", "url": target.url("/slow"), "timeout": "300ms"}
            ],
        )
    assert result.error == ErrorCode.TIMEOUT
    assert result.message.startswith("step 1 (slow): timed out after 0.3")
    assert elapsed < 0.3 + MARGIN


async def test_a_tcp_reply_capture_feeds_a_later_tcp_send() -> None:
    async def ticket_desk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode().strip()
        answer = "TICKET 9f2c\n" if line == "NEW" else f"STATUS {line.split()[-1]} open\n"
        writer.write(answer.encode())
        await writer.drain()

    async with TcpTarget(ticket_desk) as target:
        result = await check(
            kind="scenario",
            timeout="2s",
            steps=[
                {
                    "kind": "tcp",
                    "host": target.host,
                    "port": target.port,
                    "send": "NEW\n",
                    "capture": {"ticket": 'reply matches "TICKET (\\w+)"'},
                },
                {
                    "kind": "tcp",
                    "host": target.host,
                    "port": target.port,
                    "send": "GET ${ticket}\n",
                    "expect": ['reply contains "STATUS ${ticket} open"'],
                },
            ],
        )
    assert result.ok, result.message
    assert result.captured == {"ticket": "9f2c"}


async def test_dns_and_jsonrpc_steps_take_part_with_captures() -> None:
    def rpc(request: Request) -> Response:
        call = request.json()
        result = {"session": "abc"} if call["method"] == "open" else {"echo": call["params"]}
        return Response(200, {"jsonrpc": "2.0", "id": call["id"], "result": result})

    async with HttpTarget({"/rpc": rpc}) as api:
        zone = {"api.example.test": {"A": [api.host]}}
        async with DnsTarget(zone) as dns_server:
            result = await check(
                kind="scenario",
                timeout="2s",
                steps=[
                    {
                        "name": "resolve",
                        "kind": "dns",
                        "host": "api.example.test",
                        "server": dns_server.address,
                        "capture": {"ip": "answers[0]"},
                    },
                    {
                        "name": "open",
                        "kind": "jsonrpc",
                        "url": f"http://${{ip}}:{api.port}/rpc",
                        "method": "open",
                        "capture": {"session": "result.session"},
                    },
                    {
                        "name": "echo",
                        "kind": "jsonrpc",
                        "url": f"http://${{ip}}:{api.port}/rpc",
                        "method": "echo",
                        "params": {"session": "${session}"},
                        "expect": ['result.echo.session == "${session}"'],
                    },
                ],
            )
    assert result.ok, result.message
    assert result.captured == {"ip": "127.0.0.1", "session": "abc"}


async def test_a_capture_that_finds_nothing_fails_the_step() -> None:
    async with HttpTarget({"/": Response(200, {"other": 1})}) as target:
        result = await check(
            kind="scenario",
            timeout="1s",
            steps=[
                {
                    "name": "login",
                    "kind": "http",
                    "url": target.url(),
                    "capture": {"t": "json.token"},
                }
            ],
        )
    assert result.error == ErrorCode.ASSERTION
    assert result.message.startswith("step 1 (login): cannot capture t")


async def test_a_captured_value_with_spaces_is_percent_encoded_in_a_url() -> None:
    routes = {"/first": Response(200, {"q": "two words"}), "/find": Response(200)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="scenario",
            timeout="1s",
            steps=[
                {"kind": "http", "url": target.url("/first"), "capture": {"q": "json.q"}},
                {"kind": "http", "url": target.url("/find?q=${q}")},
            ],
        )
    assert result.ok, result.message
    assert target.requests[1].target == "/find?q=two%20words"


async def test_a_captured_value_with_a_line_break_is_not_injected_into_headers() -> None:
    routes = {"/first": Response(200, {"token": "abc\r\nX-Injected: yes"}), "/next": Response(200)}
    async with HttpTarget(routes) as target:
        result = await check(
            kind="scenario",
            timeout="1s",
            steps=[
                {"kind": "http", "url": target.url("/first"), "capture": {"token": "json.token"}},
                {
                    "name": "use token",
                    "kind": "http",
                    "url": target.url("/next"),
                    "headers": {"X-Token": "${token}"},
                },
            ],
        )
    assert result.error == ErrorCode.PROTOCOL
    assert result.message.startswith("step 2 (use token): ")
    assert "X-Token" in result.message
    assert target.paths() == ["/first"]


async def test_a_value_captured_in_a_tcp_conversation_is_usable_in_a_later_step() -> None:
    async with Chat() as chat:
        result = await check(
            kind="scenario",
            timeout="2s",
            steps=[
                {
                    "kind": "tcp",
                    "host": chat.tcp.host,
                    "port": chat.tcp.port,
                    "conversation": [
                        {"send": "IDENTIFY probe\n", "expect": ["reply contains WELCOME"]},
                        {
                            "send": "SEND hi\n",
                            "capture": {"n": 'reply matches "count=(\\d+)"'},
                        },
                    ],
                },
                {
                    "kind": "http",
                    "url": chat.http.url("/api/messages/count"),
                    "expect": ["json.count == ${n}"],
                },
            ],
        )
    assert result.ok, result.message
