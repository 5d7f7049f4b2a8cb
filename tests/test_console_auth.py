"""Signing in to the console over HTTP: redirects, sessions, CSRF, lockout, setup link, roles
on the API with the session cookie, and the `users` CLI."""

from __future__ import annotations

import aiohttp
import pytest

from tests.console_support import (
    PASSWORD,
    Console,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts import links
from uptally.accounts.roles import Role
from uptally.store import accounts as store


async def test_a_signed_out_visitor_is_sent_to_the_sign_in_form(console: Console) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(console.url + "/console/incidents?x=1", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/console/login?next=/console/incidents%3Fx%3D1"
        async with http.get(console.url + "/console/login") as r:
            html = await r.text()
            assert r.status == 200
            for field in ('name="email"', 'name="password"', 'name="code"'):
                assert field in html


async def test_signing_in_opens_a_session_and_signing_out_needs_the_csrf_token(
    console: Console,
) -> None:
    http = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with http:
        cookie = next(c for c in http.cookie_jar if c.key == "uptally_session")
        assert cookie["httponly"]
        assert cookie["samesite"].lower() == "lax"
        csrf = await page_csrf(http, console.url + "/console/")
        async with http.post(console.url + "/console/logout", allow_redirects=False) as r:
            assert r.status == 403
        async with http.post(
            console.url + "/console/logout", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303
        async with http.get(console.url + "/console/", allow_redirects=False) as r:
            assert r.status == 303  # the session has ended on the server


async def test_a_wrong_password_is_refused_and_audited_and_five_lock_the_account(
    console: Console,
) -> None:
    email = email_of(Role.EDITOR)
    async with aiohttp.ClientSession() as http:
        for _ in range(5):
            async with http.post(
                console.url + "/console/login", data={"email": email, "password": "nope-nope-nope"}
            ) as r:
                assert r.status in (401, 429)
        async with http.post(
            console.url + "/console/login", data={"email": email, "password": PASSWORD}
        ) as r:
            text = await r.text()
            assert r.status in (401, 429)
            assert "locked" in text or "Too many" in text
    async with console.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email)
        assert user is not None
        assert user.locked_until is not None
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer adm-7Hq2LmZx9Wv4Rt8Ys1Nb"}
        async with http.get(
            console.url + f"/api/v1/audit?target=user:{email}", headers=headers
        ) as r:
            actions = [e["action"] for e in (await r.json())["entries"]]
    assert actions.count("user.sign_in_failed") >= 5
    assert "user.locked" in actions


async def test_the_session_cookie_carries_the_role_to_the_api_and_changes_need_csrf(
    console: Console,
) -> None:
    monitor = {"id": "new", "kind": "http", "url": "http://127.0.0.1:9/"}
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with viewer:
        csrf = await page_csrf(viewer, console.url + "/console/")
        async with viewer.get(console.url + "/api/v1/monitors") as r:
            assert r.status == 200
        async with viewer.post(
            console.url + "/api/v1/monitors", json=monitor, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 403
    editor = await signed_in_session(console.url, email_of(Role.EDITOR))
    async with editor:
        csrf = await page_csrf(editor, console.url + "/console/")
        async with editor.post(console.url + "/api/v1/monitors", json=monitor) as r:
            assert r.status == 403  # no X-CSRF-Token
        async with editor.post(
            console.url + "/api/v1/monitors", json=monitor, headers={"X-CSRF-Token": csrf}
        ) as r:
            assert r.status == 201, await r.text()


async def test_a_responder_may_declare_an_incident_but_not_edit_monitors(console: Console) -> None:
    responder = await signed_in_session(console.url, email_of(Role.RESPONDER))
    async with responder:
        headers = {"X-CSRF-Token": await page_csrf(responder, console.url + "/console/")}
        incident = {
            "title": "Slow API",
            "status": "investigating",
            "impact": "minor",
            "components": ["api"],
            "message": "Looking into it.",
        }
        async with responder.post(
            console.url + "/api/v1/incidents", json=incident, headers=headers
        ) as r:
            assert r.status == 201, await r.text()
        async with responder.delete(console.url + "/api/v1/monitors/api", headers=headers) as r:
            assert r.status == 403


async def test_a_setup_link_is_refused_once_users_exist(console: Console) -> None:
    runtime = console.runtime
    now = runtime.clock.now_ms()
    async with runtime.db.begin() as conn:
        assert await links.setup_link(conn, now) is None  # users exist
        token = await links.issue(conn, links.SETUP, None, now)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(console.url + f"/console/setup?token={token}") as r:
            assert r.status == 200
        data = {"token": token, "email": "first@example.com", "password": PASSWORD}
        async with http.post(console.url + "/console/setup", data=data) as r:
            assert r.status == 422  # users exist already: refused, nothing made
            assert "sign in instead" in await r.text()
    async with runtime.db.connect() as conn:
        assert await store.user_by_email(conn, "first@example.com") is None


@pytest.mark.parametrize("password", ["short", "password1234", "viewer@example.com"])
async def test_a_weak_password_is_refused_at_reset(console: Console, password: str) -> None:
    runtime = console.runtime
    async with runtime.db.begin() as conn:
        user = await store.user_by_email(conn, email_of(Role.VIEWER))
        assert user is not None
        token = await links.issue(conn, links.RESET, user.id, runtime.clock.now_ms())
    async with aiohttp.ClientSession() as http:
        async with http.post(
            console.url + "/console/reset", data={"token": token, "password": password}
        ) as r:
            assert r.status == 422
            assert 'role="alert"' in await r.text()
        async with http.get(console.url + f"/console/reset?token={token}") as r:
            assert r.status == 200  # the refused attempt did not use the link up
