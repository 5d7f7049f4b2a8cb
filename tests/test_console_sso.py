"""Single sign-on with OpenID Connect against a real provider (panva's oidc-provider, run with
node from tests/oidc/): groups map onto roles, accounts are made or linked, refusals are pages
that say why; and the pure claims → role mapping."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    ADMIN_TOKEN,
    CONFIG,
    Console,
    assert_accessible,
    email_of,
    running_console,
)
from uptally.accounts import sso, users
from uptally.accounts.roles import Role
from uptally.config.console import Oidc
from uptally.store import accounts as store

PROVIDER_DIR = Path(__file__).parent / "oidc"
SECRET = "uptally-test-client-secret"  # the test provider's client
SECRET_ENV = "UPTALLY_TEST_OIDC_SECRET"
IDP = "Acme ID"


def node_or_skip() -> str:
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else "tests/oidc/node_modules is missing (npm ci --prefix tests/oidc)"
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir()
        else ""
    )
    if missing:
        if os.environ.get("UPTALLY_REQUIRE_OIDC") == "1":
            pytest.fail(f"the OpenID Connect provider for the SSO tests: {missing}")
        pytest.skip(f"no local OpenID Connect provider: {missing}")
    assert node is not None
    return node


@pytest.fixture
async def issuer() -> AsyncIterator[str]:
    """oidc-provider on a free port of 127.0.0.1; its issuer URL once it listens."""
    node = node_or_skip()
    process = await asyncio.create_subprocess_exec(
        node,
        "provider.mjs",
        cwd=PROVIDER_DIR,
        env={**os.environ, "PORT": "0", "CLIENT_ID": "uptally", "CLIENT_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):  # node starts in well under a second unloaded
            line = (await process.stdout.readline()).decode().strip()
        assert line.startswith("listening http://127.0.0.1:"), f"provider said {line!r}"
        yield line.split()[1]
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


def sso_config(issuer: str) -> str:
    return (
        CONFIG
        + f"""
console:
  oidc:
    issuer: "{issuer}"
    client_id: uptally
    client_secret_env: {SECRET_ENV}
    name: {IDP}
    scopes: [openid, email, profile, groups]
    roles: {{oncall: responder, editors: editor, admins: admin}}
"""
    )


@pytest.fixture
async def console(
    issuer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Console]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with running_console(tmp_path, sso_config(issuer)) as served:
        yield served


async def sso_over_http(
    url: str, login: str, password: str, start: str = "/console/sso/login"
) -> tuple[int, str, str, Any]:
    """Sign in through the provider's form with a plain HTTP client: the final status, URL,
    page and the client (its cookie jar holds the console session)."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get(url + start) as form:
        assert form.status == 200, await form.text()
        assert "Test identity provider" in await form.text()
        action = str(form.url) + "/login"
    async with http.post(action, data={"login": login, "password": password}) as done:
        return done.status, str(done.url), await done.text(), http


async def audit_of(console: Console, email: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(console.url + f"/api/v1/audit?target=user:{email}", headers=headers) as r,
    ):
        entries: list[dict[str, Any]] = (await r.json())["entries"]
        return entries


@pytest.mark.slow
async def test_signing_in_with_the_provider_maps_the_oncall_group_to_responder(
    console: Console,
    issuer: str,
    browser: Any,
) -> None:
    page = await (await browser.new_context()).new_page()
    await page.goto(console.login())
    await page.get_by_role("link", name=f"Sign in with {IDP}").click()
    await page.fill("#login", "olivia")
    await page.fill("#password", "olivia-pass")
    await page.click("button[type=submit]")
    await page.wait_for_url(console.url + "/console/")
    assert await page.locator("header .role").inner_text() == "responder"
    assert await page.get_by_role("link", name="Incidents").count() == 1
    denied = await page.request.get(console.url + "/api/v1/tokens")  # the admin scope's
    assert denied.status == 403
    async with console.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, "olivia@example.com")
    assert user is not None
    assert (user.role, user.password_hash, user.name) == ("responder", None, "Olivia Oncall")
    assert user.sso_subject == f"{issuer} olivia"
    entries = await audit_of(console, "olivia@example.com")
    signed = [e for e in entries if e["action"] == "user.signed_in"]
    assert [e["details"]["method"] for e in signed] == ["oidc"]


