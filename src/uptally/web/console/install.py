"""Mount the console on the application: its routes, static files and error pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from uptally.web.console import (
    render,
    routes_account,
    routes_account_passkeys,
    routes_account_totp,
    routes_auth,
    routes_incident,
    routes_incidents,
    routes_maintenance,
    routes_monitor_edit,
    routes_monitors,
    routes_notifications,
    routes_overview,
    routes_sla,
    routes_sso,
    routes_trust,
    routes_trust_admin,
    routes_trust_backups,
    routes_trust_users,
)
from uptally.web.console.session import (
    Forbidden,
    SignInRequired,
    Viewer,
    signed_of,
)

ROUTERS = [
    routes_auth.router,
    routes_sso.router,
    routes_overview.router,
    routes_monitor_edit.router,  # before routes_monitors: /new is no monitor's id
    routes_monitors.router,
    routes_trust.router,
    routes_trust_users.router,
    routes_trust_admin.router,
    routes_trust_backups.router,
    routes_incidents.router,
    routes_incident.router,
    routes_maintenance.router,
    routes_account.router,
    routes_account_totp.router,
    routes_account_passkeys.router,
    routes_notifications.router,
    routes_sla.router,
]


async def _sign_in(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    return RedirectResponse(error.location, status_code=303, headers=render.NO_STORE)


async def _forbidden(request: Request, error: Exception) -> Response:
    assert isinstance(error, Forbidden)
    return await render.page(
        request,
        await signed_of(request),
        "message.html",
        status=403,
        title="Not allowed",
        message=error.message,
    )


async def _not_found(request: Request, signed: Viewer) -> Response:
    """Any other console path: signed out, to the sign-in form (it may exist); else 404."""
    return await render.page(
        request,
        signed,
        "message.html",
        status=404,
        title="Not found",
        message="There is no console page at this address.",
    )


def install(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount(
        "/console/static",
        StaticFiles(packages=[("uptally.web.console", "static")]),
        name="console-static",
    )
    app.add_api_route("/console/{rest:path}", _not_found, methods=["GET"], include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(Forbidden, _forbidden)
