"""Your account in the console over HTTP: the authenticator app (a code works once, a wrong or
replayed one is refused and audited, a recovery code works once), the password change, and
signing out everywhere else. Browser tests are in test_console_account_browser.py."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

import aiohttp
import pyotp
import pytest

from tests.console_support import (
    ADMIN_TOKEN,
    PASSWORD,
    Console,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally import audit
from uptally.accounts import passkeys, totp, users
from uptally.accounts.roles import Role
from uptally.config.console import Console as ConsoleSettings
from uptally.secrets import is_sealed_text, load_keyring
from uptally.store import accounts as store
from uptally.store.database import Database, database_url

NEW_PASSWORD = "plum-orbit-cactus-lantern-42"


@pytest.fixture
async def site(console: Console) -> Console:
    return console


def field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name} on the page"
    return match[1]


async def enrol(http: aiohttp.ClientSession, url: str) -> tuple[str, list[str]]:
    """Set up an authenticator app through the form: (its secret, the recovery codes shown)."""
    async with http.get(url + "/console/account/totp") as r:
        html = await r.text()
        assert r.status == 200, html
    secret, csrf = field(html, "secret"), field(html, "csrf")
    assert "<svg" in html  # the QR code, inline
    assert f"secret={secret}" in html  # the otpauth URI, to type in
    data = {"csrf": csrf, "secret": secret, "code": "000000", "password": PASSWORD}
    if pyotp.TOTP(secret).now() == "000000":
        data["code"] = "999999"
    async with http.post(url + "/console/account/totp", data=data) as r:
        assert r.status == 422  # a wrong code: refused, nothing changed
        assert 'aria-invalid="true"' in await r.text()
    data["code"] = pyotp.TOTP(secret).now()
    async with http.post(url + "/console/account/totp", data=data) as r:
        html = await r.text()
        assert r.status == 200, html
    codes = re.findall(r"<li><code>([a-z0-9-]{14})</code></li>", html)
    assert len(codes) == 10
    return secret, codes


async def last_step(site: Console, email: str) -> int:
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
    assert user is not None
    assert user.totp_last_step is not None
    return user.totp_last_step


async def second_step(url: str, email: str, code: str) -> int:
    """Sign in with the password, then give `code` on the second page: the answer's status."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        data = {"email": email, "password": PASSWORD, "next": "/console/account"}
        async with http.post(url + "/console/login", data=data, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].startswith("/console/login?next=")
        async with http.get(url + "/console/", allow_redirects=False) as r:
            assert r.status == 303  # the password alone opens nothing
        csrf = await page_csrf(http, url + "/console/login")
        data = {"csrf": csrf, "code": code, "next": "/console/account"}
        async with http.post(url + "/console/login/code", data=data, allow_redirects=False) as r:
            if r.status == 303:
                assert r.headers["Location"] == "/console/account"
                async with http.get(url + "/console/account", allow_redirects=False) as page:
                    assert page.status == 200
            return r.status


async def audit_reasons(url: str, email: str) -> list[str]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        query = f"/api/v1/audit?target=user:{email}&action=user.sign_in_failed"
        async with http.get(url + query, headers=headers) as r:
            return [e["details"]["reason"] for e in (await r.json())["entries"]]


async def test_a_totp_code_works_once_and_a_recovery_code_once(site: Console) -> None:
    email = email_of(Role.EDITOR)
    async with await signed_in_session(site.url, email) as http:
        secret, codes = await enrol(http, site.url)
    step = await last_step(site, email)  # the code given to enrol is used up
    otp = pyotp.TOTP(secret)
    assert await second_step(site.url, email, otp.generate_otp(step)) == 401
    assert await second_step(site.url, email, "123 456" if otp.now() != "123456" else "1") == 401
    next_code = otp.generate_otp(step + 1)  # within the ±1 step window for the next 30 s
    assert await second_step(site.url, email, next_code) == 303
    assert await second_step(site.url, email, next_code) == 401  # replayed
    assert await second_step(site.url, email, codes[3].upper()) == 303
    assert await second_step(site.url, email, codes[3]) == 401  # a recovery code works once
    assert (await audit_reasons(site.url, email)).count("second_factor") == 4
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
        assert user is not None
        assert user.failed_logins == 1  # the successes in between started the count again
        assert user.totp_secret == secret  # no secret key set: stored as is


