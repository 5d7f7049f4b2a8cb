"""Subscribers: double opt-in by e-mail through a real SMTP server, webhooks, limits."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.receivers import HttpReceiver, SmtpReceiver, poll_until
from uptally.clock import SystemClock
from uptally.events import Event, EventKind
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store import outbox
from uptally.store import secrets as secret_store
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "subscriber-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def config(smtp_port: int, **subscribers: object) -> str:
    settings = ", ".join(f"{k}: {v}" for k, v in subscribers.items())
    return f"""
site: {{title: Acme, url: "https://status.acme.test"}}
components:
  - {{id: api, name: API}}
  - {{id: website, name: Website}}
notifications:
  retry: {{first: 20ms, max: 80ms}}
  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, username: mailer,
          password: {{secret: smtp-password}}, from: "Acme status <status@acme.test>"}}
  subscribers: {{allow_private_webhooks: true, {settings}}}
"""


class Site:
    def __init__(self, runtime: Runtime, http: aiohttp.ClientSession, base: str) -> None:
        self.runtime = runtime
        self.http = http
        self.base = base

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.post(self.base + path, **kwargs) as response:
            kind = response.headers.get("content-type", "")
            body = await response.json() if "json" in kind else await response.text()
            return response.status, body

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path) as response:
            return response.status, await response.text()

    async def incident(self, component: str, title: str) -> str:
        body = {"title": title, "components": [component], "message": f"{title}: investigating"}
        status, made = await self.post("/api/v1/incidents", json=body, headers=AUTH)
        assert status == 201, made
        return str(made["id"])

    async def fanned_out(self) -> None:
        """Wait until the dispatcher has routed every event written so far."""
        async with self.runtime.db.connect() as conn:
            events = await outbox.list_events(conn, limit=100_000)
        newest = events[-1].seq if events else 0

        async def done() -> bool:
            async with self.runtime.db.connect() as conn:
                row = (
                    await conn.exec_driver_sql(
                        "SELECT seq FROM outbox_cursors WHERE name = 'dispatch'"
                    )
                ).first()
            return row is not None and row[0] >= newest

        await poll_until(done)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpReceiver]:
    async with SmtpReceiver("mailer", "smtp-pass-from-the-store") as running:
        yield running


async def open_site(db_url: str, text: str) -> Site:
    ring = Keyring(Key.from_bytes(os.urandom(32)))
    db = Database(db_url)
    await db.migrate()
    async with db.begin() as conn:
        await secret_store.put_secret(
            db, conn, ring, "smtp-password", "smtp-pass-from-the-store", 1
        )
    await db.close()
    runtime = Runtime(
        config_from(text),
        Database(db_url),
        clock=SystemClock(),
        metrics=Metrics(),
        run_probe=False,
        keyring=ring,
    )
    await runtime.start()
    # Unsafe: keep cookies of an IP address (the test server), as a browser does.
    return Site(runtime, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)), "")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests of behaviour that does not depend on the database (the rest run on both)."""
    return f"sqlite+aiosqlite:///{tmp_path}/uptally.db"


@pytest.fixture
async def site(db_url: str, smtp: SmtpReceiver) -> AsyncIterator[Site]:
    async with _site(db_url, smtp) as opened:
        yield opened


@pytest.fixture
async def sqlite_site(sqlite_url: str, smtp: SmtpReceiver) -> AsyncIterator[Site]:
    async with _site(sqlite_url, smtp) as opened:
        yield opened


@contextlib.asynccontextmanager
async def _site(db_url: str, smtp: SmtpReceiver) -> AsyncIterator[Site]:
    opened = await open_site(db_url, config(smtp.port))
    try:
        async with serve_app(create_app(opened.runtime, TOKEN)) as base:
            opened.base = base
            yield opened
    finally:
        await opened.http.close()
        await opened.runtime.stop()


