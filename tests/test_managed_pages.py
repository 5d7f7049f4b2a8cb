"""Status pages managed at runtime: made, moved, made private and deleted through the admin API
and served (or not) at their path at once, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.audit.log import AuditFilter, list_entries
from uptally.clock import SystemClock
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "adm-Pq8Zt3Lw6Vx1Nr5Ks9Hb"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FILE = """
site: {title: Pages}
monitors:
  - {id: filed, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h}
components:
  - {id: platform, name: Platform, monitors: [filed]}
status_pages:
  - {id: filed-page, path: /filed, title: Filed page, components: [platform]}
"""


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(
            method, f"{self.base}{path}", json=body, headers=AUTH
        ) as response:
            return response.status, (await response.json() if response.status != 204 else None)

    async def page(self, path: str, token: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(
            f"{self.base}{path}", headers=headers, allow_redirects=False
        ) as response:
            return response.status, await response.text()


@pytest.fixture
async def hub(db_url: str) -> AsyncIterator[tuple[Client, Runtime]]:
    runtime = Runtime(config_from(FILE), Database(db_url), clock=SystemClock(), metrics=Metrics())
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield Client(session, url), runtime
    await runtime.stop()


async def test_a_page_made_moved_and_deleted_through_the_api_is_served_at_once(
    hub: tuple[Client, Runtime],
) -> None:
    api, runtime = hub
    assert (await api.page("/ops/"))[0] == 404
    body = {"id": "ops", "path": "/ops", "title": "Operations", "components": ["platform"]}
    status, made = await api.call("POST", "/api/v1/status-pages", body)
    assert status == 201, made
    assert (made["source"], made["version"], made["path"]) == ("api", 1, "/ops")
    for _ in range(3):  # the later ones may come from the fast path's cache
        status, html = await api.page("/ops/")
        assert status == 200
        assert "<title>Operations</title>" in html
        assert "Platform" in html
    assert (await api.page("/ops/api/v2/summary.json"))[0] == 200
    assert (await api.page("/ops"))[0] == 308

    status, moved = await api.call("PATCH", "/api/v1/status-pages/ops", {"path": "/team"})
    assert (status, moved["version"]) == (200, 2), moved
    assert (await api.page("/team/"))[0] == 200
    assert (await api.page("/ops/"))[0] == 404

    status, listed = await api.call("GET", "/api/v1/status-pages")
    assert [(p["id"], p["source"], p["provisioned_by"]) for p in listed["status_pages"]] == [
        ("filed-page", "config", "test.yaml:8"),
        ("ops", "api", None),
    ]
    assert (await api.call("DELETE", "/api/v1/status-pages/ops"))[0] == 204
    for path in ("/team/", "/team/api/v2/summary.json", "/team"):
        assert (await api.page(path))[0] == 404
    assert (await api.call("GET", "/api/v1/status-pages/ops"))[0] == 404
    assert (await api.page("/filed/"))[0] == 200  # the file's page is untouched

    async with runtime.db.connect() as conn:
        entries = await list_entries(conn, AuditFilter(target="status_page:ops"))
    actions = sorted(e.action for e in entries)
    assert actions == ["status_page.created", "status_page.deleted", "status_page.updated"]
    updated = next(e for e in entries if e.action == "status_page.updated")
    assert updated.details["changes"] == {"/path": {"before": "/ops", "after": "/team"}}


async def test_a_private_page_asks_for_a_token_from_the_moment_it_is_made_private(
    hub: tuple[Client, Runtime],
) -> None:
    api, _ = hub
    body = {"id": "staff", "path": "/staff", "title": "Staff", "components": ["platform"]}
    assert (await api.call("POST", "/api/v1/status-pages", body))[0] == 201
    assert (await api.page("/staff/"))[0] == 200  # public: cached for the fast path too
    status, _ = await api.call("PATCH", "/api/v1/status-pages/staff", {"private": True})
    assert status == 200
    assert (await api.page("/staff/"))[0] == 401
    assert (await api.page("/staff/api/v2/summary.json"))[0] == 401
    status, made = await api.call(
        "POST", "/api/v1/tokens", {"name": "staff-reader", "scopes": ["page:staff"]}
    )
    assert status == 201, made
    status, html = await api.page("/staff/", made["token"])
    assert status == 200
    assert "<title>Staff</title>" in html
    status, made = await api.call(
        "POST", "/api/v1/tokens", {"name": "other-reader", "scopes": ["page:filed-page"]}
    )
    assert (await api.page("/staff/", made["token"]))[0] == 403


async def test_clashing_paths_unknown_components_and_used_components_are_refused(
    hub: tuple[Client, Runtime],
) -> None:
    api, _ = hub
    for path, message in [
        ("/filed", "path '/filed' is already the path of status page 'filed-page'"),
        ("/api", "path '/api' is taken by uptally itself"),
        ("/healthz", "path '/healthz' is taken by uptally itself"),
    ]:
        body = {"id": "clash", "path": path, "title": "Clash", "components": ["platform"]}
        status, refused = await api.call("POST", "/api/v1/status-pages", body)
        assert status == 422, refused
        assert refused["error"]["details"][0]["path"] == "/path"
        assert refused["error"]["details"][0]["message"].startswith(message)
    body = {"id": "ghosts", "path": "/ghosts", "title": "Ghosts", "components": ["ghost"]}
    status, refused = await api.call("POST", "/api/v1/status-pages", body)
    assert status == 422
    assert refused["error"]["details"] == [
        {"path": "/components/0", "message": "unknown component 'ghost'"}
    ]
    status, refused = await api.call("PATCH", "/api/v1/status-pages/filed-page", {"title": "X"})
    assert (status, refused["error"]["code"]) == (409, "provisioned")

    component = {"id": "billing", "monitors": ["filed"]}
    assert (await api.call("POST", "/api/v1/components", component))[0] == 201
    page = {"id": "money", "path": "/money", "title": "Money", "components": ["billing"]}
    assert (await api.call("POST", "/api/v1/status-pages", page))[0] == 201
    status, refused = await api.call("DELETE", "/api/v1/components/billing")
    assert (status, refused["error"]["code"]) == (409, "in_use")
    assert "status_pages/money" in refused["error"]["message"]
    # A second page may not take the first's path; the first may keep its own on a change.
    clash = {**page, "id": "money2"}
    assert (await api.call("POST", "/api/v1/status-pages", clash))[0] == 422
    assert (await api.call("PUT", "/api/v1/status-pages/money", page))[0] == 200