async def test_wrong_codes_lock_the_account_like_wrong_passwords(site: Console) -> None:
    email = email_of(Role.RESPONDER)
    async with await signed_in_session(site.url, email) as http:
        secret, _ = await enrol(http, site.url)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    statuses = [await second_step(site.url, email, wrong) for _ in range(5)]
    assert statuses == [401] * 5  # the right password each time does not reset the count
    async with aiohttp.ClientSession() as http:
        data = {"email": email, "password": PASSWORD}
        async with http.post(site.url + "/console/login", data=data) as r:
            assert r.status == 401
            assert "locked" in await r.text()
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
        assert user is not None
        assert user.locked_until is not None


async def test_a_sealed_secret_works_and_turning_totp_off_needs_a_current_code(
    site: Console,
) -> None:
    site.runtime.keyring = load_keyring(
        {"UPTALLY_SECRET_KEY": base64.b64encode(b"k" * 32).decode()}
    )
    email = email_of(Role.VIEWER)
    async with await signed_in_session(site.url, email) as http:
        secret, _ = await enrol(http, site.url)
        async with site.runtime.db.connect() as conn:
            user = await store.user_by_email(conn, email)
        assert user is not None
        assert user.totp_secret is not None
        assert is_sealed_text(user.totp_secret)
        assert secret not in user.totp_secret
        csrf = await page_csrf(http, site.url + "/console/account")
        step = await last_step(site, email)
        data = {"csrf": csrf, "code": pyotp.TOTP(secret).generate_otp(step)}  # used already
        async with http.post(site.url + "/console/account/totp/disable", data=data) as r:
            assert r.status == 422
        data["code"] = pyotp.TOTP(secret).generate_otp(step + 1)
        async with http.post(site.url + "/console/account/totp/disable", data=data) as r:
            assert r.status == 200
            assert "is off" in await r.text()
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
        assert user is not None
        assert user.totp_secret is None
        assert await store.unused_recovery_codes(conn, user.id) == 0


