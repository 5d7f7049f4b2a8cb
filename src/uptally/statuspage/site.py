"""One status page bound to a runtime: its cache, history pages, lookups and static export.

The main page (at /) shows every component; each page of `status_pages` is a site of its own
(its own cache) limited to its scope (see scope.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import offloop
from uptally.clock import Millis, to_datetime
from uptally.evaluator import Evaluation
from uptally.runtime import Runtime
from uptally.statuspage import render, sources
from uptally.statuspage.build import build_page
from uptally.statuspage.cache import PageCache, Rendered
from uptally.statuspage.export import export_site
from uptally.statuspage.model import PageModel
from uptally.statuspage.scope import PageScope, page_scope
from uptally.store.tables import outbox
from uptally.store.tables_incidents import incidents, postmortems
from uptally.store.tables_maintenance import maintenance_series, maintenance_windows
from uptally.store.tables_managed import monitor_pauses

log = logging.getLogger(__name__)

MONTHS_PER_PAGE = 3


WATCH_EVERY_S = 0.25  # changes written elsewhere are noticed this quickly by `watch`
# Late commits (PostgreSQL hands out seqs before commit) are counted among this many newest seqs.
_LATE_WINDOW = 1000


Mark = tuple[int, ...]


async def outbox_mark(conn: AsyncConnection) -> Mark:
    """What changes when the page's data changes elsewhere: the outbox's newest seq and how
    many events there are among the newest ones (an event committed after a newer one does not
    move the seq), and when incidents and maintenance windows were last edited (edits and
    postmortem drafts raise no event), and the newest monitor pause and resume."""
    top = select(func.coalesce(func.max(outbox.c.seq), 0)).scalar_subquery()
    recent = (
        select(func.count()).select_from(outbox).where(outbox.c.seq > top - _LATE_WINDOW)
    ).scalar_subquery()
    edited = [
        select(func.coalesce(func.max(table.c.updated_at), 0)).scalar_subquery()
        for table in (incidents, postmortems, maintenance_windows, maintenance_series)
    ]
    paused = [
        select(func.coalesce(func.max(column), 0)).scalar_subquery()
        for column in (monitor_pauses.c.id, monitor_pauses.c.end)
    ]
    row = (await conn.execute(select(top, recent, *edited, *paused))).one()
    return tuple(int(value) for value in row)


class StatusSite:
    """Kept fresh by the writer's evaluations, a reloaded config and, for changes made
    elsewhere (incidents, maintenance, other instances), by the outbox: watched by `watch`
    while the server runs, and checked at most once a second on requests besides."""

    def __init__(
        self, runtime: Runtime, base_url: str | None = None, page: str | None = None
    ) -> None:
        self.runtime = runtime
        self.page = page  # an id of `status_pages`; None for the main page
        self._scoped = (runtime.config, page_scope(runtime.config, page))  # KeyError: no page
        scope = self._scoped[1]
        # Routes and the fast path are built from these: fixed for the life of the site (the
        # server makes a new site when a page moves or turns private, web/page_sites.py).
        self.path = scope.path
        self.private = scope.private
        self._base_url = base_url  # export-site's --base-url
        self.listen_url = ""  # where `serve` listens: the links' base without site.url
        self.cache = PageCache(lambda: build_page(runtime, self.base_url + self.path, self.scope))
        self._config = runtime.config  # a reload swaps it: rebuild with the new titles
        self._mark: Mark | None = None
        self._checked = 0.0
        self._checking: asyncio.Task[None] | None = None
        runtime.ingest.listeners.append(self._on_evaluation)

    @property
    def base_url(self) -> str:
        """The links' base: never a client's Host header (the page is cached for everyone)."""
        return self._base_url or self.runtime.config.site.url or self.listen_url

    def listening(self, url: str) -> None:
        """`serve` has bound `url`: the base of links unless site.url is set."""
        self.listen_url = url
        self.cache.touch()

    @property
    def scope(self) -> PageScope:
        """What the page shows, by the running config (title and components may be reloaded);
        resolved once per config, not per request."""
        config = self.runtime.config
        if self._scoped[0] is not config:
            try:
                self._scoped = (config, page_scope(config, self.page))
            except KeyError:  # deleted at runtime: a request already in flight ends as it began
                return self._scoped[1]
        return self._scoped[1]

    def close(self) -> None:
        """The page is gone or moved: no more rebuilds, no more evaluations heard."""
        with contextlib.suppress(ValueError):
            self.runtime.ingest.listeners.remove(self._on_evaluation)
        self.cache.close()

    def _on_evaluation(self, evaluation: Evaluation) -> None:
        if (
            evaluation.statuses
            or evaluation.outages
            or evaluation.events
            or evaluation.removed_outages
        ):
            self.cache.touch()

    async def refresh(self) -> bool:
        """Notice changes written elsewhere; True if the cache was invalidated."""
        if self._reloaded():
            return True
        if time.monotonic() - self._checked < 1.0:
            return False
        self._checked = time.monotonic()  # one query for the requests of the same second
        async with self.runtime.db.connect() as conn:
            return self.notice(await outbox_mark(conn))

    def notice(self, mark: Mark) -> bool:
        """The outbox's mark (see `outbox_mark`) as just read; True if the cache was
        invalidated (by it or by a reloaded config)."""
        self._checked = time.monotonic()
        changed = self._reloaded()
        if mark != self._mark:
            self._mark = mark
            self.cache.touch()
            changed = True
        return changed

    def _reloaded(self) -> bool:
        if self.runtime.config is self._config:
            return False
        self._config = self.runtime.config
        self.cache.touch()
        return True

    def peek(self, key: str) -> Rendered | None:
        """A cached rendering (from before a change at most `GRACE_S` old), or None when a
        request must take the full path. Due checks for changes written elsewhere (should
        `watch` not run) happen in the background."""
        due = time.monotonic() - self._checked >= 1.0 or self.runtime.config is not self._config
        if self._checking is None and due:
            self._checking = asyncio.get_running_loop().create_task(self._check())
        return self.cache.peek(key)

    async def _check(self) -> None:
        try:
            await self.refresh()  # a change starts its rebuild
        except Exception as error:
            log.warning("checking the status page for changes failed: %s", error)
        finally:
            self._checking = None

    async def history_page(
        self, model: PageModel, page: int, links: render.Links
    ) -> tuple[bytes, bool]:
        since, until = month_range(model, page)
        async with self.runtime.db.connect() as conn:
            incidents, windows = await self._history(conn, since, until)
            older, older_windows = await self._history(conn, 0, since)
        gaps = [(s, e) for s, e in model.not_monitored if s < until and e > since]
        items = render.history_items(incidents, windows, gaps)
        has_older = bool(older or older_windows)
        body = await offloop.run(
            render.history_html, model, links, items, page, has_older, (since, until)
        )
        return body, has_older

    async def _history(
        self, conn: AsyncConnection, since: Millis, until: Millis
    ) -> tuple[list[Any], list[Any]]:
        """Incidents and windows of [since, until) that this page shows."""
        scope = self.scope
        incidents, windows = await sources.history(conn, since, until)
        return scope.incidents(incidents), scope.windows(windows)

    async def find_incident(self, model: PageModel, incident_id: str) -> Any | None:
        found = next((i for i in model.incidents if i.id == incident_id), None)
        if found is None:
            async with self.runtime.db.connect() as conn:
                found = await sources.incident(conn, incident_id)
            if found is not None and not self.scope.shows_incident(found):
                return None  # not one of this page's
        return found

    async def keep_exported(
        self, out: Path, every_s: float = 2.0, at_least_s: float = 300.0
    ) -> None:
        """Re-export after every change (checked every `every_s`), and every `at_least_s`."""
        exported_version, exported_at = -1, 0.0
        while True:
            await self.refresh()
            stale = time.monotonic() - exported_at >= at_least_s
            if self.cache.version != exported_version or stale:
                exported_version, exported_at = self.cache.version, time.monotonic()
                try:
                    written = await self.export(out)
                    log.debug("exported %d files to %s", len(written), out)
                except Exception:
                    log.exception("exporting the status page to %s failed", out)
            await asyncio.sleep(every_s)

    async def export(self, out: Path) -> list[Path]:
        model = await self.cache.model()
        async with self.runtime.db.connect() as conn:
            older, _ = await self._history(conn, 0, model.generated_at + 1)
        return await export_site(model, out, self.history_page, older)


async def watch(sites: Callable[[], Sequence[StatusSite]], every_s: float = WATCH_EVERY_S) -> None:
    """While the server runs: notice changes written elsewhere for every site (one query for
    all), so that each rebuilds within a moment of a change, without waiting for a visitor.
    `sites` is asked each time: pages come and go at runtime."""
    if not sites():
        return
    db = sites()[0].runtime.db
    failing = False
    while True:
        try:
            async with db.connect() as conn:
                mark = await outbox_mark(conn)
            for site in sites():
                site.notice(mark)
            failing = False
        except Exception as error:
            if not failing:  # once per failure, not four times a second
                log.warning("watching the status pages for changes failed: %s", error)
            failing = True
        await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def watching(sites: Callable[[], Sequence[StatusSite]]) -> AsyncIterator[None]:
    """`watch` the sites for the duration; then stop their background rebuilds."""
    task = asyncio.get_running_loop().create_task(watch(sites), name="status-pages")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for site in sites():
            site.cache.close()


def month_range(model: PageModel, page: int) -> tuple[int, int]:
    """[start, end) in ms of the months shown on history page `page` (newest first)."""
    zone = ZoneInfo(model.site.timezone)
    now = to_datetime(model.generated_at, zone)
    index = now.year * 12 + now.month - 1  # months since year 0
    newest = index - MONTHS_PER_PAGE * (page - 1)
    oldest = newest - MONTHS_PER_PAGE + 1

    def start_of(month_index: int) -> int:
        year, month = divmod(month_index, 12)
        return int(datetime(year, month + 1, 1, tzinfo=zone).timestamp() * 1000)

    return start_of(oldest), start_of(newest + 1)
