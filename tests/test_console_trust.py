"""The console's trust pages over HTTP (and in Chromium for accessibility): users, roles and
sessions, tokens, the audit log with its chain check, backups, and who may do what."""

from __future__ import annotations

import re
import sqlite3
from html import unescape as html_unescape
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    CONFIG,
    PASSWORD,
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts.roles import Role
from uptally.audit import append_many
from uptally.backup.drill import run_drill

TRUST = "/console/trust"
NEW_MONITOR = {"id": "new", "kind": "http", "url": "http://127.0.0.1:9/"}


async def _post(
    http: aiohttp.ClientSession, url: str, data: dict[str, Any], page: str | None = None
) -> tuple[int, str]:
    """A console form POST carrying the CSRF token of `page` (default: the form's own page)."""
    csrf = await page_csrf(http, page or url)
    async with http.post(url, data={**data, "csrf": csrf}, allow_redirects=False) as r:
        return r.status, await r.text()


async def _audit_page(http: aiohttp.ClientSession, url: str) -> tuple[list[int], str]:
    """The `item:N` targets on an audit page, in order, and the page."""
    async with http.get(url) as r:
        html = await r.text()
    assert r.status == 200, html
    return [int(n) for n in re.findall(r"item:(\d+)", html)], html


def _link(html: str, rel: str) -> str:
    found = re.search(rf'href="([^"]+)" rel="{rel}"', html)
    assert found, html
    return html_unescape(found[1])


async def test_an_admin_adds_a_user_who_can_then_sign_in(console: Console) -> None:
    users = console.url + TRUST + "/users"
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        status, html = await _post(
            admin, users, {"email": "Weak@Example.com", "role": "editor", "password": "short"}
        )
        assert status == 422
        assert 'aria-invalid="true"' in html
        assert "new-password-error" in html
        assert "weak@example.com" not in html  # nothing created
        status, html = await _post(
            admin, users, {"email": "ops@example.com", "role": "editor", "password": PASSWORD}
        )
        assert status == 200, html
        assert "User ops@example.com (editor) created." in html
        status, html = await _post(admin, users, {"email": "link@example.com", "role": "viewer"})
        link = re.search(r"(http://[^<\s]+/console/reset\?token=[\w-]+)", html)
        assert status == 200
        assert link, html
    ops = await signed_in_session(console.url, "ops@example.com")
    async with ops, ops.get(console.url + "/console/") as r:
        assert r.status == 200
    async with aiohttp.ClientSession() as anonymous, anonymous.get(link[1]) as r:
        assert r.status == 200
        assert 'name="password"' in await r.text()


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
            admin,
            console.url + TRUST + "/users/role",
            {"email": email_of(Role.EDITOR), "role": "viewer"},
            console.url + TRUST + "/users",
        )
        assert status == 200
        assert "editor@example.com is now viewer." in html
        async with editor.delete(console.url + "/api/v1/monitors/new", headers=headers) as r:
            assert r.status == 403  # the same session, its next request: a viewer now
        async with admin.get(
            console.url + TRUST + "/audit", params={"action": "user.role_changed"}
        ) as r:
            html = await r.text()
        assert "operator:admin@example.com" in html
        assert "user:editor@example.com" in html
        assert "from=editor, to=viewer" in html
        # the last admin keeps the role: refused inline, nothing changed
        status, html = await _post(
            admin,
            console.url + TRUST + "/users/role",
            {"email": email_of(Role.ADMIN), "role": "editor"},
            console.url + TRUST + "/users",
        )
        assert status == 409
        assert "the last active admin keeps the admin role" in html


async def test_ending_a_users_sessions_signs_them_out(console: Console) -> None:
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with viewer, admin:
        async with viewer.get(console.url + "/console/", allow_redirects=False) as r:
            assert r.status == 200
        status, html = await _post(
            admin,
            console.url + TRUST + "/users/sessions",
            {"email": email_of(Role.VIEWER)},
            console.url + TRUST + "/users",
        )
        assert status == 200
        assert "Ended 1 session of viewer@example.com." in html
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
        assert status == 422
        assert 'id="token-expires-error"' in html
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
            assert status == 200
            assert f"Token {token_id} (grafana) revoked." in html
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
        assert "token.created" in html
        assert "user.created" not in html
        async with admin.get(audit, params={"actor": "test", "action": "user.created"}) as r:
            html = await r.text()
        assert html.count("<code>user.created</code>") == 4  # one per role, made by "test"
        async with admin.get(audit, params={"since": "yesterday"}) as r:
            html = await r.text()
        assert r.status == 422
        assert 'id="f-since-error"' in html
        async with admin.get(audit, params={"until": "2000-01-01T00:00:00Z"}) as r:
            assert "No entries match these filters" in await r.text()
        async with console.runtime.db.begin() as conn:
            items = [("bulk.entry", f"item:{n}", {"n": n}) for n in range(1, 61)]
            await append_many(conn, "test", items)
        shown, html = await _audit_page(admin, audit + "?action=bulk.*")
        assert shown == list(range(60, 10, -1))  # newest first, 50 to a page
        shown, html = await _audit_page(admin, console.url + _link(html, "next"))
        assert shown == list(range(10, 0, -1))
        assert 'rel="next"' not in html  # the oldest page
        shown, html = await _audit_page(admin, console.url + _link(html, "prev"))
        assert shown == list(range(60, 10, -1))
        async with viewer.get(audit, params={"action": "user.created"}) as r:
            html = await r.text()
        assert r.status == 200
        assert "user.created" in html
        assert "editor@example.com" not in html
        assert "[redacted]" in html


