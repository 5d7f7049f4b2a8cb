"""HTML pages the server answers besides the status page (subscribing, errors): one layout,
styled by the status page's own stylesheet so that both look alike, light and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from uptally.runtime import Runtime
from uptally.statuspage.render import STATIC

_ENV = Environment(
    loader=FileSystemLoader([Path(__file__).parent / "templates", STATIC]),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def html_page(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """`template` (extending page.html) for the site of the running config; never cached."""
    runtime: Runtime = request.app.state.runtime
    site = runtime.config.site
    html = _ENV.get_template(template).render(
        site=site, home=(site.url or "").rstrip("/") + "/", **values
    )
    return HTMLResponse(
        html, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})}
    )
