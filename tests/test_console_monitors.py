"""The console's monitor page and editor: roles and CSRF enforced by the server, provisioned
monitors read-only, the form's round trip for every kind, and in Chromium: create a monitor
through the form (an error shown next to its field, fixed, tested, saved), accessible in light
and dark."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.console_support import (
    ADMIN_TOKEN,
    Console,
    assert_accessible,
    browser_sign_in,
    email_of,
    page_csrf,
    signed_in_session,
)
from tests.targets import HttpTarget, Response
from uptally.accounts.roles import Role
from uptally.config.schema import monitor_document, monitor_from_document
from uptally.store.rollups import HOUR_MS, Rollup, save_rollups
from uptally.web.console import monitor_form

MANAGED = {"id": "shop", "kind": "http", "url": "http://127.0.0.1:9/", "confirm": 1}


async def _post(
    http: aiohttp.ClientSession, url: str, data: dict[str, Any]
) -> tuple[int, str, str | None]:
    async with http.post(url, data=data, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location")


async def _api(console: Console, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, console.url + path, json=body) as r,
    ):
        assert r.status < 300, await r.text()
        return await r.json() if r.status != 204 else None


async def test_a_viewer_sees_latency_but_no_controls_and_is_refused_every_change(
    console: Console,
) -> None:
    await _api(console, "POST", "/api/v1/monitors", MANAGED)
    await _hours_of_latency(console, "shop")
    http = await signed_in_session(console.url, email_of(Role.VIEWER))
    async with http:
        page = console.url + "/console/monitors/shop"
        async with http.get(page) as r:
            html = await r.text()
            assert r.status == 200
        assert "Recent results" in html
        assert "Outages" in html
        assert html.count("<polyline") == 3  # p50, p95, p99 over three hours at `local`
        assert "Latency at local as a table" in html
        assert '<th scope="row">' in html
        for control in ("/edit", "/delete", "/check", "/pause", "Check now"):
            assert control not in html
        async with http.get(console.url + "/console/monitors/nightly") as r:
            assert "/ping/" not in await r.text()  # a ping URL records pings
        csrf = await page_csrf(http, page)  # the viewer's own, valid token
        for path in ("new", "shop/edit", "shop/delete", "shop/check", "shop/pause"):
            data = {"csrf": csrf, "kind": "http", "id": "x", "http.url": "http://127.0.0.1:9/"}
            status, body, _ = await _post(http, f"{console.url}/console/monitors/{path}", data)
            assert status == 403, (path, body)
    assert console.runtime.config.monitor("x") is None
    assert console.runtime.config.monitor("shop") is not None
    assert not console.runtime.pausing.is_paused("shop")


async def test_a_change_without_the_csrf_token_is_refused(console: Console) -> None:
    await _api(console, "POST", "/api/v1/monitors", MANAGED)
    http = await signed_in_session(console.url, email_of(Role.EDITOR))
    async with http:
        data = {"kind": "http", "id": "x", "http.url": "http://127.0.0.1:9/"}
        for path in ("new", "shop/delete", "shop/pause"):
            status, _, _ = await _post(http, f"{console.url}/console/monitors/{path}", data)
            assert status == 403
    assert console.runtime.config.monitor("x") is None
    assert console.runtime.config.monitor("shop") is not None


async def test_without_javascript_continue_shows_the_kind_and_bad_input_is_named(
    console: Console,
) -> None:
    http = await signed_in_session(console.url, email_of(Role.EDITOR))
    async with http:
        new = console.url + "/console/monitors/new"
        csrf = await page_csrf(http, new)
        data = {"csrf": csrf, "kind": "tcp", "id": "db2", "name": "Kept", "action": "kind"}
        status, html, _ = await _post(http, new, data)
        assert status == 200
        assert '<fieldset class="card kind-section" data-kind="tcp">' in html  # not hidden
        assert 'data-kind="http" hidden' in html
        assert 'value="Kept"' in html
        data = {
            "csrf": csrf,
            "kind": "scenario",
            "id": "s1",
            "scenario.steps": "- kind: [",
            "timeout": "soon",
            "tags": "ok bad!tag",
            "locations": "local",
        }
        status, html, _ = await _post(http, new, data)
        assert status == 422
        assert 'id="f-scenario-steps-error"' in html
        assert 'id="f-timeout-error"' in html
        assert 'id="f-tags-error"' in html
        assert 'aria-invalid="true"' in html
    assert console.runtime.config.monitor("s1") is None


async def test_a_provisioned_monitor_is_read_only(console: Console) -> None:
    http = await signed_in_session(console.url, email_of(Role.EDITOR))
    before = console.runtime.config.monitor("api")
    async with http:
        async with http.get(console.url + "/console/monitors/api") as r:
            html = await r.text()
        assert "provisioned by" in html
        assert "Check now" in html
        assert "/console/monitors/api/edit" not in html
        assert "/delete" not in html
        async with http.get(console.url + "/console/monitors/nightly") as r:
            assert f"{console.url}/ping/" in await r.text()
        async with http.get(console.url + "/console/monitors/api/edit") as r:
            assert r.status == 409
            assert "provisioned by" in await r.text()
        csrf = await page_csrf(http, console.url + "/console/monitors/api")
        data = {"csrf": csrf, "kind": "http", "http.url": "http://127.0.0.1:10/", "action": "save"}
        status, body, _ = await _post(http, console.url + "/console/monitors/api/edit", data)
        assert status == 409
        assert "provisioned by" in body
        status, _, _ = await _post(http, console.url + "/console/monitors/api/delete", data)
        assert status == 409
    assert console.runtime.config.monitor("api") == before


async def test_an_editor_edits_checks_pauses_and_deletes_a_managed_monitor(
    console: Console,
) -> None:
    async with HttpTarget({"/ok": Response(200, b"fine")}) as target:
        body = {**MANAGED, "url": target.url("/ok"), "headers": {"Authorization": "Bearer s3"}}
        await _api(console, "POST", "/api/v1/monitors", body)
        http = await signed_in_session(console.url, email_of(Role.EDITOR))
        async with http:
            edit = console.url + "/console/monitors/shop/edit"
            async with http.get(edit) as r:
                html = await r.text()
            assert "Bearer s3" not in html  # masked as the API shows it
            csrf = await page_csrf(http, edit)
            form = monitor_form.values_of(
                (await _api(console, "GET", "/api/v1/monitors/shop"))["config"]
            ).values
            form.update(
                {"csrf": csrf, "name": "Shop front", "http.expect": "status == 200", "tags": "a b"}
            )
            data = {k: v for k, v in form.items() if isinstance(v, str)}
            data.update({"locations": "local", "action": "save", "http.follow_redirects": "on"})
            data.update({"http.verify_tls": "on", "enabled": "on"})
            status, text, location = await _post(http, edit, data)
            assert status == 303, text
            assert location == "/console/monitors/shop?done=saved"
            saved = console.runtime.config.monitor("shop")
            assert saved is not None
            assert saved.name == "Shop front"
            assert saved.tags == ["a", "b"]
            assert saved.headers == {"Authorization": "Bearer s3"}  # the masked value kept

            page = console.url + "/console/monitors/shop"
            status, text, _ = await _post(http, page + "/check", {"csrf": csrf})
            assert status == 200
            assert "Check results" in text
            assert target.paths().count("/ok") >= 1
            status, _, location = await _post(http, page + "/pause", {"csrf": csrf})
            assert status == 303
            assert console.runtime.pausing.is_paused("shop")
            status, text, _ = await _post(http, page + "/check", {"csrf": csrf})
            assert status == 409
            assert "paused" in text
            status, _, _ = await _post(http, page + "/resume", {"csrf": csrf})
            assert status == 303
            assert not console.runtime.pausing.is_paused("shop")
            status, text, _ = await _post(http, page + "/delete", {"csrf": csrf})
            assert status == 200
            assert "deleted" in text
    assert console.runtime.config.monitor("shop") is None


async def _hours_of_latency(console: Console, monitor: str) -> None:
    """Three hours of rollups: latencies 10..100 ms (p50 ≈ 50, p99 ≈ 100)."""
    runtime = console.runtime
    hour = runtime.clock.now_ms() // HOUR_MS * HOUR_MS
    rollups = []
    for back in (3, 2, 1):
        rollup = Rollup(monitor, "local", hour - back * HOUR_MS)
        for ms in range(10, 101):
            rollup.add(True, float(ms))
        rollups.append(rollup)
    async with runtime.db.begin() as conn:
        await save_rollups(runtime.db, conn, rollups)


SAMPLES: list[dict[str, Any]] = [
    {
        "id": "h",
        "kind": "http",
        "url": "https://example.com/x",
        "method": "POST",
        "headers": {"X-A": "1"},
        "body": "hi",
        "follow_redirects": False,
        "expect": ["status == 200", "latency < 300ms"],
        "interval": "30s",
        "locations": ["local"],
        "consensus": "any",
        "tags": ["t1"],
        "slo": {"latency_p99": "200ms"},
    },
    {"id": "t", "kind": "tcp", "host": "db", "port": 5432, "tls": True, "expect": ["latency < 1s"]},
    {
        "id": "j",
        "kind": "jsonrpc",
        "url": "https://mcp.example.com/",
        "method": "initialize",
        "params": {"a": [1, 2]},
        "expect": ["result.protocolVersion exists"],
    },
    {"id": "d", "kind": "dns", "host": "example.com", "record": "MX", "server": "1.1.1.1"},
    {
        "id": "s",
        "kind": "scenario",
        "timeout": "20s",
        "steps": [{"kind": "http", "url": "https://example.com/", "expect": ["status == 200"]}],
    },
    {"id": "b", "kind": "heartbeat", "period": "1d", "grace": "1h", "enabled": False},
    {
        "id": "m",
        "kind": "metric",
        "source": "json",
        "url": "https://example.com/m",
        "path": "json.rate",
        "expect": ["value >= 0.99"],
        "confirm": 3,
    },
]


@pytest.mark.parametrize("document", SAMPLES, ids=[d["kind"] for d in SAMPLES])
def test_the_form_holds_every_kind_and_builds_the_same_monitor(document: dict[str, Any]) -> None:
    monitor = monitor_from_document(document)
    form = monitor_form.values_of(monitor_document(monitor))
    built = monitor_form.build(form)
    assert not form.errors
    assert monitor_from_document(built.document) == monitor


@pytest.mark.slow
async def test_an_editor_creates_a_monitor_through_the_form(console: Console, browser: Any) -> None:
    async with HttpTarget({"/health": Response(200, b"ok")}) as target:
        page = await browser_sign_in(browser, console.url, Role.EDITOR)
        await page.goto(console.url + "/console/monitors/new")
        await assert_accessible(page)
        await page.select_option("#f-kind", "http")
        assert await page.is_visible("#f-http-url")
        assert not await page.is_visible("#f-tcp-host")  # JS shows the chosen kind only
        await page.fill("#f-id", "web")
        await page.fill("#f-name", "Web front")
        await page.fill("#f-http-url", target.url("/health"))
        await page.fill("#f-http-expect", "status == 200\nstatus === 2")
        await page.click("button.primary[value=save]")
        error = page.locator("#f-http-expect-error")
        await error.wait_for()
        assert "line 2" in await error.inner_text()
        expect_field = page.locator("#f-http-expect")
        assert await expect_field.get_attribute("aria-invalid") == "true"
        assert "f-http-expect-error" in (await expect_field.get_attribute("aria-describedby") or "")
        assert await page.input_value("#f-http-url") == target.url("/health")  # input kept
        assert console.runtime.config.monitor("web") is None  # nothing saved
        await page.emulate_media(color_scheme="dark")
        await assert_accessible(page)
        await page.emulate_media(color_scheme="light")

        await page.fill("#f-http-expect", "status == 200")
        await page.click("button[value=test]")
        result = page.locator(".test-result")
        await result.wait_for()
        assert "ok" in await result.inner_text()
        assert console.runtime.config.monitor("web") is None  # a test saves nothing

        await page.click("button.primary[value=save]")
        await page.wait_for_url(console.url + "/console/monitors/web?done=created")
        assert "Web front" in await page.locator("h1").inner_text()
        listed = await _api(console, "GET", "/api/v1/monitors")
        assert "web" in [m["id"] for m in listed["monitors"]]
        await _hours_of_latency(console, "web")
        await page.reload()
        assert await page.locator("svg.chart polyline").count() == 3
        await assert_accessible(page)
        await page.emulate_media(color_scheme="dark")
        await assert_accessible(page)
        await page.goto(console.url + "/console/monitors/web/edit")
        await assert_accessible(page)
        await page.context.close()
