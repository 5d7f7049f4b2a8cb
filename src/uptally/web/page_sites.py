"""The pages of `status_pages` as served: following the running config (made, moved, gone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from uptally.config.schema import Config
from uptally.runtime import Runtime
from uptally.statuspage.site import StatusSite
from uptally.web import statuspage


class PageSites:
    """Site and router of each page by id: made on first need after a config change, dropped
    when the page goes or moves (a site's path and privacy are fixed when it is made)."""

    def __init__(self, runtime: Runtime, main: StatusSite, listen_url: Callable[[], str]) -> None:
        self._runtime = runtime
        self._main = main
        self._listen_url = listen_url
        self._config: Config | None = None
        self._sites: dict[str, tuple[StatusSite, APIRouter]] = {}
        self._by_path: dict[str, tuple[StatusSite, APIRouter]] = {}
        self._fast: statuspage.FastPaths = statuspage.fast_paths([main])

    def sites(self) -> list[StatusSite]:
        self._sync()
        return [site for site, _ in self._sites.values()]

    def fast_paths(self) -> statuspage.FastPaths:
        """What the fast path may answer now: the main page and the public pages."""
        self._sync()
        return self._fast

    def resolve(self, path: str) -> tuple[StatusSite, APIRouter] | None:
        """The page a request path is below (/internal, /internal/…), if any."""
        self._sync()
        base = path if path.count("/") == 1 else path[: path.index("/", 1)]
        return self._by_path.get(base)

    def close(self) -> None:
        for site, _ in self._sites.values():
            site.close()
        self._sites.clear()

    def _sync(self) -> None:
        config = self._runtime.config
        if config is self._config:
            return
        self._config = config
        wanted = {page.id: page for page in config.status_pages}
        for page_id, (site, _) in list(self._sites.items()):
            page = wanted.get(page_id)
            if page is None or (page.path, page.private) != (site.path, site.private):
                site.close()
                del self._sites[page_id]
        for page_id in wanted.keys() - self._sites.keys():
            site = StatusSite(self._runtime, page=page_id)
            site.listening(self._listen_url())
            router = statuspage.page_router(site)
            self._sites[page_id] = (site, router)
        self._by_path = {site.path: (site, router) for site, router in self._sites.values()}
        self._fast = statuspage.fast_paths([self._main, *(s for s, _ in self._sites.values())])


class PagesRoute(BaseRoute):
    """One route for every page of `status_pages`: the page is found by the first segment of
    the path in the running config, and its own router answers (guarded when private)."""

    def __init__(self, pages: PageSites) -> None:
        self.pages = pages

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self.pages.resolve(scope["path"]) is not None:
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.pages.resolve(scope["path"])
        if found is None:  # deleted between matching and handling
            raise HTTPException(status_code=404)
        await found[1].app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # nothing here is looked up by name
