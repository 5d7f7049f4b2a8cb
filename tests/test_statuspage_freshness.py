"""What the status page serves after a change: rebuilt by itself (debounced), bytes from before a
change served for at most the grace, a rush costing one rebuild; and end to end, against
`uptally serve`, an incident or an outage visible on a quiet page without any visitor first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from uptally.statuspage.cache import PageCache, Rendered
from uptally.statuspage.site import outbox_mark
from uptally.store.database import Database
from uptally.store.tables import outbox

MAX_AGE_S = 60.0
GRACE_S = 1.0
BOUND_S = 1.5  # docs/statuspage.md: every answer includes the changes made this long before


class Clock:
    """Seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Builds:
    """A build the test holds back (`release`) and counts; `fail` makes it raise."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()
        self.fail = False

    async def __call__(self) -> Any:
        self.count += 1
        self.started.set()
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the database is away")
        return SimpleNamespace(generated_at=0, version=self.count)


async def render(model: Any) -> tuple[bytes, str]:
    return f"version {model.version}".encode(), "text/plain"


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)


async def visited(builds: Builds, clock: Clock, debounce_s: float = 0.0) -> PageCache:
    """A cache whose page has been looked at once (version 1 rendered)."""
    cache = PageCache(builds, MAX_AGE_S, debounce_s=debounce_s, grace_s=GRACE_S, clock=clock)
    assert body(await cache.get("index", render, "public")) == b"version 1"
    return cache


def body(rendered: Rendered | None) -> bytes | None:
    return None if rendered is None else rendered.body


async def test_a_change_rebuilds_the_page_without_anyone_asking() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock, debounce_s=0.01)
    cache.touch()
    await until(lambda: cache.builds == 2)  # nobody asked: the change started it
    assert body(cache.peek("index")) == b"version 2"  # re-rendered by the rebuild, at once


async def test_a_burst_of_changes_costs_one_rebuild() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock, debounce_s=0.05)
    for _ in range(20):
        cache.touch()
    await until(lambda: cache.builds == 2)
    await asyncio.sleep(0.2)  # an observation window: nothing else is due
    assert builds.count == 2
    assert body(cache.peek("index")) == b"version 2"


async def test_a_change_during_a_rebuild_is_rebuilt_after_it() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock)
    builds.release.clear()
    builds.started.clear()
    cache.touch()
    await builds.started.wait()  # rebuild 2 runs, held back
    cache.touch()  # not in rebuild 2
    builds.release.set()
    await until(lambda: cache.builds == 3)
    # Nobody asked since rebuild 2: not re-rendered, the next visitor renders it from model 3.
    assert cache.peek("index") is None
    assert body(await cache.get("index", render, "public")) == b"version 3"
    assert builds.count == 3


async def test_visitors_get_the_previous_bytes_only_within_the_grace_then_wait_together() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock)
    builds.release.clear()
    cache.touch()
    await builds.started.wait()
    clock.now += GRACE_S - 0.01
    for _ in range(50):  # a rush within the grace: the previous bytes at once
        assert body(cache.peek("index")) == b"version 1"
    clock.now += 0.02
    assert cache.peek("index") is None  # from now on: wait for the rebuild (the full path)
    rush = [asyncio.create_task(cache.get("index", render, "public")) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in rush)
    builds.release.set()
    answers = await asyncio.gather(*rush)
    assert {body(a) for a in answers} == {b"version 2"}
    assert builds.count == 2  # one rebuild for the change and the whole rush
    assert body(cache.peek("index")) == b"version 2"


async def test_after_a_long_quiet_a_change_is_never_served_from_the_old_page() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock, debounce_s=30.0)  # the rebuild has not started yet
    clock.now += 600  # nobody looked for ten minutes, then a change
    cache.touch()
    assert cache.peek("index") is None  # ten minutes old: the visitor waits for the rebuild
    assert body(await cache.get("index", render, "public")) == b"version 2"
    assert body(cache.peek("index")) == b"version 2"


async def test_an_old_page_is_rebuilt_on_the_next_visit_and_not_served_much_older() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock)
    builds.release.clear()
    clock.now += MAX_AGE_S
    assert body(cache.peek("index")) == b"version 1"  # a moment old: served, rebuild started
    await builds.started.wait()
    clock.now += GRACE_S
    assert cache.peek("index") is None  # too old to serve: wait for the rebuild
    builds.release.set()
    await until(lambda: cache.builds == 2)
    assert body(cache.peek("index")) == b"version 2"


async def test_a_page_nobody_has_looked_at_is_not_built_on_changes() -> None:
    builds, clock = Builds(), Clock()
    cache = PageCache(builds, debounce_s=0.0, clock=clock)
    cache.touch()
    await asyncio.sleep(0.05)  # an observation window: nothing is due
    assert builds.count == 0


async def test_when_the_rebuild_fails_the_last_page_is_served_rather_than_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock)
    builds.fail = True
    cache.touch()
    await until(lambda: "rebuilding the status page failed" in caplog.text)
    clock.now += GRACE_S + 1
    assert body(cache.peek("index")) == b"version 1"
    builds.fail = False
    await until(lambda: cache.builds == 2)  # retried a moment later
    assert body(cache.peek("index")) == b"version 3"  # the second attempt's model


async def test_closing_stops_rebuilding() -> None:
    builds, clock = Builds(), Clock()
    cache = await visited(builds, clock, debounce_s=0.01)
    cache.close()
    cache.touch()
    await asyncio.sleep(0.05)  # an observation window: nothing is due
    assert builds.count == 1


def _event(n: int) -> dict[str, Any]:
    return {
        "id": f"ev{n}",
        "kind": "incident.created",
        "subject": "i",
        "at": n,
        "data": "{}",
        "created_at": n,
    }


async def test_the_outbox_mark_moves_with_every_event_even_one_committed_late(db: Database) -> None:
    async with db.connect() as conn:
        empty = await outbox_mark(conn)
    async with db.begin() as conn:
        await conn.execute(outbox.insert(), [_event(1)])
    async with db.connect() as conn:
        one = await outbox_mark(conn)
    assert one != empty
    if db.is_sqlite:
        return  # one writer at a time: seqs commit in order
    # PostgreSQL hands out seqs at insert: the older one may commit after a newer one.
    async with db.connect() as slow:
        await slow.execute(outbox.insert(), [_event(2)])  # seq 2, not committed yet
        async with db.begin() as conn:
            await conn.execute(outbox.insert(), [_event(3)])  # seq 3, committed
        async with db.connect() as conn:
            before = await outbox_mark(conn)
        await slow.commit()
    async with db.connect() as conn:
        after = await outbox_mark(conn)
    assert after[0] == before[0]  # the newest seq did not move…
    assert after != before  # …and the late event is still noticed


# -- end to end: `uptally serve`, a quiet page ------------------------------------------------

TOKEN = "fresh-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "uptally.yaml"
    config.write_text("""
