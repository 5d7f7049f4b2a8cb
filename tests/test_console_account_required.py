"""`console.require_totp: true`: a password user without an authenticator app reaches only the
enrolment page (every other console page redirects there, the API refuses the session) until
it is set up; the enrolment page passes axe-core in light and dark."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.console_support import (
    CONFIG,
    PASSWORD,
    Console,
    assert_accessible,
    email_of,
    page_csrf,
    signed_in_session,
)
from uptally.accounts.roles import Role

CONSOLE_CONFIG = CONFIG + "console: {require_totp: true}\n"
ENROL = "/console/account/totp"


@pytest.fixture
async def site(console: Console) -> Console:
    return console


async def test_only_the_enrolment_page_answers_until_totp_is_set_up(site: Console) -> None:
    async with await signed_in_session(site.url, email_of(Role.ADMIN)) as http:
        for path in ("/console/", "/console/account", "/console/incidents"):
            async with http.get(site.url + path, allow_redirects=False) as r:
                assert r.status == 303, path
                assert r.headers["Location"] == ENROL
        async with http.get(site.url + "/api/v1/monitors") as r:
            assert r.status == 401  # the session does not stand in for a token yet
        async with http.get(site.url + ENROL) as r:
            html = await r.text()
            assert r.status == 200
            assert "requires a second factor" in html
        csrf = await page_csrf(http, site.url + ENROL)
        async with http.post(
            site.url + "/console/account/sessions/all", data={"csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert r.headers["Location"] == ENROL  # nothing else, not even this
        secret = html.split('name="secret" value="')[1].split('"')[0]
        data = {
            "csrf": csrf,
            "secret": secret,
            "code": pyotp.TOTP(secret).now(),
            "password": PASSWORD,
        }
        async with http.post(site.url + ENROL, data=data) as r:
            assert r.status == 200
        async with http.get(site.url + "/console/", allow_redirects=False) as r:
            assert r.status == 200
        async with http.get(site.url + "/api/v1/monitors") as r:
            assert r.status == 200


@pytest.mark.slow
async def test_signing_in_leads_to_an_accessible_enrolment_page(
    site: Console,
    browser: Any,
) -> None:
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(site.url + "/console/login")
    await page.fill("#email", email_of(Role.VIEWER))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(site.url + ENROL)
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await assert_accessible(page)
    await page.goto(site.url + "/console/account")
    await page.wait_for_url(site.url + ENROL)
    await ctx.close()
