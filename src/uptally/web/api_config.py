"""Admin API (admin scope): reload the config file, applied whole or refused whole."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from uptally.config import ConfigError
from uptally.managed.load import ProvisioningConflict
from uptally.runtime import ReloadRefused
from uptally.web.auth import principal_of, require_scope
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, Model

router = APIRouter(
    prefix="/api/v1/config",
    tags=["config"],
    dependencies=[Depends(require_scope("admin"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)


class Reloaded(Model):
    reloaded: bool
    changes: dict[str, Any]


@router.post("/reload", response_model=Reloaded)
async def reload_config(request: Request) -> Reloaded:
    """Read the config file again (like SIGHUP); a bad one is refused and the old one stays."""
    runtime = runtime_of(request)
    try:
        changes = await runtime.reload(principal_of(request).actor)
    except ConfigError as error:
        raise ApiError(422, "; ".join(error.lines()), "invalid_config") from None
    except (ReloadRefused, ProvisioningConflict) as error:
        raise ApiError(409, str(error)) from None
    return Reloaded(reloaded=True, changes=changes)
