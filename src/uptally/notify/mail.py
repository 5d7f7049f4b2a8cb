"""Subscriber mail: the confirmation and notices, each with a one-click unsubscribe link."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from uptally.notify.transport import Message


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=False,  # plain-text mail
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def confirmation(
    to: str, site: str, confirm_url: str, components: str, expires: str, delivery: str
) -> EmailMessage:
    text = (
        _templates()
        .get_template("confirm.txt")
        .render(site=site, confirm_url=confirm_url, components=components, expires=expires)
    )
    return _message(to, f"[{site}] Confirm your subscription", text, delivery)


def notice(
    to: str, site: str, message: Message, unsubscribe_url: str, delivery: str
) -> EmailMessage:
    text = (
        _templates()
        .get_template("notice.txt")
        .render(site=site, body=message.body, url=message.url, unsubscribe_url=unsubscribe_url)
    )
    mail = _message(to, f"[{site}] {message.title}", text, delivery)
    # RFC 2369 and RFC 8058: mail clients offer (and may POST) a one-click unsubscribe.
    mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return mail


# Long header lines stay whole: an encoded-word List-Unsubscribe is not a usable link.
_POLICY = policy.default.clone(max_line_length=998)


def _message(to: str, subject: str, text: str, delivery: str) -> EmailMessage:
    mail = EmailMessage(policy=_POLICY)
    mail["To"] = to
    mail["Subject"] = " ".join(subject.split())
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid(idstring=delivery, domain="uptally")
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Uptally-Delivery"] = delivery
    mail.set_content(text)
    return mail
