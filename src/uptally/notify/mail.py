"""Subscriber mail: the confirmation and notices, plain text and HTML from the same Markdown,
each with a one-click unsubscribe link (RFC 2369 and RFC 8058 headers too)."""

from __future__ import annotations

from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from uptally.markdown import render
from uptally.notify.transport import Message


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),  # the .txt parts are plain text
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def confirmation(
    to: str,
    site: str,
    confirm_url: str,
    components: str,
    expires: str,
    delivery: str,
    unsubscribe_url: str,
) -> EmailMessage:
    values = {
        "site": site,
        "confirm_url": confirm_url,
        "components": components,
        "expires": expires,
        "unsubscribe_url": unsubscribe_url,
    }
    return _message(
        to, f"[{site}] Confirm your subscription", "confirm", values, delivery, unsubscribe_url
    )


def notice(
    to: str, site: str, message: Message, unsubscribe_url: str, delivery: str
) -> EmailMessage:
    values = {
        "site": site,
        "body": message.body,
        "body_html": render(message.body),  # incident and maintenance texts are Markdown
        "url": message.url,
        "unsubscribe_url": unsubscribe_url,
    }
    return _message(to, f"[{site}] {message.title}", "notice", values, delivery, unsubscribe_url)


# Long header lines stay whole: an encoded-word List-Unsubscribe is not a usable link.
_POLICY = policy.default.clone(max_line_length=998)


def _message(
    to: str,
    subject: str,
    template: str,
    values: Mapping[str, object],
    delivery: str,
    unsubscribe_url: str,
) -> EmailMessage:
    templates = _templates()
    mail = EmailMessage(policy=_POLICY)
    mail["To"] = to
    mail["Subject"] = " ".join(subject.split())
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(idstring=delivery, domain=_domain(unsubscribe_url))
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Uptally-Delivery"] = delivery
    # RFC 2369 and RFC 8058: mail clients offer (and may POST) a one-click unsubscribe.
    mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail.set_content(templates.get_template(f"{template}.txt").render(**values))
    mail.add_alternative(
        templates.get_template(f"{template}.html").render(**values), subtype="html"
    )
    return mail


def _domain(url: str) -> str | None:
    """The site's host (links are on site.url) for Message-IDs; None: the local host name."""
    return urlsplit(url).hostname or None
