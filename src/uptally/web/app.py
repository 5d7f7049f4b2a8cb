"""The ASGI application: every route of the HTTP surface, bound to one runtime."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from uptally import __version__
from uptally.runtime import Runtime
from uptally.statuspage.site import StatusSite, watching
from uptally.web import (
    api_audit,
    api_channel_actions,
    api_channel_edit,
    api_channels,
    api_components,
    api_config,
    api_dr,
    api_hc,
    api_hc_history,
    api_incidents,
    api_integrations,
    api_locations,
    api_maintenance,
    api_monitor_edit,
    api_monitor_history,
    api_monitor_pause,
    api_monitor_run,
    api_monitors,
    api_outages,
    api_probes,
    api_sla,
    api_status_pages,
    api_tokens,
    apidocs,
    errors,
    health,
    ping,
    security,
    statuspage,
    subscribe,
)
from uptally.web.console.install import install as install_console
from uptally.web.page_sites import PageSites, PagesRoute
from uptally.web.ratelimit import FailureLimiter


class App:
    """The ASGI entry point: heartbeat pings go straight to their handler, the rest to the API."""

    def __init__(self, api: FastAPI, runtime: Runtime) -> None:
        self.api = api
        self.runtime = runtime
        self.pages: PageSites = api.state.status_pages

    async def __call__(self, scope: ping.Scope, receive: ping.Receive, send: ping.Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        if await statuspage.fast_path(scope, send, self.pages.fast_paths()):
            return  # cached bytes with prepared headers, security headers among them
        send = security.with_headers(send, scope["path"])
        if scope["path"].startswith(ping.PREFIX):
            await ping.handle(scope, receive, send, self.runtime)
        else:
            limit = self.runtime.config.security.max_body
            await security.limit_body(self.api, scope, receive, send, limit)


def create_app(runtime: Runtime, admin_token: str | None = None) -> App:
    return App(create_api(runtime, admin_token), runtime)


def listening(app: App, url: str) -> None:
    """`serve` listens on `url`: links use it when site.url is unset and the Host of a request
    is not an allowed one (web/hosts.py)."""
    app.api.state.listen_url = url
    for site in [app.api.state.status_site, *app.api.state.status_pages.sites()]:
        site.listening(url)


@contextlib.asynccontextmanager
async def _lifespan(api: FastAPI) -> AsyncIterator[None]:
    """While served (ASGI lifespan): the status pages rebuild after every change by themselves."""
    pages: PageSites = api.state.status_pages
    async with watching(lambda: [api.state.status_site, *pages.sites()]):
        yield
    pages.close()


def create_api(runtime: Runtime, admin_token: str | None = None) -> FastAPI:
    app = FastAPI(
        title="uptally",
        version=__version__,
        description="Availability monitoring with verified downtime. Admin endpoints need "
        "`Authorization: Bearer <token>`: a scoped API token (`uptally tokens create`) or "
        "the bootstrap `UPTALLY_ADMIN_TOKEN`.",
        docs_url=None,  # apidocs: Swagger UI from the package, not from a CDN
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.runtime = runtime
    app.state.admin_token = admin_token
    app.state.listen_url = ""  # set by `serve` once bound (listening)
    settings = runtime.config.security
    app.state.auth_limiter = FailureLimiter(settings.auth_failures, settings.auth_window / 1000)
    # Wrong probe tokens are counted apart: a misconfigured agent locks out only its address's
    # probe requests, not the admin API.
    app.state.probe_limiter = FailureLimiter(settings.auth_failures, settings.auth_window / 1000)
    errors.install(app)
    apidocs.install(app)
    app.state.status_site = StatusSite(runtime)
    # The pages of `status_pages`, each with its own cache, as the running config has them.
    app.state.status_pages = PageSites(
        runtime, app.state.status_site, lambda: str(app.state.listen_url)
    )
    app.include_router(health.router)
    app.include_router(api_monitor_run.router)  # before /{monitor_id}: /test is no id
    app.include_router(api_monitors.router)
    app.include_router(api_monitor_history.router)
    app.include_router(api_monitor_edit.router)
    app.include_router(api_components.router)
    app.include_router(api_monitor_pause.router)
    app.include_router(api_outages.router)
    app.include_router(api_audit.router)
    app.include_router(api_tokens.router)
    app.include_router(api_dr.router)
    app.include_router(api_config.router)
    app.include_router(api_probes.router)
    app.include_router(api_maintenance.router)
    app.include_router(api_sla.router)
    app.include_router(api_incidents.router)
    app.include_router(api_channels.router)
    app.include_router(api_channel_edit.router)
    app.include_router(api_channel_actions.router)
    app.include_router(subscribe.router)
    app.include_router(api_status_pages.router)
    app.include_router(api_locations.router)
    app.include_router(api_hc.router)
    app.include_router(api_hc_history.router)
    app.include_router(api_integrations.router)
    install_console(app)
    app.include_router(statuspage.page_router(app.state.status_site))
    app.include_router(statuspage.router)
    app.router.routes.append(PagesRoute(app.state.status_pages))  # after every fixed path
    _prepare_routes(app)
    return app


def _prepare_routes(app: FastAPI) -> None:
    """Build what FastAPI builds for each included router on its first request (parameter
    models, validators): at start-up, not on the event loop while checks are in flight (the
    first admin request took a quarter of a second there, measured at 10,000 monitors)."""
    pending: list[Any] = list(app.router.routes)
    while pending:
        build = getattr(pending.pop(), "effective_candidates", None)  # FastAPI's lazy routers
        if callable(build):
            pending.extend(build())