async def test_verify_chain_says_ok_and_names_the_entry_edited_in_the_database(
    console: Console,
) -> None:
    viewer = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with viewer:
        verify = console.url + TRUST + "/audit/verify"
        status, html = await _post(viewer, verify, {}, console.url + TRUST + "/audit")
        assert status == 200
        counted = re.search(r"<strong>Chain OK</strong>: (\d+) entries verified", html)
        assert counted, html
        assert int(counted[1]) >= 5
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
        assert r.status == 200
        assert "/console/trust/audit" in html
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
        assert "mallory@example.com" not in html
        assert "nocsrf@example.com" not in html
        assert '<option value="editor" selected>' in html  # the editor is still an editor


@pytest.fixture
def backups_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Ask for it before `console`: that runtime backs up to a directory of its own."""
    text = CONFIG + f"backup: {{dir: {tmp_path / 'backups'}, every: 1d}}\n"
    monkeypatch.setattr(request.module, "CONSOLE_CONFIG", text, raising=False)


async def test_create_now_makes_a_verified_backup_and_a_drill_shows_rto_and_rpo(
    backups_on: None, console: Console
) -> None:
    backups = console.url + TRUST + "/backups"
    admin = await signed_in_session(console.url, email_of(Role.ADMIN))
    async with admin:
        async with admin.get(backups) as r:
            html = await r.text()
        assert "No drill yet" in html
        status, html = await _post(admin, backups, {})
        assert status == 200, html
        made = re.search(r"Backup (uptally-\S+\.sqlite\.gz) created", html)
        assert made, html
        assert f"<strong>{made[1]}: verified</strong>" in html
        assert "checksum: ok" in html
        assert f'<th scope="row" class="mono">{made[1]}</th>' in html
        path = Path(console.runtime.config.backup.dir or "") / made[1]
        intact = path.stat().st_size
        with path.open("ab") as damaged:
            damaged.write(b"x")
        status, html = await _post(admin, backups + "/verify", {"file": made[1]}, backups)
        assert status == 200
        assert f"<strong>{made[1]}: FAILED verification</strong>" in html
        assert "checksum: failed" in html
        with path.open("r+b") as repaired:
            repaired.truncate(intact)
        status, html = await _post(admin, backups + "/verify", {"file": "../u.db"}, backups)
        assert status == 404
        runtime = console.runtime
        report = await run_drill(
            runtime.db,
            Path(runtime.config.backup.dir or ""),
            None,
            runtime.config.dr,
            actor="test",
        )
        async with admin.get(backups) as r:
            html = await r.text()
        assert report.ok, report.checks
        assert '<span class="pill state-up">passed</span>' in html
        assert "RTO achieved" in html
        assert "(target 4h)" in html
        assert "(target 1d)" in html
        async with admin.get(console.url + TRUST) as r:
            html = await r.text()
        assert re.search(
            r'<span class="pill state-\w+">\w+</span> <span class="muted">newest', html
        )


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
async def test_the_trust_pages_are_accessible(
    backups_on: None, console: Console, browser: Any, scheme: str
) -> None:
    page = await browser_sign_in(browser, console.url, Role.ADMIN, color_scheme=scheme)
    await page.goto(console.url + TRUST + "/audit")
    await page.click("text=Verify chain")
    await page.wait_for_selector(".verdict-ok")
    await assert_accessible(page)
    await page.goto(console.url + TRUST + "/users")
    await assert_accessible(page)
    await page.goto(console.url + TRUST + "/tokens")
    await page.fill("#token-name", "dashboard")
    await page.click("text=Create token")
    await page.wait_for_selector("#new-token")
    await assert_accessible(page)
    await page.goto(console.url + TRUST + "/backups")
    await page.click("text=Create now")
    await page.wait_for_selector(".verdict-ok")
    await assert_accessible(page)
