"""Several status pages from one instance: each with its components, title and path; private
pages behind tokens (Bearer or Basic); config errors, reloads and the static export."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import feedparser
import pytest

from tests.conftest import serve_app
from uptally.clock import FakeClock
from uptally.config import ConfigError, load_config, parse_config
from uptally.config.schema import RESERVED_PATHS
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.statuspage.site import StatusSite
from uptally.store.database import Database
from uptally.web import ping
from uptally.web.app import create_app

BOOT = "pages-admin-token"
CONFIG = """\
site: {title: Acme, timezone: Europe/Berlin, url: "https://status.acme.test"}
monitors:
  - {id: api, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: web, kind: http, url: "http://127.0.0.1:9/", confirm: 1}
  - {id: db, kind: tcp, host: 127.0.0.1, port: 9, confirm: 1}
components:
  - {id: api, name: Public API, group: Platform, monitors: [api]}
  - {id: web, name: Website, group: Platform, monitors: [web]}
  - {id: db, name: Database, group: Internals, monitors: [db]}
maintenance:
  - {id: db-upgrade, title: Database upgrade, start: 2026-01-02T10:00, end: 2026-01-02T12:00,
     monitors: [db]}
status_pages:
  - {id: customers, path: /customers, title: Acme for customers, components: [api, web]}
  - id: internal
    path: /internal
    title: Acme internal
    description: For the people running Acme
    components: [db]
    private: true
"""
PRIVATE = "private, no-store"
CHALLENGE = 'Basic realm="Acme internal"'


@dataclass
class Site:
    runtime: Runtime
    http: aiohttp.ClientSession
    url: str
    incidents: dict[str, str]  # component -> id of the incident affecting it
    path: Path  # the config file

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        async with self.http.get(self.url + path, headers=headers, allow_redirects=False) as r:
            return Answer(r.status, dict(r.headers), await r.text())

    async def token(self, *scopes: str) -> str:
        body = {"name": "-".join(scopes).replace(":", "-"), "scopes": list(scopes)}
        async with self.http.post(
            self.url + "/api/v1/tokens", json=body, headers=bearer(BOOT)
        ) as response:
            assert response.status == 201, await response.text()
            return str((await response.json())["token"])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
async def site(db_url: str, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Site]:
    path = tmp_path / "uptally.yaml"
    path.write_text(CONFIG)
    runtime = Runtime(
        load_config(path), Database(db_url), clock=clock, metrics=Metrics(), run_probe=False
    )
    runtime.config_path = path
    await runtime.start()
    for n, (monitor, ok) in enumerate([("api", True), ("web", True), ("db", True), ("db", False)]):
        error = None if ok else "timeout"
        runtime.ingest.submit(
            Result(f"p{n}", monitor, "local", clock.now_ms() + n, ok, 20.0, error, "")
        )
    await runtime.ingest.drained()
    try:
        async with serve_app(create_app(runtime, BOOT)) as url, aiohttp.ClientSession() as http:
            incidents = {}
            for component, title, impact in [
                ("api", "Slow API responses", "minor"),
                ("db", "Database failover", "major"),
            ]:
                body = {"title": title, "impact": impact, "components": [component]}
                async with http.post(
                    url + "/api/v1/incidents", json=body, headers=bearer(BOOT)
                ) as response:
                    assert response.status == 201, await response.text()
                    incidents[component] = (await response.json())["id"]
            yield Site(runtime, http, url, incidents, path)
    finally:
        await runtime.stop()


# -- configuration -----------------------------------------------------------------------------

BASE = """\
monitors: [{id: api, kind: http, url: "http://127.0.0.1:9/"}]
components: [{id: api, monitors: [api]}]
status_pages:
"""


def errors(pages: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(BASE + pages, "pages.yaml")
    return raised.value.lines()


def test_a_page_naming_an_unknown_component_is_reported_on_its_line() -> None:
    assert errors("""\
  - id: ops
    path: /ops
    title: Ops
    components: [api, ghost]