@pytest.mark.slow
async def test_a_user_in_no_mapped_group_is_refused_with_a_message(
    console: Console,
    browser: Any,
) -> None:
    page = await (await browser.new_context()).new_page()
    await page.goto(console.login())
    await page.get_by_role("link", name=f"Sign in with {IDP}").click()
    await page.fill("#login", "nora")
    await page.fill("#password", "nora-pass")
    await page.click("button[type=submit]")
    await page.wait_for_url(console.url + "/console/sso/callback*")
    assert await page.get_by_role("heading", level=1).inner_text() == "Access refused"
    alert = await page.get_by_role("alert").inner_text()
    assert "none of your groups gives access" in alert
    assert "nora@example.com" in alert
    await assert_accessible(page)
    await page.goto(console.url + "/console/")
    assert page.url.startswith(console.url + "/console/login")  # no session was opened
    async with console.runtime.db.connect() as conn:
        assert await store.user_by_email(conn, "nora@example.com") is None
    refused = await audit_of(console, "nora@example.com")
    assert [(e["action"], e["details"]["reason"]) for e in refused] == [
        ("user.sign_in_failed", "no_group")
    ]


async def test_the_admins_group_gives_admin_and_the_sign_in_returns_to_the_page_asked_for(
    console: Console,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(console.url + "/console/login?next=/console/%3Fstate%3Ddown") as r,
    ):
        start = re.search(r'href="(/console/sso/login[^"]*)"', await r.text())
    assert start is not None
    assert start[1] == "/console/sso/login?next=/console/%3Fstate%3Ddown"
    status, landed, _, http = await sso_over_http(console.url, "adam", "adam-pass", start[1])
    async with http:
        assert (status, landed) == (200, console.url + "/console/?state=down")
        assert "uptally_sso" not in {c.key for c in http.cookie_jar}  # the flow is over
        async with http.get(console.url + "/api/v1/tokens") as r:
            assert r.status == 200  # admin + oncall: the highest role wins


async def test_an_existing_account_is_linked_by_email_and_takes_the_role_of_its_groups(
    console: Console, issuer: str
) -> None:
    email = email_of(Role.VIEWER)  # made with a password as a viewer; "vic" at the provider
    status, _, html, http = await sso_over_http(console.url, "vic", "vic-pass")
    await http.close()
    assert status == 200, html
    async with console.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
    assert user is not None
    assert (user.role, user.sso_subject) == ("responder", f"{issuer} vic")
    assert user.password_hash is not None  # the password still works too
    actions = [(e["action"], e["actor"]) for e in await audit_of(console, email)]
    assert ("user.sso_linked", "oidc") in actions
    assert ("user.role_changed", "oidc") in actions


async def test_a_forged_answer_a_provider_error_and_a_disabled_account_are_refused_with_a_message(
    console: Console,
) -> None:
    callback = console.url + "/console/sso/callback"
    async with aiohttp.ClientSession() as http:
        async with http.get(callback + "?code=x&state=forged") as r:
            assert r.status == 400
            assert "does not belong to a sign-in started in this browser" in await r.text()
        async with http.get(callback + "?error=access_denied&error_description=No+way") as r:
            assert r.status == 403
            assert f"{IDP} did not sign you in: No way" in await r.text()
    async with console.runtime.db.begin() as conn:
        await users.set_disabled(conn, email_of(Role.VIEWER), True, "test", 0)
    status, _, html, http = await sso_over_http(console.url, "vic", "vic-pass")
    async with http:
        assert status == 403
        assert f"The uptally account {email_of(Role.VIEWER)} is disabled" in html
        async with http.get(console.url + "/console/", allow_redirects=False) as r:
            assert r.status == 303  # to the sign-in form: no session


