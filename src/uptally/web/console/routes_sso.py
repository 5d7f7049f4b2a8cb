"""Single sign-on with OpenID Connect: /console/sso/login sends the browser to the provider
(code flow, PKCE, state and nonce), /console/sso/callback signs it in with the role its groups
map to. The provider handles passwords and second factors, so the session is complete.
Every refusal is a page that says why (and an audit entry), never an error 500."""

from __future__ import annotations

from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from uptally.accounts import sessions, sso, sso_users, users
from uptally.accounts.oidc import OidcError, RelyingParty
from uptally.accounts.sso import SsoRefused
from uptally.web.auth import client_of
from uptally.web.console import render
from uptally.web.console.routes_auth import safe_next
from uptally.web.console.session import is_https, set_cookie
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/sso", include_in_schema=False)

FLOW_COOKIE = "uptally_sso"  # the flow's secret and where to go afterwards
FLOW_PATH = "/console/sso/"
FLOW_MS = 10 * 60_000  # a sign-in at the provider must finish within this


def party_of(request: Request) -> RelyingParty | None:
    """The relying party of the current `console.oidc` (made again when the config changes,
    so its cached discovery document and keys follow the config)."""
    oidc = runtime_of(request).config.console.oidc
    if oidc is None:
        return None
    party: RelyingParty | None = getattr(request.app.state, "oidc_party", None)
    if party is None or party.oidc != oidc:
        party = RelyingParty(oidc)
        request.app.state.oidc_party = party
    return party


def callback_url(request: Request) -> str:
    """Where the provider sends the browser back: under `site.url` when set (behind a proxy)."""
    base = runtime_of(request).config.site.url or str(request.base_url)
    return base.rstrip("/") + "/console/sso/callback"


async def _refusal(request: Request, title: str, message: str, status: int) -> Response:
    response = await render.page(
        request, None, "sso_refused.html", status=status, title=title, message=message
    )
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax")
    return response


async def _not_configured(request: Request) -> Response:
    return await _refusal(
        request,
        "Single sign-on is not set up",
        "This uptally has no identity provider configured (console.oidc); sign in with "
        "your e-mail and password.",
        404,
    )


@router.get("/login")
async def sso_login(request: Request, next: str = "/console/") -> Response:
    party = party_of(request)
    if party is None:
        return await _not_configured(request)
    now = runtime_of(request).clock.now_ms()
    try:
        meta = await party.metadata(now)
    except OidcError as error:
        return await _refusal(
            request,
            "Single sign-on is unavailable",
            f"uptally could not reach {party.oidc.name}: {error.message}. Try again later, "
            "or sign in with your e-mail and password.",
            502,
        )
    secret = sso.new_flow_secret(now)
    target = party.authorize_url(meta, callback_url(request), sso.flow_of(secret))
    response = RedirectResponse(target, status_code=303, headers=render.NO_STORE)
    response.set_cookie(
        FLOW_COOKIE,
        f"{secret}.{quote(safe_next(next), safe='')}",
        max_age=FLOW_MS // 1000,
        path=FLOW_PATH,
        httponly=True,
        samesite="lax",  # sent along when the provider redirects back (a top-level GET)
        secure=is_https(request),
    )
    return response


@router.get("/callback")
async def sso_callback(request: Request) -> Response:
    runtime = runtime_of(request)
    party = party_of(request)
    if party is None:
        return await _not_configured(request)
    oidc, settings = party.oidc, runtime.config.console
    params = request.query_params
    started, _, rest = request.cookies.get(FLOW_COOKIE, "").partition(".")
    random, _, next_quoted = rest.partition(".")
    secret, next_path = f"{started}.{random}", safe_next(unquote(next_quoted))
    now = runtime.clock.now_ms()
    again = "Start again from the sign-in page."
    if params.get("error"):
        said = params.get("error_description") or params.get("error", "")
        return await _refusal(
            request,
            "Single sign-on refused",
            f"{oidc.name} did not sign you in: {said}. {again}",
            403,
        )
    began = sso.flow_started(secret)
    if began is None or not sso.state_matches(secret, params.get("state", "")):
        return await _refusal(
            request,
            "Sign-in not recognised",
            "This answer from the identity provider does not belong to a sign-in started in "
            f"this browser (or cookies are blocked). {again}",
            400,
        )
    if now - began > FLOW_MS:
        return await _refusal(
            request, "Sign-in took too long", f"The sign-in was started too long ago. {again}", 400
        )
    try:
        meta = await party.metadata(now)
        if params.get("iss", meta.issuer) != meta.issuer:  # RFC 9207: a mixed-up provider
            raise OidcError(f"the answer comes from {params.get('iss')!r}")
        flow = sso.flow_of(secret)
        claims = await party.exchange(params.get("code", ""), callback_url(request), flow, now)
    except OidcError as error:
        return await _refusal(
            request,
            "Single sign-on failed",
            f"The sign-in with {oidc.name} could not be completed: {error.message}. {again}",
            502,
        )
    client = client_of(request)
    email = ""
    try:
        identity = sso.identity_of(meta.issuer, claims, oidc)
        email = identity.email
        role = sso.role_for(identity.groups, oidc)
        if role is None:
            raise sso.refused_for_groups(identity, oidc)
        async with runtime.db.begin() as conn:
            user = await sso_users.account_for(conn, identity, role, now, settings)
            opened = await sessions.open_session(
                conn,
                user,
                now,
                settings,
                ip=client,
                user_agent=request.headers.get("user-agent", ""),
            )
            await users.signed_in(conn, user, "oidc", client, now)
    except SsoRefused as refused:
        async with runtime.db.begin() as conn:
            await sso_users.refused(conn, email, refused.reason, client, now)
        runtime.metrics.auth_failures.labels("console").inc()
        return await _refusal(request, "Access refused", refused.message, 403)
    response = RedirectResponse(next_path, status_code=303, headers=render.NO_STORE)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax")
    set_cookie(request, response, opened.token)
    return response