async def test_changing_the_password_ends_the_other_sessions_only(site: Console) -> None:
    email = email_of(Role.ADMIN)
    other = await signed_in_session(site.url, email)
    async with other, await signed_in_session(site.url, email) as http:
        csrf = await page_csrf(http, site.url + "/console/account")
        form = {
            "csrf": csrf,
            "current": "not-my-password",
            "new": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        }
        async with http.post(site.url + "/console/account/password", data=form) as r:
            assert r.status == 422
            assert "not your current password" in await r.text()
        form |= {"current": PASSWORD, "new": "password1234", "confirm": "password1234"}
        async with http.post(site.url + "/console/account/password", data=form) as r:
            assert r.status == 422
            assert "breached" in await r.text()
        form |= {"new": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        async with http.post(site.url + "/console/account/password", data=form) as r:
            assert r.status == 200
            assert "your other sessions have ended" in await r.text()
        async with other.get(site.url + "/console/account", allow_redirects=False) as r:
            assert r.status == 303
    http = await signed_in_session(site.url, email, NEW_PASSWORD)
    async with http, http.get(site.url + "/console/account") as r:
        html = await r.text()
        assert r.status == 200
        assert "this one" in html
        assert html.count("<tr") == 3  # the head, the session that changed it, this one


async def test_a_forged_passkey_answer_is_refused_and_audited(site: Console) -> None:
    email = email_of(Role.VIEWER)
    async with site.runtime.db.begin() as conn:
        user = await store.user_by_email(conn, email)
        assert user is not None
        key = store.PasskeyRow(
            "AAAA", user.id, "Key", b"\x00", 0, site.runtime.clock.now_ms(), None
        )
        await store.insert_passkey(conn, key)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        data = {"email": email, "password": PASSWORD}
        async with http.post(site.url + "/console/login", data=data, allow_redirects=False) as r:
            assert r.headers["Location"].startswith("/console/login?next=")  # a passkey is owed
        async with http.get(site.url + "/console/login") as r:
            html = await r.text()
            assert 'data-passkey="sign-in"' in html
        options_url = site.url + "/console/login/passkey/options"
        async with http.post(options_url) as r:
            assert r.status == 403  # no X-CSRF-Token
        headers = {"X-CSRF-Token": field(html, "csrf")}
        async with http.post(options_url, headers=headers) as r:
            options = await r.json()
            assert r.status == 200
            assert [c["id"] for c in options["allowCredentials"]] == ["AAAA"]
            assert options["challenge"]
        forged = {
            "credential": {
                "id": "AAAA",
                "rawId": "AAAA",
                "type": "public-key",
                "response": {
                    "clientDataJSON": "e30",
                    "authenticatorData": "AAAA",
                    "signature": "AAAA",
                },
            }
        }
        for _ in range(2):  # the second time the challenge is used up as well
            async with http.post(
                site.url + "/console/login/passkey", json=forged, headers=headers
            ) as r:
                assert r.status == 401
        async with http.get(site.url + "/console/", allow_redirects=False) as r:
            assert r.status == 303
    assert (await audit_reasons(site.url, email)).count("second_factor") == 2
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(site.url + "/console/login/passkey/start") as r:
            challenge = (await r.json())["challenge"]  # signing in with a passkey alone
        client_data = {"type": "webauthn.get", "challenge": challenge, "origin": site.url}
        encoded = base64.urlsafe_b64encode(json.dumps(client_data).encode()).decode()
        forged["credential"]["response"]["clientDataJSON"] = encoded.rstrip("=")
        for _ in range(2):
            async with http.post(site.url + "/console/login/passkey/finish", json=forged) as r:
                assert r.status == 401
        assert not [c for c in http.cookie_jar if c.key == "uptally_session"]
    async with site.runtime.db.connect() as conn:
        assert not await store.link_is_live(
            conn, passkeys.challenge_id(challenge), passkeys.LINK, site.runtime.clock.now_ms()
        )  # used up by the first answer


async def test_an_admin_resets_a_users_lost_second_factors_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from uptally.cli import app

    db = Database(database_url(tmp_path))
    await db.migrate()
    async with db.begin() as conn:
        user = await users.create(
            conn, "lost@example.com", Role.EDITOR, PASSWORD, "test", 1, ConsoleSettings()
        )
        await totp.enable(conn, user, totp.new_secret(), 1, None, "test", 1)
        await store.insert_passkey(
            conn, store.PasskeyRow("AAAA", user.id, "Key", b"\0", 0, 1, None)
        )
    await db.close()
    args = ["users", "reset-2fa", "lost@example.com", "--data-dir", str(tmp_path)]
    result = await asyncio.to_thread(CliRunner().invoke, app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "second factors of lost@example.com removed" in result.output
    db = Database(database_url(tmp_path))
    async with db.connect() as conn:
        after = await store.user_by_email(conn, "lost@example.com")
        assert after is not None
        assert after.totp_secret is None
        assert after.totp_enabled_at is None
        assert await store.count_passkeys(conn, after.id) == 0
        assert await store.unused_recovery_codes(conn, after.id) == 0
        entries = await audit.list_entries(
            conn, audit.AuditFilter(action="user.second_factors_reset")
        )
        assert len(entries) == 1
    await db.close()


async def test_one_browser_is_signed_out_from_the_list_and_only_your_own(site: Console) -> None:
    email = email_of(Role.RESPONDER)
    other = await signed_in_session(site.url, email)
    stranger = await signed_in_session(site.url, email_of(Role.ADMIN))
    async with other, stranger, await signed_in_session(site.url, email) as http:
        async with site.runtime.db.connect() as conn:
            admin = await store.user_by_email(conn, email_of(Role.ADMIN))
            assert admin is not None
            (strangers,) = await store.sessions_of(conn, admin.id, site.runtime.clock.now_ms())
        strangers_id = strangers.id
        async with http.get(site.url + "/console/account") as r:
            html = await r.text()
        csrf, others_id = field(html, "csrf"), field(html, "session")
        url = site.url + "/console/account/sessions/end"
        async with http.post(url, data={"csrf": csrf, "session": strangers_id}) as r:
            assert r.status == 200  # not this user's: nothing happens
        async with http.post(url, data={"csrf": csrf, "session": others_id}) as r:
            assert "That browser has been signed out." in await r.text()
        async with other.get(site.url + "/console/account", allow_redirects=False) as r:
            assert r.status == 303
        for client in (http, stranger):
            async with client.get(site.url + "/console/account", allow_redirects=False) as r:
                assert r.status == 200