""") == ["pages.yaml:7: status_pages[0].components[1]: unknown component 'ghost'"]


def test_a_page_may_not_take_a_path_of_uptally_itself() -> None:
    for reserved in ("/api", "/badge", "/history", "/metrics", "/subscribe", "/static"):
        [line] = errors(f"  - {{id: p, path: {reserved}, title: P, components: [api]}}\n")
        assert line.startswith(f"pages.yaml:4: status_pages[0].path: path '{reserved}' is taken")


def test_page_ids_and_paths_are_unique_and_paths_are_one_plain_segment() -> None:
    assert errors("""\
  - {id: ops, path: /ops, title: Ops, components: [api]}
  - {id: ops, path: /ops, title: Ops again, components: [api]}
  - {id: x, path: /Ops/eu, title: X, components: []}
""") == [
        "pages.yaml:5: status_pages[1].id: duplicate id 'ops' (first used in status_pages[0])",
        "pages.yaml:5: status_pages[1].path: duplicate path '/ops' (first used in status_pages[0])",
        "pages.yaml:6: status_pages[2].components: a status page shows at least one component",
        "pages.yaml:6: status_pages[2].path: path '/Ops/eu' must be one segment of lowercase "
        "letters, digits and '-' after a slash, such as /internal",
    ]


def test_reserved_paths_cover_every_top_level_path_the_app_serves(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    runtime = Runtime(config, Database(f"sqlite+aiosqlite:///{tmp_path}/unused.db"))
    app = create_app(runtime)  # routes only: nothing is started
    pages = {p.path for p in config.status_pages}
    served = {ping.PREFIX.strip("/")}
    try:  # FastAPI keeps included routers as they are; this flattens them
        from fastapi.routing import iter_route_contexts

        routes: Any = list(iter_route_contexts(app.api.routes))
    except ImportError:  # older FastAPI: routes are flat already
        routes = app.api.routes
    assert len(routes) > 40
    for route in routes:
        path: str | None = getattr(route, "path", "")
        if path is None:
            continue  # the route of the pages of `status_pages`: no fixed path
        first = "/" + path.split("/")[1] if path.count("/") else path
        if first not in pages and first != "/":
            served.add(first.lstrip("/"))
    assert served <= RESERVED_PATHS, served - RESERVED_PATHS


# -- a public page of some components ----------------------------------------------------------


async def test_a_page_shows_only_its_components_incidents_and_maintenance_the_main_page_all(
    site: Site,
) -> None:
    page = await site.get("/customers/")
    assert page.status == 200
    assert page.headers["Cache-Control"].startswith("public, max-age=30")
    html = page.text
    assert "<title>Acme for customers</title>" in html
    assert "Public API" in html
    assert "Website" in html
    assert "Database" not in html
    assert "Slow API responses" in html
    assert "Database failover" not in html
    # Every link of the page stays on the page, but for what the site has once (the form).
    links = set(re.findall(r'href="([^"#]*)"', html)) | set(re.findall(r'src="([^"]*)"', html))
    assert "/customers/history" in links
    assert f"/customers/incidents/{site.incidents['api']}" in links
    assert {"/customers/feed.atom", "/customers/feed.rss", "/customers/"} <= links
    assert {"/customers/api/v2/summary.json", "/static/local-times.js"} <= links
    assert "/subscribe" in links
    assert not {
        link for link in links if not link.startswith(("/customers/", "/static/", "/subscribe"))
    }

    summary = (await site.get("/customers/api/v2/summary.json")).json()
    assert summary["page"]["url"] == "https://status.acme.test/customers"
    assert summary["page"]["name"] == "Acme for customers"
    assert [c["id"] for c in summary["components"]] == ["group-platform", "api", "web"]
    assert [i["name"] for i in summary["incidents"]] == ["Slow API responses"]
    assert summary["incidents"][0]["shortlink"].startswith("https://status.acme.test/customers/")
    assert summary["scheduled_maintenances"] == []
    assert summary["status"]["indicator"] == "minor"  # its own incident; the database is not its
    # The open incident names the API without a status: its minor impact makes it degraded.
    assert {c["id"]: c["status"] for c in summary["components"]} == {
        "group-platform": "degraded_performance",
        "api": "degraded_performance",
        "web": "operational",
    }

    history = await site.get("/customers/history")
    assert "Slow API responses" in history.text
    assert "Database failover" not in history.text
    assert (await site.get(f"/customers/incidents/{site.incidents['api']}")).status == 200
    assert (await site.get(f"/customers/incidents/{site.incidents['db']}")).status == 404
    assert (await site.get("/customers/badge/api/status.svg")).status == 200
    assert (await site.get("/customers/badge/db/status.svg")).status == 404
    feed = feedparser.parse((await site.get("/customers/feed.atom")).text)
    assert feed.feed.title == "Acme for customers status"
    assert [e.link for e in feed.entries] == [
        f"https://status.acme.test/customers/incidents/{site.incidents['api']}"
    ]
    redirect = await site.get("/customers?x=1")
    assert (redirect.status, redirect.headers["Location"]) == (308, "/customers/?x=1")

    # The main page, with a cache of its own, still shows everything.
    html = (await site.get("/")).text
    for text in ("Public API", "Website", "Database", "Slow API responses", "Database failover"):
        assert text in html
    assert 'href="/history"' in html
    assert "/customers" not in html
    summary = (await site.get("/api/v2/summary.json")).json()
    assert summary["page"]["url"] == "https://status.acme.test"
    assert [c["id"] for c in summary["components"] if not c["group"]] == ["api", "web", "db"]
    assert [w["name"] for w in summary["scheduled_maintenances"]] == ["Database upgrade"]
    assert summary["status"]["indicator"] == "major"


# -- a private page ----------------------------------------------------------------------------

PRIVATE_PATHS = [
    "/internal/",
    "/internal/history",
    "/internal/api/v2/summary.json",
    "/internal/api/v2/scheduled-maintenances.json",
    "/internal/feed.atom",
    "/internal/badge/db/status.svg",
    "/internal",
]


async def test_a_private_page_asks_browsers_for_credentials(site: Site) -> None:
    wrong = bearer("ut_0123456789ab_" + "B" * 43)
    for path, headers in [
        *((path, None) for path in PRIVATE_PATHS),
        (f"/internal/incidents/{site.incidents['db']}", None),
        ("/internal/", wrong),  # failed attempts count towards the rate limit: just one
    ]:
        answer = await site.get(path, headers)
        assert answer.status == 401, path
        assert answer.headers["WWW-Authenticate"] == CHALLENGE
        assert answer.headers["Cache-Control"] == PRIVATE
        assert answer.json()["error"]["code"] == "unauthorized"
    assert site.runtime.metrics.auth_failures.labels("unknown")._value.get() == 1


async def test_a_private_page_opens_with_a_token_of_its_scope_by_bearer_or_basic(
    site: Site,
) -> None:
    own = await site.token("page:internal")
    reader = await site.token("read")
    for headers in (bearer(own), basic("anyone", own), basic("", reader), bearer(reader)):
        for path in PRIVATE_PATHS[:-1]:
            answer = await site.get(path, headers)
            assert answer.status == 200, (path, answer.text)
            assert answer.headers["Cache-Control"] == PRIVATE
        page = await site.get("/internal/", headers)
        assert page.headers["Cache-Control"] == PRIVATE
    html = page.text
    assert "<title>Acme internal</title>" in html
    assert "For the people running Acme" in html
    assert "Database failover" in html
    assert "Public API" not in html
    assert "Slow API responses" not in html
    assert f'href="/internal/incidents/{site.incidents["db"]}"' in html
    summary = (await site.get("/internal/api/v2/summary.json", bearer(own))).json()
    assert summary["page"]["url"] == "https://status.acme.test/internal"
    assert [c["id"] for c in summary["components"]] == ["group-internals", "db"]
    assert [w["name"] for w in summary["scheduled_maintenances"]] == ["Database upgrade"]
    redirect = await site.get("/internal", bearer(own))
    assert (redirect.status, redirect.headers["Location"]) == (308, "/internal/")
    # Served once with a token, never again without one (no fast path, no shared cache).
    assert (await site.get("/internal/")).status == 401
    assert (await site.get("/internal/api/v2/summary.json")).status == 401

    other = await site.token("page:customers")
    for headers in (bearer(other), basic("x", other)):
        answer = await site.get("/internal/", headers)
        assert answer.status == 403
        assert answer.headers["Cache-Control"] == PRIVATE
        assert answer.json()["error"]["message"] == "this token lacks the page:internal scope"
    # Basic credentials are for private pages only; the admin API keeps to bearer tokens.
    assert (await site.get("/api/v1/monitors", basic("x", reader))).status == 401
    assert (await site.get("/internal/", {"Authorization": "Basic %%%"})).status == 401


# -- reloads and the static export -------------------------------------------------------------


async def test_a_reload_retitles_a_page_and_moves_it(site: Site) -> None:
    own = await site.token("page:internal")
    assert "<title>Acme internal</title>" in (await site.get("/internal/", bearer(own))).text
    site.path.write_text(CONFIG.replace("title: Acme internal", "title: Acme staff"))
    async with site.http.post(site.url + "/api/v1/config/reload", headers=bearer(BOOT)) as response:
        assert response.status == 200
        assert (await response.json())["changes"] == {"status_pages": {"changed": ["internal"]}}
    assert "<title>Acme staff</title>" in (await site.get("/internal/", bearer(own))).text
    refused = await site.get("/internal/")
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="Acme staff"'

    site.path.write_text(CONFIG.replace("path: /internal", "path: /staff"))
    async with site.http.post(site.url + "/api/v1/config/reload", headers=bearer(BOOT)) as response:
        assert response.status == 200, await response.text()
    assert "<title>Acme internal</title>" in (await site.get("/staff/", bearer(own))).text
    assert (await site.get("/staff/")).status == 401
    assert (await site.get("/internal/", bearer(own))).status == 404


async def test_a_public_page_exports_alone(site: Site, tmp_path: Path) -> None:
    exported = StatusSite(site.runtime, page="customers")
    written = await exported.export(tmp_path / "out")
    files = {str(p.relative_to(tmp_path / "out")) for p in written}
    assert {"index.html", "history.html", "api/v2/summary.json", "badge/api/status.svg"} <= files
    assert f"incidents/{site.incidents['api']}.html" in files
    assert f"incidents/{site.incidents['db']}.html" not in files
    assert "badge/db/status.svg" not in files
    index = (tmp_path / "out" / "index.html").read_text()
    assert "Acme for customers" in index
    assert "Database" not in index
    assert 'href="/' not in index
    summary = json.loads((tmp_path / "out" / "api/v2/summary.json").read_text())
    assert summary["page"]["url"] == "https://status.acme.test/customers"


def test_export_site_refuses_a_private_or_unknown_page(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from uptally.cli import app

    config = tmp_path / "uptally.yaml"
    config.write_text(CONFIG)
    base = ["export-site", "--config", str(config), "--out", str(tmp_path / "out")]
    private = CliRunner().invoke(app, [*base, "--page", "internal"], env={"COLUMNS": "200"})
    assert private.exit_code == 2
    assert "status page 'internal' is private" in private.output
    unknown = CliRunner().invoke(app, [*base, "--page", "nope"], env={"COLUMNS": "200"})
    assert unknown.exit_code == 2
    assert "no status page 'nope' (status_pages: customers, internal)" in unknown.output
    assert not (tmp_path / "out").exists()
