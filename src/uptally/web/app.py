"""The ASGI application: every route of the HTTP surface, bound to one runtime."""

from __future__ import annotations

from fastapi import FastAPI

from uptally import __version__
from uptally.runtime import Runtime
from uptally.web import (
    api_audit,
    api_config,
    api_dr,
    api_monitors,
    api_outages,
    api_probes,
    api_tokens,
    errors,
    health,
    page,
    ping,
    security,
    statuspage_v2,
)
from uptally.web.ratelimit import FailureLimiter


class App:
    """The ASGI entry point: heartbeat pings go straight to their handler, the rest to the API."""

    def __init__(self, api: FastAPI, runtime: Runtime) -> None:
        self.api = api
        self.runtime = runtime

    async def __call__(self, scope: ping.Scope, receive: ping.Receive, send: ping.Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        send = security.with_headers(send, scope["path"])
        if scope["path"].startswith(ping.PREFIX):
            await ping.handle(scope, receive, send, self.runtime)
        else:
            limit = self.runtime.config.security.max_body
            await security.limit_body(self.api, scope, receive, send, limit)


def create_app(runtime: Runtime, admin_token: str | None = None) -> App:
    return App(create_api(runtime, admin_token), runtime)


def create_api(runtime: Runtime, admin_token: str | None = None) -> FastAPI:
    app = FastAPI(
        title="uptally",
        version=__version__,
        description="Availability monitoring with verified downtime. Admin endpoints need "
        "`Authorization: Bearer <token>`: a scoped API token (`uptally tokens create`) or "
        "the bootstrap `UPTALLY_ADMIN_TOKEN`.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.admin_token = admin_token
    settings = runtime.config.security
    app.state.auth_limiter = FailureLimiter(settings.auth_failures, settings.auth_window / 1000)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(statuspage_v2.router)
    app.include_router(api_monitors.router)
    app.include_router(api_outages.router)
    app.include_router(api_audit.router)
    app.include_router(api_tokens.router)
    app.include_router(api_dr.router)
    app.include_router(api_config.router)
    app.include_router(api_probes.router)
    app.include_router(page.router)
    return app
