"""User Markdown (incident updates, maintenance notes) to safe HTML: CommonMark, then nh3."""

from __future__ import annotations

from functools import lru_cache
from html import escape

import nh3
from markdown_it import MarkdownIt

_TAGS = frozenset(
    {
        "a", "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
_SCHEMES = frozenset({"http", "https", "mailto"})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # Raw HTML in the source is escaped, not passed through; nh3 then allows only the tags
    # Markdown itself produces, so neither markup nor links can carry script.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def render(text: str) -> str:
    """Safe HTML for user-written Markdown: no script, no event handlers, only http(s)/mailto."""
    html = _parser().render(text)
    return nh3.clean(
        html,
        tags=set(_TAGS),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        url_schemes=set(_SCHEMES),
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def lead_in(label: str, html: str) -> str:
    """`html` (as `render` makes it) introduced by `label` in bold: inside its first paragraph
    when it opens with one ("**Identified** — The cause is…"), else as a paragraph of its own
    before it (a list or a heading first), so that the markup stays valid and nothing dangles."""
    lead = f"<strong>{escape(label)}</strong>"
    if html.startswith("<p>"):
        return f"<p>{lead} — {html[3:]}"
    return f"<p>{lead}</p>{html}"
