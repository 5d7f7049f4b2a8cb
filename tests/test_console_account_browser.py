"""Your account in Debian's Chromium: set up an authenticator app and sign in with its code,
"sign out everywhere" ends another browser's session, a passkey (CDP virtual authenticator)
signs in as the second factor or alone; axe-core on the account page in light and dark."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from tests.console_support import (
    PASSWORD,
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
)
from uptally.accounts.roles import Role
from uptally.store import accounts as store

pytestmark = pytest.mark.slow


@pytest.fixture
async def site(console: Console) -> Console:
    return console


@pytest.fixture
async def chromium(browser: Any) -> Any:
    return browser


async def sign_in_with_password(page: Any, url: str, role: Role) -> None:
    await page.goto(url + "/console/login")
    await page.fill("#email", email_of(role))
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")


async def test_enrol_totp_then_sign_in_with_the_code(site: Console, chromium: Any) -> None:
    page = await browser_sign_in(chromium, site.url, Role.ADMIN)
    await page.click("header .who a[href='/console/account']")
    await page.wait_for_url(site.url + "/console/account")
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await assert_accessible(page)
    await page.click("text=Set up an authenticator app")
    await page.wait_for_url(site.url + "/console/account/totp")
    await page.click("summary")
    secret = await page.get_attribute("[data-secret]", "data-secret")
    assert secret
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.fill("#password", PASSWORD)
    await page.click("button:has-text('Turn on')")
    await page.wait_for_selector("text=Your recovery codes")
    assert await page.locator("ol.codes li").count() == 10
    await page.click("text=I have saved them")
    await page.wait_for_selector("text=since")
    await page.click("header button:has-text('Sign out')")
    await page.wait_for_url(site.url + "/console/login")

    await sign_in_with_password(page, site.url, Role.ADMIN)
    await page.wait_for_selector("text=Enter the 6-digit code")
    await assert_accessible(page)  # the second step, dark
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email_of(Role.ADMIN))
    assert user is not None
    assert user.totp_last_step is not None
    # the step after the one used to enrol: accepted now (±1 step) and not a replay
    await page.fill("#code", pyotp.TOTP(secret).generate_otp(user.totp_last_step + 1))
    await page.click("button:has-text('Verify')")
    await page.wait_for_url(site.url + "/console/")
    await page.context.close()


async def test_sign_out_everywhere_ends_another_browsers_session(
    site: Console, chromium: Any
) -> None:
    other = await browser_sign_in(chromium, site.url, Role.EDITOR)
    page = await browser_sign_in(chromium, site.url, Role.EDITOR)
    await page.goto(site.url + "/console/account")
    rows = page.locator(".sessions tbody tr")
    assert await rows.count() == 2
    assert await page.locator(".sessions tr.current").count() == 1
    page.on("dialog", lambda dialog: dialog.accept())  # "Sign out of every browser …?"
    await page.click("button:has-text('Sign out everywhere')>>nth=-1")
    await page.wait_for_url(site.url + "/console/login")
    await other.goto(site.url + "/console/account")
    await other.wait_for_url(site.url + "/console/login?next=/console/account")
    await page.context.close()
    await other.context.close()


async def test_a_passkey_signs_in_as_the_second_factor_or_alone(
    site: Console, chromium: Any
) -> None:
    url = site.url.replace("127.0.0.1", "localhost")  # a passkey's site is a name, not an IP
    ctx = await chromium.new_context()
    page = await ctx.new_page()
    cdp = await ctx.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    await sign_in_with_password(page, url, Role.VIEWER)
    await page.wait_for_url(url + "/console/")
    await page.goto(url + "/console/account")
    await page.fill("#passkey-name", "Test laptop")
    await page.click("button:has-text('Add a passkey')")
    await page.wait_for_selector("text=The passkey has been added.")
    assert await page.locator(".keys li:has-text('Test laptop')").count() == 1
    await page.click("header button:has-text('Sign out')")
    await page.wait_for_url(url + "/console/login")

    await sign_in_with_password(page, url, Role.VIEWER)
    await page.click("button:has-text('Use a passkey')")
    await page.wait_for_url(url + "/console/")
    async with site.runtime.db.connect() as conn:
        user = await store.user_by_email(conn, email_of(Role.VIEWER))
        assert user is not None
        (key,) = await store.passkeys_of(conn, user.id)
    assert key.last_used_at is not None

    await page.click("header button:has-text('Sign out')")
    await page.wait_for_url(url + "/console/login")
    await page.click("button:has-text('Sign in with a passkey')")  # no password at all
    await page.wait_for_url(url + "/console/")
    await ctx.close()
