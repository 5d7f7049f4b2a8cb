"""The base URL of the links in an answer: `site.url`, else this request's Host when it is an
allowed one (for that answer only), else the address `serve` listens on. A Host header is
never kept: cached pages are built on `site.url` or the listen address alone."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from uptally.config.schema import Config

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_LISTEN = frozenset({"", "0.0.0.0", "::"})
_HOST = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def allowed_hosts(config: Config, listen_url: str) -> frozenset[str]:
    """Host names (lower case, IPv6 without brackets) whose requests may get links on their
    own host; "*" in it allows any."""
    configured = config.site.allowed_hosts
    if configured is not None:
        return frozenset(configured)
    names = set(LOCAL_NAMES)
    for url in (listen_url, config.site.url or ""):
        host = (urlsplit(url).hostname or "").lower()
        if host not in _WILDCARD_LISTEN:
            names.add(host)
    return frozenset(names)


def host_name(header: str) -> str | None:
    """The host name of a Host header value ("Example.COM:8080" → "example.com"), or None if
    it is not a plain host[:port]."""
    match = _HOST.fullmatch(header)
    if match is None or (match["port"] is not None and int(match["port"]) > 65535):
        return None
    return match["name"].lower().strip("[]")


def base_url(config: Config, listen_url: str, host: str, scheme: str) -> str:
    """Links' base for a request with this Host header and scheme."""
    if config.site.url:
        return config.site.url
    name = host_name(host)
    allowed = allowed_hosts(config, listen_url)
    if name is not None and (name in allowed or "*" in allowed):
        return f"{'https' if scheme == 'https' else 'http'}://{host.lower()}"
    return listen_url