site: {title: Quiet}
probe: {enabled: false}
monitors:
  - {id: job, kind: heartbeat, period: 1h, token: quiet-job-token}
  - {id: web, kind: heartbeat, period: 1h, token: quiet-web-token}
components:
  - {id: jobs, name: Nightly jobs, monitors: [job]}
  - {id: website, name: Website, monitors: [web]}
incidents:
  automation: {components: {jobs: open}}
""")
    return config


async def _documents(http: aiohttp.ClientSession, base: str) -> tuple[dict[str, Any], str]:
    """The summary and the page, asked for at the same moment."""

    async def get(path: str) -> aiohttp.ClientResponse:
        async with http.get(base + path) as response:
            assert response.status == 200
            await response.read()
            return response

    summary, page = await asyncio.gather(get("/api/v2/summary.json"), get("/"))
    return await summary.json(), await page.text()


async def _at(moment: float) -> None:
    """Ask at `moment` (the bound under test), not before."""
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


@pytest.mark.slow
async def test_an_incident_and_an_outage_reach_a_quiet_page_within_the_bound(
    tmp_path: Path, db_url: str
) -> None:
    from tests.procs import serving

    env = {"UPTALLY_ADMIN_TOKEN": TOKEN}
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url
    async with (
        serving(_config(tmp_path), tmp_path / "data", env) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        for token in ("quiet-job-token", "quiet-web-token"):
            async with http.get(f"{base}/ping/{token}") as response:
                assert response.status == 200
        summary, page = await _documents(http, base)  # looked at once: now cached
        assert summary["status"]["indicator"] == "none"
        assert "All Systems Operational" in page

        # An incident declared through the API (written elsewhere than the evaluator).
        incident = {
            "title": "Website slow for some",
            "status": "investigating",
            "impact": "minor",
            "components": ["website"],
            "message": "We are looking into it.",
        }
        async with http.post(f"{base}/api/v1/incidents", json=incident, headers=AUTH) as r:
            assert r.status == 201, await r.text()
            incident_id = (await r.json())["id"]
        await _at(time.monotonic() + BOUND_S)
        summary, page = await _documents(http, base)  # the first visitors since
        assert [i["name"] for i in summary["incidents"]] == ["Website slow for some"]
        assert summary["status"]["indicator"] == "minor"
        assert "Website slow for some" in page

        # An edit raises no event: it still reaches the page.
        retitled = {"title": "Website slow in Europe"}
        async with http.patch(
            f"{base}/api/v1/incidents/{incident_id}", json=retitled, headers=AUTH
        ) as r:
            assert r.status == 200, await r.text()
        await _at(time.monotonic() + BOUND_S)
        summary, page = await _documents(http, base)
        assert [i["name"] for i in summary["incidents"]] == ["Website slow in Europe"]
        assert "Website slow in Europe" in page

        # An outage the evaluator detects, and the incident automation opens for it.
        async with http.get(f"{base}/ping/quiet-job-token/fail") as response:
            assert response.status == 200
        changed = time.monotonic()
        await _at(changed + BOUND_S)
        summary, page = await _documents(http, base)
        jobs = next(c for c in summary["components"] if c["name"] == "Nightly jobs")
        assert jobs["status"] == "major_outage"
        assert "All Systems Operational" not in page

        async def automatic() -> list[dict[str, Any]]:
            async with http.get(f"{base}/api/v1/incidents", headers=AUTH) as response:
                listed = (await response.json())["incidents"]
            return [i for i in listed if i["automatic"]]

        async with asyncio.timeout(20):  # the admin API, not the page: prompts no rebuild
            while not (opened := await automatic()):
                await asyncio.sleep(0.05)
        await _at(time.monotonic() + BOUND_S)
        summary, page = await _documents(http, base)
        names = {i["name"] for i in summary["incidents"]}
        assert opened[0]["title"] in names
        assert opened[0]["title"] in page
