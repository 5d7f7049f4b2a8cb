"""The monitor list a page at a time: cursor, stable order by id, filters, bad parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from uptally.clock import FakeClock
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.database import Database
from uptally.web.app import create_app

TOKEN = "list-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT = 250


def config_text() -> str:
    lines = ["site: {title: Many}", "locations: [{name: eu-west}]", "monitors:"]
    # Written out of order: the list is sorted by id, not by the file.
    for i in reversed(range(COUNT)):
        if i % 5 == 0:
            lines.append(f"  - {{id: m{i:03d}, name: Job {i}, kind: heartbeat, period: 1h}}")
        elif i % 2:
            lines.append(
                f"  - {{id: m{i:03d}, name: Shop {i}, kind: tcp, host: db{i}.internal, port: 5432,"
                f" locations: [local, eu-west]}}"
            )
        else:
            lines.append(
                f"  - {{id: m{i:03d}, name: API {i}, kind: http, url: 'http://127.0.0.1:9/{i}'}}"
            )
    lines += ["components:", "  - {id: shop, name: Shop, monitors: [m001, m003, m007]}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def http(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[Any, str, Runtime]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/u.db")
    runtime = Runtime(
        config_from(config_text()), db, clock=clock, metrics=Metrics(), run_probe=False
    )
    await runtime.start()
    async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as session:
        yield session, url, runtime
    await runtime.stop()


async def get(http: tuple[Any, str, Runtime], query: str) -> tuple[int, Any, str | None]:
    session, base, _ = http
    async with session.get(f"{base}/api/v1/monitors?{query}", headers=AUTH) as response:
        return response.status, await response.json(), response.headers.get("Link")


async def walk(http: tuple[Any, str, Runtime], query: str) -> list[list[str]]:
    """Every page of a listing, following next_cursor; the ids of each page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        extra = f"&cursor={cursor}" if cursor else ""
        status, body, link = await get(http, query + extra)
        assert status == 200, body
        pages.append([m["id"] for m in body["monitors"]])
        cursor = body["next_cursor"]
        if cursor is None:
            assert link is None
            return pages
        assert link is not None
        assert link.endswith('>; rel="next"')
        linked = parse_qs(urlsplit(link[1 : link.index(">")]).query)
        assert linked["cursor"] == [cursor]
        assert len(pages) < 100


async def test_pages_walk_every_monitor_once_in_id_order(
    http: tuple[Any, str, Runtime],
) -> None:
    pages = await walk(http, "")
    assert [len(p) for p in pages] == [100, 100, 50]  # the default limit is 100
    ids = [i for p in pages for i in p]
    assert ids == sorted(f"m{i:03d}" for i in range(COUNT))
    small = await walk(http, "limit=7")
    assert [i for p in small for i in p] == ids
    assert len(small) == 36


async def test_filters_combine_and_keep_paging(
    http: tuple[Any, str, Runtime], clock: FakeClock
) -> None:
    tcp = sorted(f"m{i:03d}" for i in range(COUNT) if i % 5 and i % 2)
    pages = await walk(http, "kind=tcp&limit=40")
    assert [i for p in pages for i in p] == tcp
    pages = await walk(http, "kind=heartbeat,http&location=local&limit=1000")
    assert [i for p in pages for i in p] == sorted(
        f"m{i:03d}" for i in range(COUNT) if not (i % 5 and i % 2)
    )
    assert [i for p in await walk(http, "location=eu-west") for i in p] == tcp
    assert await walk(http, "component=shop&limit=2") == [["m001", "m003"], ["m007"]]
    # q: id, name or target, case-insensitive
    assert await walk(http, "q=SHOP%201") == [
        sorted(f"m{i:03d}" for i in range(COUNT) if i % 5 and i % 2 and str(i).startswith("1"))
    ]
    assert await walk(http, "q=db7.internal") == [["m007"]]
    assert await walk(http, "q=m012") == [["m012"]]
    runtime = http[2]
    for number in range(2):  # confirm: 2 by default
        runtime.ingest.submit(
            Result(f"r{number}", "m012", "local", clock.now_ms(), False, 3.0, "timeout", "slow")
        )
    await runtime.ingest.drained()
    assert await walk(http, "state=down") == [["m012"]]
    status, body, _ = await get(http, "state=down,unknown&limit=1000")
    assert status == 200
    assert len(body["monitors"]) == COUNT
    assert body["monitors"][12]["state"] == "down"


async def test_a_window_in_effect_lists_its_monitors_under_maintenance(
    http: tuple[Any, str, Runtime],
) -> None:
    """Covered directly (m002) or through a component (shop: m001, m003, m007)."""
    session, base, runtime = http
    window = {
        "title": "Now",
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-01T02:00:00Z",
        "monitors": ["m002"],
        "components": ["shop"],
    }
    async with session.post(f"{base}/api/v1/maintenance", json=window, headers=AUTH) as response:
        assert response.status == 201, await response.text()
    await runtime.maintenance.step()
    covered = ["m001", "m002", "m003", "m007"]
    assert await walk(http, "state=maintenance&limit=3") == [covered[:3], covered[3:]]
    assert await walk(http, "state=maintenance&sort=-id") == [covered[::-1]]
    pages = await walk(http, "state=unknown,maintenance&sort=state&limit=1000")
    assert pages[0][:4] == covered  # maintenance sorts before unknown
    status, body, _ = await get(http, "state=unknown&limit=1000")
    assert status == 200
    assert {m["id"] for m in body["monitors"]} & set(covered) == set()
    assert len(body["monitors"]) == COUNT - len(covered)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "cursor=not-a-cursor",
        "cursor=",
        "state=sideways",
        "state=",
        "kind=ftp",
        "component=nope",
        "location=mars",
    ],
)
async def test_a_bad_parameter_answers_422_json(http: tuple[Any, str, Runtime], query: str) -> None:
    status, body, _ = await get(http, query)
    assert status == 422
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["message"]
