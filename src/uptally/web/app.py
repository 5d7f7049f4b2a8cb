"""The ASGI application: every route of the HTTP surface, bound to one runtime."""

from __future__ import annotations

from fastapi import FastAPI

from uptally import __version__
from uptally.runtime import Runtime
from uptally.web import api_monitors, api_outages, errors, health, page, ping, statuspage_v2


def create_app(runtime: Runtime, admin_token: str | None = None) -> FastAPI:
    app = FastAPI(
        title="uptally",
        version=__version__,
        description="Availability monitoring with verified downtime. Admin endpoints need "
        "`Authorization: Bearer <UPTALLY_ADMIN_TOKEN>`.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.admin_token = admin_token
    errors.install(app)
    app.router.routes.extend(ping.routes)  # plain Starlette routes: the hot path stays lean
    app.include_router(health.router)
    app.include_router(statuspage_v2.router)
    app.include_router(api_monitors.router)
    app.include_router(api_outages.router)
    app.include_router(page.router)
    return app
