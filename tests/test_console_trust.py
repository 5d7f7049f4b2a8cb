"""The console's trust pages over HTTP (and in Chromium for accessibility): users, roles and
sessions, tokens, the audit log with its chain check, backups, and who may do what."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    CONFIG,
    PASSWORD,
    Console,
    assert_accessible,
    browser,  # noqa: F401 - fixture
    browser_sign_in,
    console,  # noqa: F401 - fixture
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts.roles import Role

TRUST = "/console/trust"
NEW_MONITOR = {"id": "new", "kind": "http", "url": "http://127.0.0.1:9/"}


async def _post(
    http: aiohttp.ClientSession, url: str, data: dict[str, Any], page: str | None = None
) -> tuple[int, str]:
    """A console form POST carrying the CSRF token of `page` (default: the form's own page)."""
    csrf = await page_csrf(http, page or url)
    async with http.post(url, data={**data, "csrf": csrf}, allow_redirects=False) as r:
        return r.status, await r.text()


async def test_an_admin_adds_a_user_who_can_then_sign_in(console: Console) -> None:
    users = console.url + TRUST + "/users"
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        status, html = await _post(
            admin, users, {"email": "Weak@Example.com", "role": "editor", "password": "short"}
        )
        assert status == 422
        assert 'aria-invalid="true"' in html and "new-password-error" in html
        assert "weak@example.com" not in html  # nothing created
        status, html = await _post(
            admin, users, {"email": "ops@example.com", "role": "editor", "password": PASSWORD}
        )
        assert status == 200, html
        assert "User ops@example.com (editor) created." in html
        status, html = await _post(admin, users, {"email": "link@example.com", "role": "viewer"})
        link = re.search(r"(http://[^<\s]+/console/reset\?token=[\w-]+)", html)
        assert status == 200 and link, html
    ops = await signed_in_session(console.url, "ops@example.com")
    async with ops, ops.get(console.url + "/console/") as r:
        assert r.status == 200
    async with aiohttp.ClientSession() as anonymous, anonymous.get(link[1]) as r:
        assert r.status == 200 and 'name="password"' in await r.text()  # a live link


async def test_a_role_change_is_audited_and_refuses_the_users_next_change(
    console: Console,
) -> None:
    editor = await signed_in_session(console.url, email_of(Role.EDITOR))
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with editor, admin:
        headers = {"X-CSRF-Token": await page_csrf(editor, console.url + "/console/")}
        async with editor.post(
            console.url + "/api/v1/monitors", json=NEW_MONITOR, headers=headers
        ) as r:
            assert r.status == 201, await r.text()
        status, html = await _post(
            admin, console.url + TRUST + "/users/role",
            {"email": email_of(Role.EDITOR), "role": "viewer"}, console.url + TRUST + "/users",
        )
        assert status == 200 and "editor@example.com is now viewer." in html
        async with editor.delete(console.url + "/api/v1/monitors/new", headers=headers) as r:
            assert r.status == 403  # the same session, its next request: a viewer now
        async with admin.get(
            console.url + TRUST + "/audit", params={"action": "user.role_changed"}
        ) as r:
            html = await r.text()
        assert "operator:admin@example.com" in html and "user:editor@example.com" in html
        assert "from=editor, to=viewer" in html
        # the last admin keeps the role: refused inline, nothing changed
        status, html = await _post(
            admin, console.url + TRUST + "/users/role",
            {"email": email_of(Role.ADMIN), "role": "editor"}, console.url + TRUST + "/users",
        )
        assert status == 409 and "the last active admin keeps the admin role" in html


async def test_ending_a_users_sessions_signs_them_out(console: Console) -> None:
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with viewer, admin:
        async with viewer.get(console.url + "/console/", allow_redirects=False) as r:
            assert r.status == 200
        status, html = await _post(
            admin, console.url + TRUST + "/users/sessions", {"email": email_of(Role.VIEWER)},
            console.url + TRUST + "/users",
        )
        assert status == 200 and "Ended 1 session of viewer@example.com." in html
        async with viewer.get(console.url + "/console/", allow_redirects=False) as r:
            assert r.status == 303  # to the sign-in form
        async with admin.get(console.url + TRUST + "/users", allow_redirects=False) as r:
            assert r.status == 200  # the admin's own session is another user's: untouched


async def test_a_token_made_in_the_console_works_on_the_api_until_revoked(
    console: Console,
) -> None:
    tokens = console.url + TRUST + "/tokens"
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        status, html = await _post(
            admin, tokens, {"name": "grafana", "scope": "read", "expires": "soon"}
        )
        assert status == 422 and 'id="token-expires-error"' in html
        status, html = await _post(
            admin, tokens, {"name": "grafana", "scope": "respond", "expires": "30d"}
        )
        assert status == 200, html
        found = re.search(r"(ut_([0-9a-f]{12})_[\w-]{43})", html)
        assert found, html
        token, token_id = found[1], found[2]
        async with aiohttp.ClientSession() as api:
            bearer = {"Authorization": f"Bearer {token}"}
            async with api.get(console.url + "/api/v1/monitors", headers=bearer) as r:
                assert r.status == 200
            status, html = await _post(admin, tokens + "/revoke", {"id": token_id}, tokens)
            assert status == 200 and f"Token {token_id} (grafana) revoked." in html
            assert token not in html  # shown once, at creation only
            async with api.get(console.url + "/api/v1/monitors", headers=bearer) as r:
                assert r.status == 401


async def test_the_audit_page_filters_and_masks_personal_data_below_admin(
    console: Console,
) -> None:
    audit = console.url + TRUST + "/audit"
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with admin, viewer:
        await _post(admin, console.url + TRUST + "/tokens", {"name": "ci", "scope": "read"})
        async with admin.get(audit, params={"action": "token.*"}) as r:
            html = await r.text()
        assert r.status == 200
        assert "token.created" in html and "user.created" not in html
        async with admin.get(audit, params={"actor": "test", "target": email_of(Role.EDITOR)}):
            pass
        async with admin.get(audit, params={"actor": "test", "action": "user.created"}) as r:
            html = await r.text()
        assert html.count("<code>user.created</code>") == 4  # one per role, made by "test"
        async with admin.get(audit, params={"since": "yesterday"}) as r:
            html = await r.text()
        assert r.status == 422 and 'id="f-since-error"' in html
        async with admin.get(audit, params={"until": "2000-01-01T00:00:00Z"}) as r:
            assert "No entries match these filters" in await r.text()
        async with viewer.get(audit, params={"action": "user.created"}) as r:
            html = await r.text()
        assert r.status == 200 and "user.created" in html
        assert "editor@example.com" not in html and "[redacted]" in html


async def test_verify_chain_says_ok_and_names_the_entry_edited_in_the_database(
    console: Console,
) -> None:
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with viewer:
        verify = console.url + TRUST + "/audit/verify"
        status, html = await _post(viewer, verify, {}, console.url + TRUST + "/audit")
        assert status == 200
        counted = re.search(r"<strong>Chain OK</strong>: (\d+) entries verified", html)
        assert counted and int(counted[1]) >= 5, html
        path = Path(console.runtime.db.url.split("///", 1)[1])
        with sqlite3.connect(path) as db:
            db.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2")
        status, html = await _post(viewer, verify, {}, console.url + TRUST + "/audit")
        assert status == 200
        assert "<strong>Chain broken</strong> at entry 2: its content does not match" in html


async def test_non_admins_are_refused_the_admin_pages_and_forged_posts(console: Console) -> None:
    editor = await signed_in_session(console.url, email_of(Role.EDITOR))
    async with editor:
        for page in ("/users", "/tokens", "/secrets", "/backups"):
            async with editor.get(console.url + TRUST + page) as r:
                assert r.status == 403, page
        async with editor.get(console.url + TRUST) as r:
            html = await r.text()
        assert r.status == 200 and "/console/trust/audit" in html
        assert "/console/trust/users" not in html  # no links to what the role cannot use
        csrf = await page_csrf(editor, console.url + TRUST + "/audit")
        forged = [
            ("/users", {"email": "mallory@example.com", "role": "admin", "password": PASSWORD}),
            ("/users/role", {"email": email_of(Role.EDITOR), "role": "admin"}),
            ("/tokens", {"name": "mine", "scope": "admin"}),
            ("/backups", {}),
        ]
        for path, data in forged:
            async with editor.post(console.url + TRUST + path, data={**data, "csrf": csrf}) as r:
                assert r.status == 403, path
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        async with admin.post(
            console.url + TRUST + "/users",
            data={"email": "nocsrf@example.com", "role": "viewer", "password": PASSWORD},
        ) as r:
            assert r.status == 403
        async with admin.get(console.url + TRUST + "/users") as r:
            html = await r.text()
        assert "mallory@example.com" not in html and "nocsrf@example.com" not in html
        assert '<option value="editor" selected>' in html  # the editor is still an editor
