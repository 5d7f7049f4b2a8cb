"""Which status page something is for: the main page (everything, at /) or one of `status_pages`.

A scope is resolved from the running config on every rebuild, so a reloaded title or component
list shows at once; a page's id, path and `private` stay as the process started (see
`runtime.Runtime.reload`), because routes and the cache fast path are built from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from uptally.config.schema import Component, Config, Site


@dataclass(frozen=True, slots=True)
class PageScope:
    page: str | None  # the id in `status_pages`; None for the main page
    path: str  # where its routes live: "" for the main page, else e.g. "/internal"
    site: Site  # the site settings with this page's title, description and logo
    components: frozenset[str] | None  # None: every component
    monitors: frozenset[str] | None  # those of its components; None: every monitor
    private: bool = False

    @property
    def is_main(self) -> bool:
        return self.page is None

    def pick(self, components: Sequence[Component]) -> list[Component]:
        """Its components, in the order of the config."""
        if self.components is None:
            return list(components)
        return [c for c in components if c.id in self.components]

    def shows_incident(self, incident: Any) -> bool:
        """An incident shows on a page when it affects at least one of the page's components."""
        if self.components is None:
            return True
        return any(c.component_id in self.components for c in incident.components)

    def shows_window(self, window: Any) -> bool:
        """A maintenance window shows when it covers one of its components or their monitors."""
        if self.components is None or self.monitors is None:
            return True
        return any(c in self.components for c in window.components) or any(
            m in self.monitors for m in window.monitors
        )

    def incidents(self, incidents: Iterable[Any]) -> list[Any]:
        return [i for i in incidents if self.shows_incident(i)]

    def windows(self, windows: Iterable[Any]) -> list[Any]:
        return [w for w in windows if self.shows_window(w)]


def main_scope(config: Config) -> PageScope:
    return PageScope(None, "", config.site, None, None)


def page_scope(config: Config, page: str | None) -> PageScope:
    """The scope of page `page` (None: the main page); KeyError if the config has no such page."""
    if page is None:
        return main_scope(config)
    found = config.status_page(page)
    if found is None:
        raise KeyError(page)
    listed = frozenset(found.components)
    site = config.site.model_copy(
        update={
            "title": found.title,
            "description": found.description or config.site.description,
            "logo": found.logo or config.site.logo,
        }
    )
    monitors = frozenset(m for c in config.components if c.id in listed for m in c.monitors)
    return PageScope(found.id, found.path, site, listed, monitors, found.private)
