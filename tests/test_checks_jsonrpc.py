"""The jsonrpc check against real local servers: JSON-RPC 2.0 over POST, plain JSON and MCP SSE."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from tests.conftest import serve_app
from tests.receivers import poll_until
from tests.targets import HttpTarget, Raw, Request, Response, check, monitor, timed_check
from uptally import __version__
from uptally.checks.base import ErrorCode
from uptally.checks.registry import run_check

MARGIN = 0.5
INITIALIZE_PARAMS = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "uptally", "version": "1"},
}
INITIALIZE_RESULT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"tools": {"listChanged": True}},
    "serverInfo": {"name": "demo-mcp", "version": "2.1.0"},
}


def answer(request: Request, **fields: Any) -> dict[str, Any]:
    """A JSON-RPC 2.0 answer to `request` with the given result or error."""
    return {"jsonrpc": "2.0", "id": request.json()["id"], **fields}


def rpc(
    result: Any = None, *, error: Any = None, status: int = 200, delay: float = 0
) -> Callable[[Request], Response]:
    def route(request: Request) -> Response:
        fields = {"error": error} if error is not None else {"result": result}
        return Response(status, answer(request, **fields), delay=delay)

    return route


def sse(request: Request, message: dict[str, Any]) -> bytes:
    return b"event: message\r\ndata: " + json.dumps(message).encode() + b"\r\n\r\n"


def mcp_sse(request: Request) -> Response:
    body = sse(request, answer(request, result=INITIALIZE_RESULT))
    return Response(200, body, headers={"Content-Type": "text/event-stream"})


async def test_it_posts_a_json_rpc_2_0_call_and_judges_the_result() -> None:
    async with HttpTarget({"/rpc": rpc({"height": 1234, "syncing": False})}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="chain_status",
            params={"verbose": True},
            timeout="1s",
            expect=["result.height > 1000", "result.syncing == false"],
        )
    assert result.ok, result.message
    (request,) = target.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert "application/json" in request.headers["accept"]
    assert "text/event-stream" in request.headers["accept"]
    call = request.json()
    assert call == {
        "jsonrpc": "2.0",
        "id": call["id"],
        "method": "chain_status",
        "params": {"verbose": True},
    }


async def test_every_call_carries_the_uptally_user_agent() -> None:
    async with HttpTarget({"/rpc": rpc("pong")}) as target:
        result = await run_check(
            monitor(kind="jsonrpc", url=target.url("/rpc"), method="ping", timeout="1s"),
            location="us-east",
        )
    assert result.ok, result.message
    assert target.requests[0].headers["user-agent"] == f"uptally/{__version__} (+location=us-east)"


async def test_a_call_without_params_sends_none() -> None:
    async with HttpTarget({"/rpc": rpc("pong")}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="ping", timeout="1s")
    assert result.ok, result.message
    assert "params" not in target.requests[0].json()


async def test_configured_headers_are_sent_and_override_the_defaults_in_any_case() -> None:
    async with HttpTarget({"/rpc": rpc("pong")}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="ping",
            headers={"authorization": "Bearer t0k3n", "accept": "application/json"},
            timeout="1s",
        )
    assert result.ok, result.message
    headers = target.requests[0].headers
    assert headers["authorization"] == "Bearer t0k3n"
    assert headers["accept"] == "application/json"


async def test_an_mcp_initialize_answered_as_plain_json_is_up() -> None:
    async with HttpTarget({"/v1/mcp": rpc(INITIALIZE_RESULT)}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/v1/mcp"),
            method="initialize",
            params=INITIALIZE_PARAMS,
            timeout="1s",
            expect=[
                'result.serverInfo.name == "demo-mcp"',
                'result.protocolVersion == "2025-06-18"',
            ],
        )
    assert result.ok, result.message
    assert target.requests[0].json()["params"] == INITIALIZE_PARAMS


async def test_an_mcp_initialize_answered_as_an_event_stream_is_up() -> None:
    async with HttpTarget({"/v1/mcp": mcp_sse}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/v1/mcp"),
            method="initialize",
            params=INITIALIZE_PARAMS,
            timeout="1s",
            expect=['result.serverInfo.name == "demo-mcp"', "result.capabilities.tools exists"],
        )
    assert result.ok, result.message


async def test_an_event_stream_answer_split_over_several_data_lines_is_joined() -> None:
    def split_event(request: Request) -> Response:
        text = json.dumps(answer(request, result={"ok": True}), indent=1)
        lines = "".join(f"data: {line}\n" for line in text.splitlines())
        body = f": comment\nevent: message\nid: 7\n{lines}\n"
        return Response(200, body, headers={"Content-Type": "text/event-stream"})

    async with HttpTarget({"/mcp": split_event}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/mcp"),
            method="initialize",
            timeout="1s",
            expect=["result.ok == true"],
        )
    assert result.ok, result.message


async def test_other_events_before_the_answer_are_skipped() -> None:
    def chatty(request: Request) -> Response:
        notice = {"jsonrpc": "2.0", "method": "notifications/message", "params": {}}
        other = {"jsonrpc": "2.0", "id": 99, "result": "not ours"}
        body = sse(request, notice) + sse(request, other)
        body += sse(request, answer(request, result="ours"))
        return Response(200, body, headers={"Content-Type": "text/event-stream"})

    async with HttpTarget({"/mcp": chatty}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/mcp"),
            method="initialize",
            timeout="1s",
            expect=['result == "ours"'],
        )
    assert result.ok, result.message


async def test_an_event_stream_left_open_after_the_answer_ends_early() -> None:
    async def open_stream(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        event = sse(request, answer(request, result=INITIALIZE_RESULT))
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        await asyncio.Event().wait()  # keeps the stream open, as MCP servers may

    async with HttpTarget({"/mcp": Raw(open_stream)}) as target:
        result, elapsed = await timed_check(
            kind="jsonrpc",
            url=target.url("/mcp"),
            method="initialize",
            params=INITIALIZE_PARAMS,
            timeout="2s",
            expect=['result.serverInfo.name == "demo-mcp"'],
        )
    assert result.ok, result.message
    assert elapsed < 1.0


async def test_an_answer_arriving_in_pieces_on_an_open_stream_is_recognised() -> None:
    async def pieces(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        event = sse(request, answer(request, result={"ready": True}))  # ends with \r\n\r\n
        for piece in (event[:10], event[10:-3], event[-3:]):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.02)  # separate reads, not synchronisation
        await asyncio.Event().wait()

    async with HttpTarget({"/mcp": Raw(pieces)}) as target:
        result, elapsed = await timed_check(
            kind="jsonrpc",
            url=target.url("/mcp"),
            method="initialize",
            timeout="2s",
            expect=["result.ready == true"],
        )
    assert result.ok, result.message
    assert elapsed < 1.0


async def test_an_mcp_initialize_that_takes_2s_against_a_1s_timeout_times_out() -> None:
    async with HttpTarget({"/v1/mcp": rpc(INITIALIZE_RESULT, delay=2)}) as target:
        result, elapsed = await timed_check(
            kind="jsonrpc",
            url=target.url("/v1/mcp"),
            method="initialize",
            params=INITIALIZE_PARAMS,
            timeout="1s",
        )
    assert not result.ok
    assert result.error == ErrorCode.TIMEOUT
    # The time is measured from the request's start, a moment after the check's deadline was
    # set: on a loaded machine it reads 0.99s as well as 1s.
    assert re.match(
        r"timed out after (0\.9\d*|1(\.\d+)?)s waiting for the response", result.message
    )
    assert 0.95 < elapsed < 1 + MARGIN


async def test_a_json_rpc_error_object_is_down_with_its_code_and_message() -> None:
    error = {"code": -32601, "message": "Method not found"}
    async with HttpTarget({"/rpc": rpc(error=error)}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="nope", timeout="1s")
    assert not result.ok
    assert result.error == ErrorCode.JSONRPC_ERROR
    assert result.message == "JSON-RPC error -32601: Method not found"


async def test_an_expected_json_rpc_error_can_be_asserted() -> None:
    error = {"code": -32601, "message": "Method not found"}
    async with HttpTarget({"/rpc": rpc(error=error)}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="nope",
            timeout="1s",
            expect=["error.code == -32601"],
        )
    assert result.ok, result.message


async def test_a_null_error_next_to_a_result_is_not_an_error() -> None:
    def legacy(request: Request) -> Response:
        return Response(200, answer(request, result="fine", error=None))

    async with HttpTarget({"/rpc": legacy}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="x", timeout="1s")
    assert result.ok, result.message


async def test_an_http_error_status_is_down() -> None:
    error = {"code": -32603, "message": "Internal error"}
    async with HttpTarget({"/rpc": rpc(error=error, status=500)}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="x", timeout="1s")
    assert result.error == ErrorCode.STATUS
    assert "500" in result.message


async def test_a_transport_error_is_down() -> None:
    async with HttpTarget() as target:
        url = target.url("/rpc")
    result = await check(kind="jsonrpc", url=url, method="x", timeout="1s")
    assert result.error == ErrorCode.CONNECT_REFUSED


async def test_an_answer_that_is_not_json_rpc_is_a_protocol_error() -> None:
    async with HttpTarget({"/rpc": Response(200, "<html>hello</html>")}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="x", timeout="1s")
    assert result.error == ErrorCode.PROTOCOL
    assert "no JSON-RPC answer" in result.message
    assert "<html>" in result.message


async def test_an_answer_to_another_request_id_is_a_protocol_error() -> None:
    wrong = {"jsonrpc": "2.0", "id": 12345, "result": "not ours"}
    async with HttpTarget({"/rpc": Response(200, wrong)}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="x", timeout="1s")
    assert result.error == ErrorCode.PROTOCOL


async def test_an_answer_that_is_not_version_2_0_is_a_protocol_error() -> None:
    def old(request: Request) -> Response:
        return Response(200, {"jsonrpc": "1.0", "id": request.json()["id"], "result": 1})

    async with HttpTarget({"/rpc": old}) as target:
        result = await check(kind="jsonrpc", url=target.url("/rpc"), method="x", timeout="1s")
    assert result.error == ErrorCode.PROTOCOL
    assert "2.0" in result.message


async def test_a_batch_answer_is_searched_for_our_id() -> None:
    def batch(request: Request) -> Response:
        ours = answer(request, result="mine")
        return Response(200, [{"jsonrpc": "2.0", "id": 77, "result": "other"}, ours])

    async with HttpTarget({"/rpc": batch}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="x",
            timeout="1s",
            expect=['result == "mine"'],
        )
    assert result.ok, result.message


async def test_a_failing_result_assertion_names_the_value() -> None:
    async with HttpTarget({"/rpc": rpc({"peers": 1})}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="net_info",
            timeout="1s",
            expect=["result.peers >= 3"],
        )
    assert result.error == ErrorCode.ASSERTION
    assert result.message == "result.peers is 1, expected >= 3"


async def test_http_facts_are_available_too() -> None:
    async with HttpTarget({"/rpc": rpc("pong")}) as target:
        result = await check(
            kind="jsonrpc",
            url=target.url("/rpc"),
            method="ping",
            timeout="1s",
            expect=["status == 200", 'header.content-type contains "json"', "latency < 500ms"],
        )
    assert result.ok, result.message


class McpSessions:
    """A streamable-HTTP MCP endpoint's session bookkeeping: `initialize` opens a session
    (answered with Mcp-Session-Id), DELETE with that header ends it."""

    def __init__(self) -> None:
        self.open: set[str] = set()
        self.made = 0

    def route(self, request: Request) -> Response:
        if request.method == "DELETE":
            session = request.headers.get("mcp-session-id", "")
            if session not in self.open:
                return Response(404, b"")
            self.open.discard(session)
            return Response(200, b"")
        self.made += 1
        session = f"session-{self.made}"
        self.open.add(session)
        body = sse(request, answer(request, result=INITIALIZE_RESULT))
        headers = {"Content-Type": "text/event-stream", "Mcp-Session-Id": session}
        return Response(200, body, headers=headers)


async def test_an_mcp_check_ends_the_session_it_opened() -> None:
    server = McpSessions()
    async with HttpTarget({"/mcp": server.route}) as target:
        for expect in (['result.serverInfo.name == "demo-mcp"'], ["result.nope exists"]):
            await check(
                kind="jsonrpc",
                url=target.url("/mcp"),
                method="initialize",
                params=INITIALIZE_PARAMS,
                headers={"Authorization": "Bearer t"},
                timeout="1s",
                expect=expect,
            )
    assert server.made == 2
    assert server.open == set()  # up or down, no session is left behind
    deletes = [r for r in target.requests if r.method == "DELETE"]
    assert [r.headers["mcp-session-id"] for r in deletes] == ["session-1", "session-2"]
    assert all(r.headers["authorization"] == "Bearer t" for r in deletes)
    assert all("content-type" not in r.headers for r in deletes)


async def test_a_check_of_a_real_mcp_server_leaves_no_session_open() -> None:
    import mcp.server.mcpserver as mcp_server  # the test extra brings the MCP SDK

    server = mcp_server.MCPServer("demo-mcp")
    app = server.streamable_http_app()
    sessions = server.session_manager._server_instances  # the SDK's table of open sessions
    async with server.session_manager.run(), serve_app(app) as base:
        for _ in range(3):
            result = await check(
                kind="jsonrpc",
                url=f"{base}/mcp",
                method="initialize",
                params=INITIALIZE_PARAMS,
                timeout="5s",
                expect=['result.serverInfo.name == "demo-mcp"'],
            )
            assert result.ok, result.message
        await poll_until(lambda: not sessions, timeout=5)
    assert not sessions
