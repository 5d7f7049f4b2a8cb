"""Admin API: channels made through the API: create, read, replace, patch, delete; audited."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request, Response
from pydantic import Field, ValidationError

from uptally import audit
from uptally.config.schema import ID_PATTERN, Channel
from uptally.managed.diff import document_diff, merge_patch
from uptally.netguard import Guard, UnsafeTarget, check_url
from uptally.notify.targets import CHANNEL
from uptally.notify.webhook import PREFIX
from uptally.runtime import Runtime
from uptally.store import channels as channel_store
from uptally.store import deliveries as delivery_store
from uptally.store.channels import StoredChannel, sealed, sealed_previous
from uptally.web.api_channels import ChannelIn, ChannelOut, channel_out, scheme_of, stored_scheme
from uptally.web.auth import principal_of, require_admin, require_scope
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError, json_pointer
from uptally.web.managed_http import ERRORS, etag, expected_version, tag_response

router = APIRouter(prefix="/api/v1/channels", tags=["channels"], responses=ERRORS)
ChannelId = Annotated[str, Path(pattern=ID_PATTERN)]
_SECRETS = frozenset({"url", "secret", "previous_secret"})  # digested in the audit log
_writing = asyncio.Lock()  # one change at a time: each is checked against the one before


class ChannelNew(ChannelIn):
    id: str = Field(pattern=ID_PATTERN)


PatchBody = Annotated[
    dict[str, Any],
    Body(
        description="A JSON merge patch (RFC 7396) of the channel: a `url` or `secret` given "
        "replaces the stored one, one left out is kept, `secret: null` removes the secret.",
        examples=[{"events": ["incident.*"]}],
    ),
]


def _provisioned(runtime: Runtime, channel_id: str) -> Channel | None:
    return next((c for c in runtime.config.notifications.channels if c.id == channel_id), None)


def _writable(runtime: Runtime, channel_id: str) -> None:
    if _provisioned(runtime, channel_id) is not None:
        raise ApiError(409, f"channel {channel_id!r} is defined in the config file", "provisioned")
    if runtime.keyring is None:
        raise ApiError(409, "channels with URLs cannot be stored: set UPTALLY_SECRET_KEY first")


def _document(channel_id: str, body: ChannelIn) -> dict[str, Any]:
    return {"id": channel_id, **body.model_dump()}


def _opened(runtime: Runtime, stored: StoredChannel) -> dict[str, Any]:
    """The stored channel as a body again (URL and secret in clear: for a diff or a patch)."""
    assert runtime.keyring is not None
    try:
        url, secret = stored.opened(runtime.keyring)
        previous = stored.opened_previous(runtime.keyring)
    except Exception:
        message = f"channel {stored.id!r} cannot be opened with this UPTALLY_SECRET_KEY"
        raise ApiError(409, message) from None
    return {
        "id": stored.id,
        "url": url,
        "signing": stored.signing,
        "secret": secret,
        "previous_secret": previous,
        "events": stored.events,
        "components": stored.components,
        "monitors": stored.monitors,
    }


async def _checked(runtime: Runtime, channel_id: str, body: ChannelIn) -> Channel:
    """422 unless the channel is valid, names what exists, and passes the SSRF guard."""
    try:
        checked = Channel(
            id=channel_id,
            url=body.url,
            signing=body.signing,
            secret=body.secret,
            previous_secret=body.previous_secret,
            events=body.events,
            components=body.components,
            monitors=body.monitors,
        )
    except ValidationError as error:
        problems = "; ".join(str(e.get("msg", "invalid")) for e in error.errors()[:5])
        raise ApiError(422, problems) from None
    config = runtime.config
    unknown = sorted(set(checked.components) - {c.id for c in config.components}) + sorted(
        set(checked.monitors) - {m.id for m in config.monitors}
    )
    if unknown:
        raise ApiError(422, f"unknown component(s) or monitor(s): {', '.join(unknown)}")
    if config.security.ssrf_guard:
        await _reachable(body.url, config.security.guard)
    return checked


def _precondition(request: Request, stored: StoredChannel | None) -> None:
    """412 unless If-Match (if given) names the channel's current version. The version is
    its `updated_at`, kept increasing by `_save`: no column of its own is needed."""
    expected = expected_version(request)
    if expected is not None and (stored is None or stored.updated_at != expected):
        now = "no such channel" if stored is None else f"it is at {etag(stored.updated_at)}"
        raise ApiError(412, f"If-Match names another version: {now}", "precondition_failed")


async def _save(
    request: Request,
    response: Response,
    channel_id: str,
    body: ChannelIn,
    previous: StoredChannel | None,
    before: dict[str, Any] | None,
) -> ChannelOut:
    """Store (sealed) and audit in one transaction; `before` is what it replaces, if anything."""
    runtime = runtime_of(request)
    assert runtime.keyring is not None
    checked = await _checked(runtime, channel_id, body)
    actor = principal_of(request).actor
    now = runtime.clock.now_ms()
    if previous is not None:  # a new version even within the same millisecond
        now = max(now, previous.updated_at + 1)
    url, secret = sealed(runtime.keyring, channel_id, body.url, body.secret)
    stored = StoredChannel(
        channel_id,
        url,
        secret,
        checked.events,
        checked.components,
        checked.monitors,
        now,
        now,
        actor,
        checked.signing.value,
        sealed_previous(runtime.keyring, channel_id, body.previous_secret),
    )
    details = {
        **document_diff(before, _document(channel_id, body), _SECRETS),
        "secret_set": body.secret is not None,
        "previous_secret_set": body.previous_secret is not None,
    }
    async with runtime.db.begin() as conn:
        created = await channel_store.save_channel(conn, stored)
        action = "channel.created" if created else "channel.changed"
        await audit.append(conn, actor, action, f"channel:{channel_id}", details, at=now)
    tag_response(response, now)
    return await channel_out(request, stored, "api", scheme_of(body.url), body.secret is not None)


async def _stored(runtime: Runtime, channel_id: str) -> StoredChannel | None:
    async with runtime.db.connect() as conn:
        return await channel_store.get_channel(conn, channel_id)


@router.get(
    "/{channel_id}",
    response_model=ChannelOut,
    summary="One channel",
    dependencies=[Depends(require_admin)],
)
async def get_channel(request: Request, channel_id: ChannelId, response: Response) -> ChannelOut:
    """Whether a URL or secret is set, never them."""
    runtime = runtime_of(request)
    filed = _provisioned(runtime, channel_id)
    if filed is not None:
        return await channel_out(
            request, filed, "config", scheme_of(filed.url), filed.secret is not None
        )
    stored = await _stored(runtime, channel_id)
    if stored is None:
        raise ApiError(404, f"no channel {channel_id!r}")
    tag_response(response, stored.updated_at)
    kind_scheme = stored_scheme(request, stored)
    return await channel_out(request, stored, "api", kind_scheme, stored.secret is not None)


@router.post(
    "",
    response_model=ChannelOut,
    status_code=201,
    summary="Create a channel",
    dependencies=[Depends(require_scope("admin"))],
)
async def create_channel(request: Request, body: ChannelNew, response: Response) -> ChannelOut:
    """409 if a channel of that id exists (in the file or made here); admin scope."""
    runtime = runtime_of(request)
    _writable(runtime, body.id)
    async with _writing:
        if await _stored(runtime, body.id) is not None:
            raise ApiError(409, f"channel {body.id!r} already exists", "exists")
        fields = ChannelIn(**body.model_dump(exclude={"id"}))
        made = await _save(request, response, body.id, fields, None, None)
    response.headers["Location"] = f"/api/v1/channels/{body.id}"
    return made


@router.put(
    "/{channel_id}",
    response_model=ChannelOut,
    summary="Create or replace a channel",
    dependencies=[Depends(require_scope("admin"))],
)
async def put_channel(
    request: Request, channel_id: ChannelId, body: ChannelIn, response: Response
) -> ChannelOut:
    """Its URL and secret are stored encrypted (admin scope)."""
    runtime = runtime_of(request)
    _writable(runtime, channel_id)
    async with _writing:
        stored = await _stored(runtime, channel_id)
        _precondition(request, stored)
        before = _opened(runtime, stored) if stored is not None else None
        return await _save(request, response, channel_id, body, stored, before)


@router.patch(
    "/{channel_id}",
    response_model=ChannelOut,
    summary="Change a channel",
    dependencies=[Depends(require_scope("admin"))],
)
async def patch_channel(
    request: Request, channel_id: ChannelId, body: PatchBody, response: Response
) -> ChannelOut:
    """A JSON merge patch (RFC 7396): a `url` or `secret` given replaces the stored one, one
    left out is kept; `null` removes a key (the secret, or events back to the default)."""
    runtime = runtime_of(request)
    _writable(runtime, channel_id)
    if "id" in body and body["id"] != channel_id:
        message = "the id is the identity and cannot change"
        raise ApiError(422, message, details=[{"path": "/id", "message": message}])
    async with _writing:
        stored = await _stored(runtime, channel_id)
        if stored is None:
            raise ApiError(404, f"no channel {channel_id!r}")
        _precondition(request, stored)
        before = _opened(runtime, stored)
        merged = merge_patch({k: v for k, v in before.items() if v is not None}, body)
        merged.pop("id", None)
        try:
            changed = ChannelIn.model_validate(merged)
        except ValidationError as error:
            details = [
                {"path": json_pointer(e["loc"]), "message": str(e["msg"])} for e in error.errors()
            ]
            raise ApiError(422, details[0]["message"], details=details) from None
        return await _save(request, response, channel_id, changed, stored, before)


@router.delete(
    "/{channel_id}",
    status_code=204,
    summary="Delete a channel",
    dependencies=[Depends(require_scope("admin"))],
)
async def delete_channel(request: Request, channel_id: ChannelId) -> None:
    """Remove a channel made through the API; its pending deliveries are given up."""
    runtime = runtime_of(request)
    if _provisioned(runtime, channel_id) is not None:
        raise ApiError(409, f"channel {channel_id!r} is defined in the config file", "provisioned")
    now = runtime.clock.now_ms()
    async with _writing:
        stored = await _stored(runtime, channel_id)
        if stored is not None:
            _precondition(request, stored)
        before = None
        if stored is not None and runtime.keyring is not None:
            with contextlib.suppress(ApiError):  # a channel sealed with a lost key may go
                before = _opened(runtime, stored)
        async with runtime.db.begin() as conn:
            if not await channel_store.delete_channel(conn, channel_id):
                raise ApiError(404, f"no channel {channel_id!r}")
            await delivery_store.cancel_pending(
                conn, CHANNEL + channel_id, "the channel was removed"
            )
            details = document_diff(before, None, _SECRETS) if before else {}
            actor = principal_of(request).actor
            await audit.append(
                conn, actor, "channel.deleted", f"channel:{channel_id}", details, at=now
            )


# Apprise schemes whose URL host is the host posted to; other Apprise targets are named
# services (slack://, discord://: tokens, not hosts) and are checked when they are delivered.
_HTTP_SCHEMES = {
    "json": "http",
    "jsons": "https",
    "xml": "http",
    "xmls": "https",
    "form": "http",
    "forms": "https",
}


async def _reachable(url: str, guard: Guard) -> None:
    """422 unless the channel's host is one the SSRF guard lets through (security.ssrf_guard)."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme.startswith(PREFIX):
        target = url[len(PREFIX) :]
    elif scheme in _HTTP_SCHEMES:
        target = f"{_HTTP_SCHEMES[scheme]}://{rest}"
    else:
        return
    try:
        await check_url(target, guard)
    except UnsafeTarget as error:
        raise ApiError(
            422, f"channel refused by the SSRF guard (see security.allow_internal): {error}"
        ) from None
