"""Subscribers as operators see them: counts per component and status page, addresses masked
for those who may not read them, and the CSV export (addresses are personal data)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from uptally.clock import iso
from uptally.config.schema import Config
from uptally.store import subscribers as store
from uptally.store.database import Database
from uptally.store.subscribers import Subscriber

CSV_COLUMNS = ["id", "kind", "address", "components", "state", "created_at", "confirmed_at"]
_PAGE = 1000


@dataclass
class Tally:
    """Subscribers of one scope by kind and state: (email|webhook, active|pending) -> count."""

    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, item: Subscriber) -> None:
        key = (item.kind, item.state)
        self.counts[key] = self.counts.get(key, 0) + 1

    def of(self, kind: str, state: str) -> int:
        return self.counts.get((kind, state), 0)


@dataclass(frozen=True, slots=True)
class Roster:
    total: Tally
    by_component: list[tuple[str, str, Tally]]  # id, title, tally
    by_page: list[tuple[str, str, Tally]]  # path, title, tally (the main page first)


async def everyone(db: Database) -> list[Subscriber]:
    """Every subscriber, in id order (read in pages, in one transaction)."""
    found: list[Subscriber] = []
    after: str | None = None
    async with db.connect() as conn:
        while True:
            page = await store.listing(conn, after=after, limit=_PAGE)
            found.extend(page)
            if len(page) < _PAGE:
                return found
            after = page[-1].id


def roster(config: Config, subscribers: Sequence[Subscriber]) -> Roster:
    """Counts of subscribers still subscribed (or waiting to confirm): a subscriber of no
    component in particular counts for every component and page."""
    total = Tally()
    components = {c.id: Tally() for c in config.components}
    pages = [("/", config.site.title, set(components))] + [
        (p.path, p.title, set(p.components)) for p in config.status_pages
    ]
    page_tallies = [Tally() for _ in pages]
    for item in subscribers:
        total.add(item)
        if item.state == store.UNSUBSCRIBED:
            continue
        wanted = set(item.components) or set(components)
        for name in wanted & set(components):
            components[name].add(item)
        for (_, _, shown), tally in zip(pages, page_tallies, strict=True):
            if wanted & shown:
                tally.add(item)
    titles = {c.id: c.title for c in config.components}
    return Roster(
        total,
        [(cid, titles[cid], tally) for cid, tally in components.items()],
        [(path, title, tally) for (path, title, _), tally in zip(pages, page_tallies, strict=True)],
    )


def masked(item: Subscriber) -> str:
    """An address as someone without the admin role sees it: j•••@example.com, or a webhook's
    scheme and host (its path and query may hold a token)."""
    if item.kind == "email":
        local, _, domain = item.address.partition("@")
        return f"{local[:1]}•••@{domain}"
    parts = urlsplit(item.address)
    return f"{parts.scheme}://{parts.hostname or ''}/•••"


def _cell(text: str) -> str:
    """A spreadsheet must not read a cell as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(subscribers: Sequence[Subscriber]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in subscribers:
        writer.writerow(
            [
                s.id,
                s.kind,
                _cell(s.address),
                " ".join(s.components),
                s.state,
                iso(s.created_at),
                iso(s.confirmed_at) or "",
            ]
        )
    return buffer.getvalue()