def part_of(message: Message, subtype: str) -> str:
    """The text/<subtype> part of a mail."""
    [part] = [p for p in message.walk() if p.get_content_type() == f"text/{subtype}"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(part.get_content_charset() or "utf-8")


def text_of(message: Message) -> str:
    return part_of(message, "plain")


def local(url: str) -> str:
    """A link from a mail (on https://status.acme.test) as a path for the test server."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_email_is_double_opt_in_with_one_click_unsubscribe(
    site: Site, smtp: SmtpReceiver
) -> None:
    status, body = await site.post(
        "/subscribe", json={"email": "Ann@Example.COM", "components": ["api"]}
    )
    assert (status, body) == (202, {"status": "confirmation_sent"})
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    confirmation = smtp.messages[0]
    assert confirmation["To"] == "Ann@example.com"
    assert confirmation["Subject"] == "[Acme] Confirm your subscription"
    [link] = re.findall(r"https://status\.acme\.test/subscribe/confirm\S+", text_of(confirmation))
    await site.incident("api", "Before confirming")
    await site.fanned_out()
    assert len(smtp.messages) == 1  # nothing before confirmation
    status, page = await site.get(local(link))
    assert status == 200
    assert "Confirm subscription" in page  # a GET (link scanners) changes nothing
    status, page = await site.post(local(link))
    assert status == 200
    assert "Subscribed" in page
    await site.incident("website", "Not about the API")
    await site.incident("api", "API errors")
    await smtp.wait_for(lambda: len(smtp.messages) == 2)
    notice = smtp.messages[1]
    assert notice["Subject"] == "[Acme] Incident: API errors"
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = notice["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("https://status.acme.test/subscribe/unsubscribe?")
    body_text = text_of(notice)
    assert "API errors: investigating" in body_text
    assert "https://status.acme.test/incidents/" in body_text
    assert unsubscribe in body_text
    status, _ = await site.post(
        local(unsubscribe), data={"List-Unsubscribe": "One-Click"}
    )  # what mail clients send (RFC 8058)
    assert status == 200
    await site.incident("api", "After unsubscribing")
    await site.fanned_out()
    assert len(smtp.messages) == 2
    async with site.http.get(f"{site.base}/api/v1/subscribers", headers=AUTH) as response:
        subscribers = (await response.json())["subscribers"]
    assert [(s["address"], s["state"]) for s in subscribers] == [
        ("Ann@example.com", "unsubscribed")
    ]


async def test_mail_is_plain_and_html_with_message_id_and_one_click_unsubscribe(
    sqlite_site: Site, smtp: SmtpReceiver
) -> None:
    site = sqlite_site
    await site.post("/subscribe", json={"email": "eve@example.com", "components": ["api"]})
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    confirmation = smtp.messages[0]
    assert confirmation.get_content_type() == "multipart/alternative"
    assert "/subscribe/confirm?" in part_of(confirmation, "html")
    for mail in [confirmation]:
        assert mail["Message-ID"].endswith("@status.acme.test>")
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["List-Unsubscribe"].startswith("<https://status.acme.test/subscribe/unsub")
        assert mail["List-Unsubscribe"].strip("<>") in text_of(mail)
    [link] = re.findall(r"https://status\.acme\.test/subscribe/confirm\S+", text_of(confirmation))
    status, _ = await site.post(local(link))
    assert status == 200
    body = {
        "title": "Slow API",
        "components": ["api"],
        "message": "We are **investigating** [slow answers](https://acme.test/x) <b>now</b>.",
    }
    status, _ = await site.post("/api/v1/incidents", json=body, headers=AUTH)
    assert status == 201
    await smtp.wait_for(lambda: len(smtp.messages) == 2)
    notice = smtp.messages[1]
    assert notice.get_content_type() == "multipart/alternative"
    assert notice["Message-ID"].endswith("@status.acme.test>")
    assert notice["Message-ID"] != confirmation["Message-ID"]
    plain, html = text_of(notice), part_of(notice, "html")
    assert "We are **investigating** [slow answers](https://acme.test/x)" in plain
    assert "<strong>investigating</strong>" in html
    assert 'href="https://acme.test/x"' in html
    assert "<b>" not in html  # raw HTML in Markdown is escaped, not passed
    unsubscribe = notice["List-Unsubscribe"].strip("<>")
    assert unsubscribe in plain
    assert f'href="{unsubscribe.replace("&", "&amp;")}"' in html
    status, page = await site.get(local(unsubscribe))  # the link in the footer: one button
    assert status == 200
    assert page.count("<form") == 1
    assert page.count("<button") == 1
    status, _ = await site.post(local(unsubscribe), data={"List-Unsubscribe": "One-Click"})
    assert status == 200
    async with site.http.get(f"{site.base}/api/v1/subscribers", headers=AUTH) as response:
        subscribers = (await response.json())["subscribers"]
    assert [(s["address"], s["state"]) for s in subscribers] == [
        ("eve@example.com", "unsubscribed")
    ]


async def test_the_confirmation_mail_unsubscribes_in_one_click_too(
    sqlite_site: Site, smtp: SmtpReceiver
) -> None:
    site = sqlite_site
    await site.post("/subscribe", json={"email": "fay@example.com", "components": ["api"]})
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    unsubscribe = smtp.messages[0]["List-Unsubscribe"].strip("<>")
    status, _ = await site.post(local(unsubscribe), data={"List-Unsubscribe": "One-Click"})
    assert status == 200
    async with site.http.get(f"{site.base}/api/v1/subscribers", headers=AUTH) as response:
        subscribers = (await response.json())["subscribers"]
    assert [(s["address"], s["state"]) for s in subscribers] == [
        ("fay@example.com", "unsubscribed")
    ]


async def test_a_forged_or_altered_link_does_nothing(sqlite_site: Site, smtp: SmtpReceiver) -> None:
    site = sqlite_site
    await site.post("/subscribe", json={"email": "bob@example.com", "components": ["api"]})
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    [link] = re.findall(
        r"https://status\.acme\.test/subscribe/confirm\S+", text_of(smtp.messages[0])
    )
    altered = local(link).replace("c=api", "c=api%2Cwebsite")
    status, _ = await site.post(altered)
    assert status == 403
    status, _ = await site.post("/subscribe/unsubscribe?s=x&t=forged")
    assert status == 403


async def test_the_form_works_without_javascript_and_needs_its_token(
    sqlite_site: Site, smtp: SmtpReceiver
) -> None:
    site = sqlite_site
    status, page = await site.get("/subscribe")
    assert status == 200
    assert 'name="components" value="api"' in page
    [token] = re.findall(r'name="token" value="([^"]+)"', page)[:1]
    status, answer = await site.post(
        "/subscribe", data={"token": token, "email": "cy@example.com", "components": "website"}
    )
    assert status == 202
    assert "Check your inbox" in answer
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    assert "about Website" in text_of(smtp.messages[0])
    status, answer = await site.post("/subscribe", data={"token": "stale", "email": "d@e.fg"})
    assert status == 403


async def test_webhook_subscribers_get_incident_and_maintenance_events_in_the_webhook_format(
    site: Site,
) -> None:
    async with HttpReceiver() as receiver:
        status, body = await site.post("/subscribe", json={"webhook": f"{receiver.url}/status"})
        assert status == 201, body
        assert body["status"] == "subscribed"
        assert "/subscribe/unsubscribe?" in body["unsubscribe_url"]
        incident = await site.incident("api", "API slow")
        async with site.runtime.db.begin() as conn:
            window = {"title": "Database upgrade", "components": ["website"], "window": "w1"}
            await outbox.append_events(
                conn,
                [
                    Event(EventKind.MAINTENANCE_STARTED, 1, "w1", window),
                    Event(EventKind.MONITOR_DOWN, 2, "api", {"monitor": "api"}),
                ],
                SystemClock().now_ms(),
            )
        site.runtime.notifier.wake()
        await receiver.wait_for(lambda: len(receiver.ok()) == 2)
        await site.fanned_out()
        first, second = (r.json() for r in receiver.ok())
        assert (first["event"], first["data"]["incident"]) == ("incident.created", incident)
        assert set(first) == {"id", "event", "at", "data"}
        assert second["event"] == "maintenance.started"
        assert receiver.ok()[0].headers["X-Uptally-Event"] == "incident.created"
        status, _ = await site.post(local(body["unsubscribe_url"]))
        assert status == 200
        await site.incident("api", "Again")
        await site.fanned_out()
        assert len(receiver.requests) == 2


async def test_subscriptions_are_limited_per_address_and_per_client(
    sqlite_url: str, smtp: SmtpReceiver
) -> None:
    opened = await open_site(sqlite_url, config(smtp.port, per_ip=4, per_address=2))
    try:
        async with serve_app(create_app(opened.runtime, TOKEN)) as base:
            opened.base = base
            codes = [
                (await opened.post("/subscribe", json={"email": "e@example.com"}))[0]
                for _ in range(3)
            ]
            assert codes == [202, 202, 429]  # the third mail to one address in the window
            status, _ = await opened.post("/subscribe", json={"email": "f@example.com"})
            assert status == 202
            async with opened.http.post(
                base + "/subscribe", json={"email": "g@example.com"}
            ) as response:
                assert response.status == 429  # the fifth request from this client
                assert int(response.headers["Retry-After"]) > 0
    finally:
        await opened.http.close()
        await opened.runtime.stop()


async def test_private_webhooks_are_refused_unless_allowed(db_url: str, smtp: SmtpReceiver) -> None:
    opened = await open_site(
        db_url,
        config(smtp.port).replace("allow_private_webhooks: true", "allow_private_webhooks: false"),
    )
    try:
        async with serve_app(create_app(opened.runtime, TOKEN)) as base:
            opened.base = base
            status, body = await opened.post(
                "/subscribe", json={"webhook": "http://127.0.0.1:9/hook"}
            )
            assert status == 422
            assert "not a public address" in body["error"]["message"]
    finally:
        await opened.http.close()
        await opened.runtime.stop()


async def test_a_mail_server_outage_delays_mail_until_it_is_back(
    site: Site, smtp: SmtpReceiver
) -> None:
    smtp.refuse = 451  # temporary failure
    await site.post("/subscribe", json={"email": "h@example.com"})

    async def tried() -> bool:
        async with site.runtime.db.connect() as conn:
            row = (
                await conn.exec_driver_sql(
                    "SELECT count(*) FROM delivery_attempts WHERE outcome = 'transient'"
                )
            ).first()
        return bool(row and row[0] >= 2)

    await poll_until(tried)
    smtp.refuse = None
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    assert smtp.messages[0]["X-Uptally-Delivery"]


async def subscribers_of(site: Site) -> list[dict[str, Any]]:
    async with site.http.get(f"{site.base}/api/v1/subscribers", headers=AUTH) as response:
        return list((await response.json())["subscribers"])


async def test_asking_again_for_a_known_webhook_is_confirmed_through_the_webhook(
    sqlite_site: Site,
) -> None:
    site = sqlite_site
    async with HttpReceiver() as receiver:
        hook = f"{receiver.url}/status"
        status, first = await site.post("/subscribe", json={"webhook": hook, "components": ["api"]})
        assert status == 201
        # Someone else asks for the same webhook: they learn nothing and change nothing.
        status, again = await site.post(
            "/subscribe", json={"webhook": hook, "components": ["website"]}
        )
        assert (status, again) == (202, {"status": "confirmation_sent"})
        [known] = await subscribers_of(site)
        assert (known["components"], known["state"]) == (["api"], "active")
        await receiver.wait_for(lambda: len(receiver.ok()) == 1)
        asked = receiver.ok()[0].json()
        assert asked["event"] == "subscriber.confirm"
        assert asked["data"]["components"] == ["website"]
        assert asked["data"]["unsubscribe_url"] == first["unsubscribe_url"]
        status, _ = await site.post(local(asked["data"]["confirm_url"]))  # the owner confirms
        assert status == 200
        [changed] = await subscribers_of(site)
        assert (changed["components"], changed["state"]) == (["website"], "active")


async def test_unsubscribing_voids_the_confirmation_links_sent_before(
    sqlite_site: Site, smtp: SmtpReceiver
) -> None:
    site = sqlite_site
    await site.post("/subscribe", json={"email": "gil@example.com", "components": ["api"]})
    await smtp.wait_for(lambda: len(smtp.messages) == 1)
    [old] = re.findall(
        r"https://status\.acme\.test/subscribe/confirm\S+", text_of(smtp.messages[0])
    )
    assert (await site.post(local(old)))[0] == 200
    unsubscribe = smtp.messages[0]["List-Unsubscribe"].strip("<>")
    assert (await site.post(local(unsubscribe)))[0] == 200
    status, page = await site.post(local(old))  # the old link, followed again
    assert status == 410, page
    assert [s["state"] for s in await subscribers_of(site)] == ["unsubscribed"]
    # Asking again sends a new link; the old one stays void, the new one works.
    await site.post("/subscribe", json={"email": "gil@example.com", "components": ["website"]})
    await smtp.wait_for(lambda: len(smtp.messages) == 2)
    [new] = re.findall(
        r"https://status\.acme\.test/subscribe/confirm\S+", text_of(smtp.messages[1])
    )
    assert (await site.post(local(old)))[0] == 410
    assert (await site.post(local(new)))[0] == 200
    [back] = await subscribers_of(site)
    assert (back["state"], back["components"]) == ("active", ["website"])


async def test_the_form_token_works_only_with_the_cookie_of_its_client(
    sqlite_site: Site, smtp: SmtpReceiver
) -> None:
    site = sqlite_site
    status, page = await site.get("/subscribe")
    assert status == 200
    [token] = re.findall(r'name="token" value="([^"]+)"', page)[:1]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as other:
        # A token scraped from another client's form is refused, with or without a cookie.
        form = {"token": token, "email": "mo@example.com"}
        async with other.post(f"{site.base}/subscribe", data=form) as response:
            assert response.status == 403
        async with other.get(f"{site.base}/subscribe") as response:
            [own] = re.findall(r'name="token" value="([^"]+)"', await response.text())[:1]
            assert "httponly" in response.headers["Set-Cookie"].lower()
        assert own != token
        async with other.post(f"{site.base}/subscribe", data=form) as response:
            assert response.status == 403
        async with other.post(f"{site.base}/subscribe", data={**form, "token": own}) as response:
            assert response.status == 202
    status, _ = await site.post("/subscribe", data={"token": token, "email": "no@example.com"})
    assert status == 202  # the first client's own token still works for it


async def issue(site: Site, name: str, scope: str) -> str:
    body = {"name": name, "scopes": [scope]}
    status, made = await site.post("/api/v1/tokens", json=body, headers=AUTH)
    assert status == 201, made
    return str(made["token"])


async def test_subscriber_deletion_needs_admin_and_the_audit_log_hides_people_below_it(
    sqlite_site: Site,
) -> None:
    site = sqlite_site
    async with HttpReceiver() as receiver:
        status, made = await site.post("/subscribe", json={"webhook": f"{receiver.url}/h"})
        assert status == 201
    read, write = await issue(site, "dash", "read"), await issue(site, "ops", "write")
    async with site.http.delete(
        f"{site.base}/api/v1/subscribers/{made['id']}", headers={"Authorization": f"Bearer {write}"}
    ) as response:
        assert response.status == 403
    for token, redacted in ((read, True), (write, True), (TOKEN, False)):
        async with site.http.get(
            f"{site.base}/api/v1/audit?action=subscriber.*",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            text = await response.text()
        assert response.status == 200
        assert (made["id"] in text, "127.0.0.1" in text) == (not redacted, not redacted), text
        assert json.loads(text)["redacted"] is redacted
    async with site.http.delete(
        f"{site.base}/api/v1/subscribers/{made['id']}", headers=AUTH
    ) as response:
        assert response.status == 204


async def test_public_routes_answer_odd_input_with_4xx(sqlite_site: Site) -> None:
    site = sqlite_site
    assert (await site.get("/ping/anything/²"))[0] == 404
    assert (await site.get("/subscribe/confirm?s=a&e=²&c=&t=x"))[0] == 403
    assert (await site.post("/subscribe/confirm?s=a&e=²&c=&t=x"))[0] == 403
    status, body = await site.post("/subscribe", json={"webhook": "http://[::1/"})
    assert status == 422, body