async def test_an_unreachable_provider_is_a_message_not_an_error(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    async with (
        running_console(tmp_path, sso_config(f"http://127.0.0.1:{unused_tcp_port}")) as served,
        aiohttp.ClientSession() as http,
        http.get(served.url + "/console/login") as login,
    ):
        assert f"Sign in with {IDP}" in await login.text()
        async with http.get(served.url + "/console/sso/login", allow_redirects=False) as r:
            assert r.status == 502
            assert f"uptally could not reach {IDP}" in await r.text()


def oidc(**values: Any) -> Oidc:
    return Oidc(issuer="https://id.example.com", client_id="uptally", **values)


def test_the_highest_role_of_the_groups_wins() -> None:
    config = oidc(roles={"oncall": "responder", "admins": "admin", "dev": "editor"})
    assert sso.role_for(("dev", "oncall", "admins"), config) is Role.ADMIN
    assert sso.role_for(("oncall", "staff"), config) is Role.RESPONDER
    assert sso.role_for(("staff",), config) is None
    assert sso.role_for((), oidc(roles={"a": "admin"}, default_role="viewer")) is Role.VIEWER


def test_groups_are_read_from_a_list_a_single_name_or_a_nested_claim() -> None:
    claims = {
        "sub": "42",
        "email": "Ann@Example.com",
        "groups": "oncall",
        "realm_access": {"roles": ["admins", 7]},
        "https://example.com/groups": ["dev"],
    }
    assert sso.groups_of(claims, "groups") == ("oncall",)
    assert sso.groups_of(claims, "realm_access.roles") == ("admins",)
    assert sso.groups_of(claims, "https://example.com/groups") == ("dev",)
    assert sso.groups_of(claims, "missing.path") == ()
    who = sso.identity_of("https://id.example.com", claims, oidc())
    assert (who.subject, who.email, who.email_verified) == (
        "https://id.example.com 42",
        "ann@example.com",
        True,
    )
    with pytest.raises(sso.SsoRefused) as refused:
        sso.identity_of("https://id.example.com", {"sub": "42"}, oidc())
    assert refused.value.reason == "no_email"


def test_the_flow_values_come_from_the_browser_secret_and_only_it() -> None:
    secret = sso.new_flow_secret(1_000)
    flow = sso.flow_of(secret)
    assert sso.flow_started(secret) == 1_000
    assert sso.state_matches(secret, flow.state)
    assert not sso.state_matches(sso.new_flow_secret(1_000), flow.state)
    assert len({flow.state, flow.nonce, flow.verifier}) == 3
    assert 43 <= len(flow.verifier) <= 128  # RFC 7636


async def test_an_id_token_with_the_wrong_nonce_issuer_audience_key_or_age_is_refused() -> None:
    from joserfc import jwt
    from joserfc.jwk import KeySet, RSAKey

    from uptally.accounts.oidc import Metadata, OidcError, RelyingParty

    # the same key id: a token signed by a stranger must fail on its signature
    key, stranger = (RSAKey.generate_key(2048, parameters={"kid": "k1"}) for _ in range(2))
    issuer, now = "https://id.example.com", 1_800_000_000_000
    party = RelyingParty(oidc())
    party._keys = (now, KeySet([key]))  # as if fetched from jwks_uri
    meta = Metadata(
        issuer, f"{issuer}/auth", f"{issuer}/token", f"{issuer}/jwks", None, ("RS256",), True
    )
    flow = sso.flow_of(sso.new_flow_secret(now))
    good = {
        "iss": issuer,
        "sub": "42",
        "aud": "uptally",
        "iat": now // 1000,
        "exp": now // 1000 + 300,
        "nonce": flow.nonce,
    }

    def signed(claims: dict[str, Any], by: RSAKey = key) -> str:
        return jwt.encode({"alg": "RS256", "kid": by.kid}, claims, by)

    assert (await party._validated(meta, signed(good), flow, None, now))["sub"] == "42"
    for bad, why in (
        (signed({**good, "nonce": "replayed"}), "nonce"),
        (signed({**good, "iss": "https://evil.example.com"}), "iss"),
        (signed({**good, "aud": "someone-else"}), "aud"),
        (signed({**good, "exp": now // 1000 - 600}), "expired"),
        (signed(good, stranger), "signature"),
    ):
        with pytest.raises(OidcError, match=why):
            await party._validated(meta, bad, flow, None, now)
