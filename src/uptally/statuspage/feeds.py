"""Atom and RSS feeds of incidents and maintenance (pure; valid XML built with ElementTree)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from xml.etree.ElementTree import Element, SubElement, tostring

from uptally.clock import Millis, to_datetime
from uptally.markdown import lead_in
from uptally.markdown import render as render_markdown
from uptally.statuspage.model import PageModel

ATOM = "http://www.w3.org/2005/Atom"
LIMIT = 50


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    link: str
    published: Millis
    updated: Millis
    html: str


def entries(model: PageModel) -> list[Entry]:
    items: list[Entry] = []
    for incident in model.incidents:
        latest = incident.updates[0] if incident.updates else None
        body = "".join(lead_in(u.status.title(), u.body_html) for u in incident.updates)
        postmortem = getattr(incident, "postmortem", None)
        if postmortem is not None and getattr(postmortem, "published_at", None):
            body += f"<h3>Postmortem</h3>{postmortem.body_html}"
        items.append(
            Entry(
                f"{model.url}/incidents/{incident.id}",
                f"{incident.title} ({incident.status})",
                f"{model.url}/incidents/{incident.id}",
                incident.created_at,
                latest.created_at if latest else incident.updated_at,
                body or "<p>No updates yet.</p>",
            )
        )
    for window in model.maintenance:
        if window.status == "cancelled":
            continue
        items.append(
            Entry(
                f"{model.url}/maintenance/{window.id}",
                f"Maintenance: {window.title} ({window.status.replace('_', ' ')})",
                f"{model.url}/maintenance/{window.id}",
                window.created_at,
                window.updated_at or window.created_at,
                f"<p>Scheduled {_utc(window.scheduled_for)} to {_utc(window.scheduled_until)}.</p>"
                + render_markdown(window.message_markdown or ""),
            )
        )
    items.sort(key=lambda e: e.updated, reverse=True)
    return items[:LIMIT]


def atom(model: PageModel) -> bytes:
    feed = Element("feed", xmlns=ATOM)
    SubElement(feed, "id").text = f"{model.url}/feed.atom"
    SubElement(feed, "title").text = model.status_title
    items = entries(model)
    SubElement(feed, "updated").text = _iso(items[0].updated if items else model.generated_at)
    SubElement(feed, "link", href=f"{model.url}/", rel="alternate")
    SubElement(feed, "link", href=f"{model.url}/feed.atom", rel="self")
    author = SubElement(feed, "author")
    SubElement(author, "name").text = model.site.title
    for item in items:
        entry = SubElement(feed, "entry")
        SubElement(entry, "id").text = item.id
        SubElement(entry, "title").text = item.title
        SubElement(entry, "link", href=item.link, rel="alternate")
        SubElement(entry, "published").text = _iso(item.published)
        SubElement(entry, "updated").text = _iso(item.updated)
        SubElement(entry, "content", type="html").text = item.html
    return _document(feed)


def rss(model: PageModel) -> bytes:
    root = Element("rss", version="2.0")
    channel = SubElement(root, "channel")
    SubElement(channel, "title").text = model.status_title
    SubElement(channel, "link").text = f"{model.url}/"
    SubElement(channel, "description").text = f"Incidents and maintenance of {model.site.title}"
    items = entries(model)
    SubElement(channel, "lastBuildDate").text = _rfc822(
        items[0].updated if items else model.generated_at
    )
    for entry in items:
        item = SubElement(channel, "item")
        SubElement(item, "title").text = entry.title
        SubElement(item, "link").text = entry.link
        SubElement(item, "guid", isPermaLink="true").text = entry.link
        SubElement(item, "pubDate").text = _rfc822(entry.published)
        SubElement(item, "description").text = entry.html
    return _document(root)


def _document(root: Element) -> bytes:
    body: bytes = tostring(root, encoding="unicode").encode()
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _iso(ms: Millis) -> str:
    return to_datetime(ms, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _rfc822(ms: Millis) -> str:
    return format_datetime(to_datetime(ms, UTC), usegmt=True)


def _utc(ms: Millis) -> str:
    return to_datetime(ms, UTC).strftime("%Y-%m-%d %H:%M UTC")
