"""Console templates: one Jinja2 environment, pages rendered off the event loop.

Every page gets `user`, `role`, `can` (what the role may do, for showing controls), `csrf`
(for forms), `nav` (the current section) and `site` (the title) besides its own values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse

from uptally import __version__, offloop
from uptally.accounts import roles, users
from uptally.accounts.roles import Role
from uptally.accounts.sessions import Signed
from uptally.web.deps import runtime_of

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("uptally.web.console", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)

NO_STORE = {"Cache-Control": "no-store", "Vary": "Cookie"}


@dataclass(frozen=True, slots=True)
class Can:
    """What the signed-in role may do: templates show only the controls that work."""

    respond: bool = False
    edit: bool = False
    admin: bool = False

    @staticmethod
    def of(role: Role) -> Can:
        return Can(
            respond=roles.covers(role, Role.RESPONDER),
            edit=roles.covers(role, Role.EDITOR),
            admin=roles.covers(role, Role.ADMIN),
        )


def context(request: Request, signed: Signed | None, nav: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    role = users.role_of(signed.user) if signed else None
    return {
        "user": signed.user if signed and signed.complete else None,
        "role": role.value if role else "",
        "can": Can.of(role) if role and signed and signed.complete else Can(),
        "csrf": signed.session.csrf if signed else "",
        "nav": nav,
        "site": runtime.config.site,
        "version": __version__,
        "path": request.url.path,
    }


async def page(
    request: Request,
    signed: Signed | None,
    template: str,
    nav: str = "",
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    """A console page (no caching: it shows what the signed-in user may see)."""
    values = {**context(request, signed, nav), **values}
    body = await offloop.run(ENV.get_template(template).render, values)
    return HTMLResponse(body, status_code=status, headers=NO_STORE)
