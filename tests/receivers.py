"""Real receivers on 127.0.0.1 for notification tests: an HTTP endpoint and an SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web

from tests.procs import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request; `answer(request_number, path)` decides the status (200 default)."""

    answer: Callable[[int, str], int] = lambda _n, _path: 200
    delay_s: float = 0.0
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> HttpReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.answer(len(self.requests), request.path)
        self.requests.append(Received(request.path, dict(request.headers), body, status))
        async with self._changed:
            self._changed.notify_all()
        return web.Response(status=status, text="ok" if status < 400 else "no")

    def ok(self, path: str | None = None) -> list[Received]:
        """Requests answered with 2xx (on `path`, if given)."""
        return [
            r for r in self.requests if 200 <= r.status < 300 and (path is None or r.path == path)
        ]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1: collects messages; optional AUTH with one user and password."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.messages: list[Message] = []
        self.user = user
        self.password = password
        self.refuse: int | None = None  # answer every DATA with this SMTP code while set
        self._changed: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    async def __aenter__(self) -> SmtpReceiver:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self._changed = asyncio.Condition()
        self._loop = asyncio.get_running_loop()
        receiver = self

        class Handler:
            async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
                if receiver.refuse is not None:
                    return f"{receiver.refuse} refused for the test"
                message = message_from_bytes(envelope.content)
                assert receiver._loop is not None
                asyncio.run_coroutine_threadsafe(receiver._add(message), receiver._loop)
                return "250 OK"

        def authenticate(
            _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
        ) -> AuthResult:
            login = data.login.decode() if isinstance(data.login, bytes) else data.login
            secret = data.password.decode() if isinstance(data.password, bytes) else data.password
            return AuthResult(success=(login, secret) == (self.user, self.password))

        options: dict[str, Any] = {}
        if self.user is not None:
            options = {"authenticator": authenticate, "auth_require_tls": False}
        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._controller.stop)

    async def _add(self, message: Message) -> None:
        assert self._changed is not None
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        assert self._changed is not None
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(condition)


async def poll_until(
    condition: Callable[[], Any], timeout: float = 15.0, every: float = 0.01
) -> None:
    """Wait until an async (or plain) condition holds, checking every `every` s, with a deadline."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(every)
