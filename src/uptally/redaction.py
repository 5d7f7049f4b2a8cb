"""Redaction: credentials and secret query values masked wherever a URL or a message leaves.

`https://user:pass@host/x?token=abc&page=2` is shown as `https://***@host/x?token=***&page=2`.
A query key is secret if it is one of DEFAULT_SECRET_KEYS or `security.secret_query_keys`
(compared without case). `${secret:NAME}` references are not secrets and stay as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_SECRET_KEYS = frozenset(
    {
        "token",
        "key",
        "apikey",
        "api_key",
        "api-key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "auth",
        "sig",
        "signature",
    }
)
MASK = "***"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{}]+")
_REFERENCE = re.compile(r"\$\{secret:[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}\}")
_MIN_LITERAL = 3  # shorter "secrets" would mask ordinary words in messages


@dataclass(frozen=True, slots=True)
class Redactor:
    keys: frozenset[str] = DEFAULT_SECRET_KEYS
    literals: tuple[str, ...] = ()  # secret values masked wherever they appear

    @classmethod
    def with_keys(cls, extra: Iterable[str]) -> Redactor:
        return cls(DEFAULT_SECRET_KEYS | {key.lower() for key in extra})

    def including(self, literals: Iterable[str]) -> Redactor:
        found = {v for v in (*self.literals, *literals) if len(v) >= _MIN_LITERAL}
        return Redactor(self.keys, tuple(sorted(found, key=len, reverse=True)))

    def url(self, url: str) -> str:
        """The URL with its user info and the values of secret query keys masked."""
        scheme, sep, rest = url.partition("://")
        if not sep:
            return url
        end = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if at != -1:
                end = min(end, at)
        authority, tail = rest[:end], rest[end:]
        if "@" in authority:
            userinfo, host = authority.rsplit("@", 1)
            credential = userinfo.partition(":")[2] or userinfo
            if not _REFERENCE.fullmatch(credential):
                authority = f"{MASK}@{host}"
        path, qmark, query = tail.partition("?")
        if qmark:
            query, hash_, fragment = query.partition("#")
            query = "&".join(self._pair(pair) for pair in query.split("&")) + hash_ + fragment
        return f"{scheme}://{authority}{path}{qmark}{query}"

    def _pair(self, pair: str) -> str:
        name, equals, value = pair.partition("=")
        if (
            equals
            and value
            and unquote(name).lower() in self.keys
            and not _REFERENCE.fullmatch(value)
        ):
            return f"{name}={MASK}"
        return pair

    def text(self, text: str) -> str:
        """A message with secret literals and every URL in it redacted."""
        for literal in self.literals:
            text = text.replace(literal, MASK)
        return _URL.sub(lambda match: self.url(match[0]), text)

    def secrets_in_url(self, url: str) -> list[str]:
        """The secret values a URL carries (its password, secret query values), as sent."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return []
        # without a password, the user name is the credential (https://TOKEN@host/)
        credential = parts.password if parts.password is not None else parts.username
        found = [credential or "", unquote(credential or "")]
        for pair in parts.query.split("&"):
            name, equals, value = pair.partition("=")
            if equals and unquote(name).lower() in self.keys:
                found += [value, unquote(value)]
        return [value for value in found if value]
