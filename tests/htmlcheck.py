"""HTML validity for tests: the WHATWG parser in strict mode (any parse error fails), and the
source's own nesting, which a parser silently repairs (a <ul> or <p> inside a <p>)."""

from __future__ import annotations

from html.parser import HTMLParser

import html5lib

# Elements that end an open <p> (WHATWG "close a p element"): written inside one, they are
# not in it at all, whatever the markup's indentation says.
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "details", "dialog", "div", "dl",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section",
        "table", "ul", "li", "dd", "dt",
    }
)  # fmt: skip
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
     "wbr"}
)  # fmt: skip


class _Nesting(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS and "p" in self.open:
            self.problems.append(f"<{tag}> inside <p> (at line {self.getpos()[0]})")
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS and "p" in self.open:
            self.problems.append(f"<{tag}> inside <p> (at line {self.getpos()[0]})")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag not in self.open:
            self.problems.append(f"</{tag}> closes nothing (at line {self.getpos()[0]})")
            return
        while self.open.pop() != tag:
            pass


def problems(markup: str, fragment: bool = False) -> list[str]:
    """What is wrong with `markup` (a document, or with `fragment` a piece of a <div>)."""
    found: list[str] = []
    parser = html5lib.HTMLParser(strict=True)
    try:
        if fragment:
            parser.parseFragment(markup, container="div")
        else:
            parser.parse(markup)
    except html5lib.html5parser.ParseError as error:
        found.append(f"parse error: {error}")
    nesting = _Nesting()
    nesting.feed(markup)
    nesting.close()
    return found + nesting.problems


def assert_valid(markup: str, fragment: bool = False) -> None:
    found = problems(markup, fragment)
    assert not found, "\n".join(found) + "\n\n" + markup[:3000]
