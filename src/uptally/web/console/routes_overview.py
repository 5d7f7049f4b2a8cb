"""The console's overview: every monitor with its state (placeholder until the full page)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from uptally.web.console import render
from uptally.web.console.session import Viewer
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/")
async def overview(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    monitors = [m.id for m in runtime.config.monitors]
    return await render.page(request, signed, "overview.html", nav="overview", monitors=monitors)
