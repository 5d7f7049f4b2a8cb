"""Public subscription pages and API: subscribe (form or JSON), confirm, unsubscribe.

E-mail is double opt-in (a signed confirmation link; nothing else is sent before it is
followed); webhooks start at once. Requests are limited per client address and per e-mail
address. The form carries a token (CSRF) bound to the client's form cookie; confirm and
unsubscribe links carry their own signature, and their pages ask for a POST so that link
scanners change nothing — except the RFC 8058 one-click POST that mail clients send to the
List-Unsubscribe URL. Asking again for a known webhook is confirmed through that webhook.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field, ValidationError

from uptally.config.schema import ID_PATTERN
from uptally.runtime import Runtime
from uptally.signing import Scheme
from uptally.subscribers import links
from uptally.subscribers.keys import webhook_secret
from uptally.subscribers.service import (
    SubscribeError,
    checked_components,
    checked_webhook,
    confirm,
    normalised_email,
    subscribe_email,
    subscribe_webhook,
    unsubscribe,
    ways,
)
from uptally.web.auth import client_of
from uptally.web.deps import base_url, runtime_of
from uptally.web.errors import error_response
from uptally.web.pages import html_page
from uptally.web.ratelimit import FailureLimiter
from uptally.web.schemas import ErrorOut, Model

router = APIRouter(tags=["subscribers"])
MAX_FORM = 16 << 10
DAY_MS = 86_400_000
# The form's CSRF token is bound to the client (double submit): an HMAC of the day and of a
# random value that only this client's cookie carries, so a token read elsewhere is useless.
FORM_COOKIE = "uptally_form"
NONCE_BYTES = 16
_NONCE = re.compile(r"[A-Za-z0-9_\-]{22}")


class SubscribeIn(Model):
    email: str | None = Field(default=None, min_length=3, max_length=254)
    webhook: str | None = Field(default=None, min_length=8, max_length=512)
    components: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default_factory=list, max_length=1000
    )
    signing: Literal["uptally", "standard"] = Field(
        default="uptally",
        description="a new webhook's: uptally (unsigned) or standard (Standard Webhooks, "
        "signed with the `secret` answered once)",
    )


class SubscribeOut(Model):
    status: Literal["confirmation_sent", "subscribed"]
    id: str | None = None
    unsubscribe_url: str | None = None
    secret: str | None = Field(
        default=None, description="with signing: standard, the webhook's whsec_ secret"
    )


# The JSON form of the request (the HTML form posts the same fields, url-encoded, with a token).
_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SubscribeIn.model_json_schema()}},
    }
}


def _limiter(request: Request, runtime: Runtime) -> FailureLimiter:
    settings = runtime.config.notifications.subscribers
    limiter: FailureLimiter | None = getattr(request.app.state, "subscribe_limiter", None)
    if limiter is None or (limiter.limit, limiter.window_s) != (
        settings.per_ip,
        settings.window / 1000,
    ):
        limiter = FailureLimiter(settings.per_ip, settings.window / 1000)
        request.app.state.subscribe_limiter = limiter
    return limiter


def _page(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    defaults: dict[str, Any] = {"action": "/subscribe", "view": "message", "tone": "note"}
    return html_page(request, "subscribe.html", status, **{**defaults, **values})


def _invalid_link(request: Request, kind: str) -> HTMLResponse:
    return _page(
        request,
        403,
        heading="Invalid link",
        tone="error",
        message=f"This {kind} link is not valid.",
    )


def _form_nonce(request: Request) -> str | None:
    """This client's form cookie: a random value, the other half of the form's token."""
    value = request.cookies.get(FORM_COOKIE, "")
    return value if _NONCE.fullmatch(value) else None


def _form_token(key: bytes, day: int, nonce: str) -> str:
    return links.sign(key, "form", str(day), nonce)


@router.get(
    "/subscribe",
    response_class=HTMLResponse,
    responses={404: {"content": {"text/html": {}}, "description": "subscriptions are off"}},
)
async def subscribe_page(request: Request) -> HTMLResponse:
    """The subscription form (HTML, no script): e-mail with components first; a webhook second,
    for developers."""
    runtime = runtime_of(request)
    if not runtime.config.notifications.subscribers.enabled:
        return _page(request, 404, heading="Subscriptions are off", message="")
    offered = ways(runtime.config)
    nonce = _form_nonce(request) or secrets.token_urlsafe(NONCE_BYTES)
    key = await runtime.notifier.link_key()
    token = _form_token(key, runtime.clock.now_ms() // DAY_MS, nonce)
    page = _page(
        request,
        heading=f"Get {runtime.config.site.title} updates",
        view="form",
        token=token,
        components=runtime.config.components,
        email_enabled=offered.email,
        webhook_enabled=offered.webhook,
        message="Hear about incidents and planned maintenance as they happen."
        if offered.any
        else "No way to subscribe is configured.",
    )
    page.set_cookie(
        FORM_COOKIE,
        nonce,
        max_age=2 * DAY_MS // 1000,
        path="/subscribe",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return page


@router.post(
    "/subscribe",
    response_model=SubscribeOut,
    status_code=202,
    openapi_extra=_BODY,
    responses={
        201: {"model": SubscribeOut, "description": "a webhook, subscribed"},
        202: {"model": SubscribeOut, "description": "a confirmation mail is on its way"},
        400: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def subscribe(request: Request) -> Response:
    """Subscribe an e-mail address (double opt-in) or a webhook to incident and maintenance
    updates, optionally for some components only."""
    runtime = runtime_of(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = kind == "application/x-www-form-urlencoded"
    if kind not in ("application/json", "application/x-www-form-urlencoded"):
        return error_response(415, "send JSON or a form")
    try:
        body = await _read(request)
        wanted = await _parse(runtime, body, form, _form_nonce(request))
        outcome = await _subscribe(request, runtime, wanted)
    except SubscribeError as error:
        headers = None
        if isinstance(error, _Limited):
            headers = {"Retry-After": str(max(1, round(error.retry_after)))}
        if form:
            page = _page(
                request, error.status, heading="Not subscribed", message=error.message, tone="error"
            )
            page.headers.update(headers or {})
            return page
        return error_response(error.status, error.message, headers=headers)
    runtime.notifier.wake()
    if form:
        if outcome.status == "subscribed":
            return _page(
                request,
                201,
                heading="Subscribed",
                tone="ok",
                message="The webhook is subscribed.",
                unsubscribe_url=outcome.unsubscribe_url,
            )
        by_mail = wanted.email is not None
        return _page(
            request,
            202,
            heading="Check your inbox" if by_mail else "Confirm through your webhook",
            tone="ok",
            message="We sent you a link: follow it to confirm the subscription."
            if by_mail
            else "This webhook is known: we sent it a link to confirm the change with.",
        )
    status = 201 if outcome.status == "subscribed" else 202
    return JSONResponse(outcome.model_dump(exclude_none=True), status_code=status)


class _Limited(SubscribeError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(429, "too many subscription requests; try again later")
        self.retry_after = retry_after


async def _read(request: Request) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise SubscribeError(413, "the request is too large")
    return body


async def _parse(runtime: Runtime, body: bytes, form: bool, nonce: str | None) -> SubscribeIn:
    try:
        if not form:
            return SubscribeIn.model_validate_json(body or b"null")
        fields = parse_qs(body.decode("utf-8", "strict"), max_num_fields=200)
    except (ValidationError, UnicodeDecodeError, ValueError) as error:
        message = "invalid request"
        if isinstance(error, ValidationError):
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
            )
        raise SubscribeError(422, message) from None
    token = (fields.get("token") or [""])[0]
    today = runtime.clock.now_ms() // DAY_MS
    key = await runtime.notifier.link_key()
    if nonce is None or not any(
        links.valid(key, token, "form", str(day), nonce) for day in (today, today - 1)
    ):
        raise SubscribeError(403, "this form has expired: reload the page and try again")
    try:
        return SubscribeIn(
            email=(fields.get("email") or [""])[0] or None,
            webhook=(fields.get("webhook") or [""])[0] or None,
            components=fields.get("components") or [],
        )
    except ValidationError:
        raise SubscribeError(422, "invalid e-mail address, webhook or components") from None


async def _subscribe(request: Request, runtime: Runtime, wanted: SubscribeIn) -> SubscribeOut:
    config = runtime.config
    settings = config.notifications.subscribers
    if not settings.enabled:
        raise SubscribeError(404, "subscriptions are off")
    if (wanted.email is None) == (wanted.webhook is None):
        raise SubscribeError(422, "give either an e-mail address or a webhook URL")
    client = client_of(request)
    limiter = _limiter(request, runtime)
    wait = limiter.retry_after(client)
    if wait is not None:
        raise _Limited(wait)
    limiter.fail(client)  # every request counts, whatever comes of it
    components = checked_components(wanted.components, config)
    actor = f"public:{client}"[:128]
    now = runtime.clock.now_ms()
    offered = ways(config)
    if wanted.email is not None:
        if not offered.email:
            raise SubscribeError(409, "subscriptions by e-mail are not available here")
        address = normalised_email(wanted.email)
        async with runtime.db.begin() as conn:
            await subscribe_email(runtime.db, conn, config, address, components, actor, now)
        return SubscribeOut(status="confirmation_sent")
    if not offered.webhook:
        raise SubscribeError(409, "subscriptions by webhook are not available here")
    assert wanted.webhook is not None
    guard = None if settings.allow_private_webhooks else config.security.guard
    url = await checked_webhook(wanted.webhook, guard)
    key = await runtime.notifier.link_key()
    async with runtime.db.begin() as conn:
        outcome = await subscribe_webhook(
            runtime.db,
            conn,
            config,
            url,
            components,
            actor,
            now,
            base_url(request),
            key,
            Scheme(wanted.signing),
        )
    if outcome.unsubscribe_url is None:  # a known webhook: confirmed through itself
        return SubscribeOut(status="confirmation_sent")
    standard = outcome.subscriber.signing == Scheme.STANDARD
    return SubscribeOut(
        status="subscribed",
        id=outcome.subscriber.id,
        unsubscribe_url=outcome.unsubscribe_url,
        secret=webhook_secret(key, outcome.subscriber.id) if standard else None,
    )


# -- confirm and unsubscribe (signed links) --------------------------------------------------


def _query(request: Request, *names: str) -> dict[str, str] | None:
    values = {name: request.query_params.get(name) for name in names}
    if any(v is None or len(v) > 2000 for v in values.values()):
        return None
    return {k: v for k, v in values.items() if v is not None}


@router.get("/subscribe/confirm", include_in_schema=False)
async def confirm_page(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    q = _query(request, "s", "e", "c", "t")
    key = await runtime.notifier.link_key()
    if (
        q is None
        or not _whole(q["e"])
        or not links.valid(
            key, q["t"], *links.confirm_parts(q["s"], int(q["e"]), _components(q["c"]))
        )
    ):
        return _invalid_link(request, "confirmation")
    return _page(
        request,
        heading="Confirm your subscription",
        view="confirm",
        button="Confirm subscription",
        action=f"/subscribe/confirm?{urlencode(q)}",
        message="One more step: confirm that you want these updates.",
    )


@router.post("/subscribe/confirm", include_in_schema=False)
async def confirm_post(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    q = _query(request, "s", "e", "c", "t")
    if q is None or not _whole(q["e"]):
        return _invalid_link(request, "confirmation")
    key = await runtime.notifier.link_key()
    try:
        async with runtime.db.begin() as conn:
            await confirm(
                conn,
                q["s"],
                int(q["e"]),
                _components(q["c"]),
                q["t"],
                key,
                f"subscriber:{q['s']}"[:128],
                runtime.clock.now_ms(),
                runtime.config.notifications.subscribers.confirm_within,
            )
    except SubscribeError as error:
        return _page(
            request, error.status, heading="Not confirmed", tone="error", message=error.message
        )
    return _page(
        request,
        heading="Subscribed",
        tone="ok",
        message="You will receive updates from now on. Every message has an unsubscribe link.",
    )


@router.get("/subscribe/unsubscribe", include_in_schema=False)
async def unsubscribe_page(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    q = _query(request, "s", "t")
    key = await runtime.notifier.link_key()
    if q is None or not links.valid(key, q["t"], *links.unsubscribe_parts(q["s"])):
        return _invalid_link(request, "unsubscribe")
    return _page(
        request,
        heading="Unsubscribe",
        view="unsubscribe",
        button="Unsubscribe",
        action=f"/subscribe/unsubscribe?{urlencode(q)}",
        message="Stop receiving updates?",
    )


@router.post("/subscribe/unsubscribe", include_in_schema=False)
async def unsubscribe_post(request: Request) -> HTMLResponse:
    """The page's button, and RFC 8058 one-click (`List-Unsubscribe=One-Click`) from mail."""
    runtime = runtime_of(request)
    q = _query(request, "s", "t")
    if q is None:
        return _invalid_link(request, "unsubscribe")
    key = await runtime.notifier.link_key()
    try:
        async with runtime.db.begin() as conn:
            await unsubscribe(
                conn, q["s"], q["t"], key, f"subscriber:{q['s']}"[:128], runtime.clock.now_ms()
            )
    except SubscribeError as error:
        return _page(
            request, error.status, heading="Not unsubscribed", tone="error", message=error.message
        )
    return _page(
        request, heading="Unsubscribed", tone="ok", message="You will not receive any more updates."
    )


def _whole(value: str) -> bool:
    """A time in ASCII digits (`str.isdigit` admits "²", which `int` refuses)."""
    return value.isascii() and value.isdigit() and len(value) <= 20


def _components(value: str) -> list[str]:
    return [part for part in value.split(",") if part]
