"""Admin API (write scope): create, change, clone and delete monitors managed at runtime."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response

from uptally.config.managed import MONITOR
from uptally.config.schema import HeartbeatMonitor, monitor_document
from uptally.managed.changes import Change
from uptally.redaction import MASK
from uptally.web.auth import principal_of, require_scope
from uptally.web.deps import base_url, runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import ERRORS, expected_version, refusals, tag_response
from uptally.web.schemas import Model, MonitorList, MonitorOut
from uptally.web.views import masked_values, monitor_out, shown_config

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_scope("write"))],
    responses=ERRORS,
)

MonitorBody = Annotated[
    dict[str, Any],
    Body(
        description="One monitor in the config file's schema (docs/configuration.md), as JSON.",
        examples=[{"id": "api", "kind": "http", "url": "https://example.com/health"}],
    ),
]


class BatchIn(Model):
    monitors: list[dict[str, Any]]


class CloneIn(Model):
    id: str
    name: str | None = None


def _who(request: Request) -> tuple[str, bool]:
    """The actor, and whether it may refer to the secret store (admin scope only)."""
    principal = principal_of(request)
    return principal.actor, principal.allows("admin")


def _unmasked(body: Any) -> None:
    """422 for a value still holding the mask a GET shows in place of a secret."""
    found = masked_values(body)
    if found:
        message = (
            f"masked as shown ({MASK}): send the real value or a ${{secret:NAME}} reference, "
            "or leave the field out of a PATCH"
        )
        details = [{"path": path, "message": message} for path in found]
        raise ApiError(422, f"{found[0]}: {message}", details=details)


def _out(request: Request, change: Change, response: Response) -> MonitorOut:
    runtime = runtime_of(request)
    monitor = runtime.config.monitor(change.id)
    if monitor is None:  # deleted meanwhile by another request
        raise ApiError(404, f"no monitor {change.id!r}")
    out = monitor_out(runtime, monitor, base_url(request))
    out.version = change.row.version
    out.config = shown_config(monitor, runtime.config.security.secret_query_keys)
    tag_response(response, change.row.version)
    return out


@router.post("", response_model=MonitorOut, status_code=201, summary="Create a monitor")
async def create_monitor(request: Request, body: MonitorBody, response: Response) -> MonitorOut:
    """The monitor is checked within a second, at every location it names; a heartbeat's ping
    URL is in the answer."""
    runtime = runtime_of(request)
    _unmasked(body)
    with refusals():
        actor, admin = _who(request)
        change = await runtime.changes.create(MONITOR, body, actor, secrets=admin)
    response.headers["Location"] = f"/api/v1/monitors/{change.id}"
    return _out(request, change, response)


@router.post(
    ":batch",
    response_model=MonitorList,
    status_code=201,
    summary="Create many monitors, all or none",
    description="Every monitor is validated first; any problem refuses the whole batch with "
    "422 and a `details` entry per problem (`/monitors/3/expect/0`).",
)
async def create_monitors(request: Request, body: BatchIn) -> MonitorList:
    runtime = runtime_of(request)
    if not body.monitors:
        raise ApiError(422, "monitors: give at least one", details=[])
    if len(body.monitors) > 10_000:
        raise ApiError(422, "monitors: at most 10000 in one batch", details=[])
    _unmasked({"monitors": body.monitors})
    with refusals():
        actor, admin = _who(request)
        changes = await runtime.changes.batch(MONITOR, body.monitors, actor, secrets=admin)
    url = base_url(request)
    shown = []
    by_id = {m.id: m for m in runtime.config.monitors}
    for change in changes:
        monitor = by_id.get(change.id)
        if monitor is not None:
            out = monitor_out(runtime, monitor, url, [])
            out.version = change.row.version
            shown.append(out)
    return MonitorList(monitors=shown)


@router.put("/{monitor_id}", response_model=MonitorOut, summary="Replace a monitor")
async def replace_monitor(
    request: Request, monitor_id: str, body: MonitorBody, response: Response
) -> MonitorOut:
    """Its results, outages and SLA history stay; the change is a marker on its timeline (the
    audit log). `If-Match` with the ETag refuses a lost update (412)."""
    runtime = runtime_of(request)
    _unmasked(body)
    with refusals():
        actor, admin = _who(request)
        change = await runtime.changes.replace(
            MONITOR, monitor_id, body, actor, expected_version(request), secrets=admin
        )
    return _out(request, change, response)


@router.patch("/{monitor_id}", response_model=MonitorOut, summary="Change a monitor")
async def patch_monitor(
    request: Request, monitor_id: str, body: MonitorBody, response: Response
) -> MonitorOut:
    """A JSON merge patch (RFC 7396): the keys given replace, `null` removes a key."""
    runtime = runtime_of(request)
    _unmasked(body)
    with refusals():
        actor, admin = _who(request)
        change = await runtime.changes.patch(
            MONITOR, monitor_id, body, actor, expected_version(request), secrets=admin
        )
    return _out(request, change, response)


@router.delete("/{monitor_id}", status_code=204, summary="Delete a monitor")
async def delete_monitor(request: Request, monitor_id: str) -> Response:
    """Checks stop at once; results, outages and SLA history are kept. Refused (409) while a
    component, maintenance window or channel names the monitor."""
    runtime = runtime_of(request)
    with refusals():
        await runtime.changes.delete(
            MONITOR, monitor_id, principal_of(request).actor, expected_version(request)
        )
    return Response(status_code=204)


@router.post(
    "/{monitor_id}/clone", response_model=MonitorOut, status_code=201, summary="Clone a monitor"
)
async def clone_monitor(
    request: Request, monitor_id: str, body: CloneIn, response: Response
) -> MonitorOut:
    """A new monitor made through the API with the same settings under a new id (any monitor,
    provisioned or not, can be cloned; a heartbeat's own token is not copied)."""
    runtime = runtime_of(request)
    source = runtime.config.monitor(monitor_id)
    if source is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    document = monitor_document(source)
    document["id"] = body.id
    if body.name is not None:
        document["name"] = body.name
    else:
        document.pop("name", None)
    if isinstance(source, HeartbeatMonitor):
        document.pop("token", None)
    with refusals():
        actor, admin = _who(request)
        change = await runtime.changes.create(MONITOR, document, actor, secrets=admin)
    response.headers["Location"] = f"/api/v1/monitors/{change.id}"
    return _out(request, change, response)
