"""Uptime Kuma notification settings as Apprise URLs (or uptally webhooks), where a type maps."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any
from urllib.parse import quote, urlencode

_SLACK = re.compile(r"^https://hooks\.slack\.com/services/([^/]+)/([^/]+)/([^/?#]+)")
_DISCORD = re.compile(r"^https://(?:\w+\.)?discord(?:app)?\.com/api/webhooks/(\d+)/([^/?#]+)")


class Unmapped(Exception):
    """This notification cannot be written as a channel; the message says why."""


def channel_url(config: dict[str, Any]) -> tuple[str, str]:
    """(url, note) for a notification's config; note says what was approximated, or ""."""
    kind = str(config.get("type") or "")
    builder = _BUILDERS.get(kind.lower())
    if builder is None:
        raise Unmapped(
            f"type {kind!r} has no mapping here; add an Apprise URL for it by hand "
            "(notifications.md lists the services)"
        )
    url, note = builder(config)
    if not url.startswith("webhook+") and not _apprise_takes(url):
        raise Unmapped(f"Apprise does not accept the URL built from its settings ({kind})")
    return url, note


def _need(config: dict[str, Any], key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not value.strip():
        raise Unmapped(f"its setting {key} is empty")
    return value.strip()


def _slack(config: dict[str, Any]) -> tuple[str, str]:
    hook = _need(config, "slackwebhookURL")
    match = _SLACK.match(hook)
    if match is None:
        raise Unmapped("its webhook URL is not a hooks.slack.com/services/… URL")
    url = "slack://" + "/".join(match.groups())
    channel = str(config.get("slackchannel") or "").strip().lstrip("#")
    if channel:
        url += "/" + quote(channel, safe="")
    return url, "Kuma's message layout, username and icon are Apprise's defaults here"


def _discord(config: dict[str, Any]) -> tuple[str, str]:
    match = _DISCORD.match(_need(config, "discordWebhookUrl"))
    if match is None:
        raise Unmapped("its webhook URL is not a discord.com/api/webhooks/… URL")
    return f"discord://{match[1]}/{match[2]}", ""


def _telegram(config: dict[str, Any]) -> tuple[str, str]:
    token, chat = _need(config, "telegramBotToken"), _need(config, "telegramChatID")
    note = ""
    if config.get("telegramServerUrl") not in (None, "", "https://api.telegram.org"):
        note = "a custom Telegram server URL is not kept: Apprise uses api.telegram.org"
    return f"tgram://{token}/{quote(chat, safe='')}", note


def _smtp(config: dict[str, Any]) -> tuple[str, str]:
    host, sender, to = _need(config, "smtpHost"), _need(config, "smtpFrom"), _need(config, "smtpTo")
    scheme = "mailtos" if config.get("smtpSecure") else "mailto"
    user = str(config.get("smtpUsername") or "")
    password = str(config.get("smtpPassword") or "")
    auth = ""
    if user:
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "") + "@"
    port = f":{int(config['smtpPort'])}" if config.get("smtpPort") else ""
    query: dict[str, str] = {"from": sender, "to": to}
    for key, name in (("smtpCC", "cc"), ("smtpBCC", "bcc")):
        if config.get(key):
            query[name] = str(config[key])
    url = f"{scheme}://{auth}{host}{port}?{urlencode(query)}"
    return url, "Kuma's custom subject and body templates are not kept"


def _teams(config: dict[str, Any]) -> tuple[str, str]:
    # Apprise takes a Teams (Power Automate workflow) webhook URL as it is, when it knows it.
    return _need(config, "webhookUrl"), ""


def _webhook(config: dict[str, Any]) -> tuple[str, str]:
    url = _need(config, "webhookURL")
    if not re.match(r"^https?://[^/?#\s]+", url, re.IGNORECASE):
        raise Unmapped("its webhook URL is not http(s)://")
    return "webhook+" + url, (
        "an uptally webhook: the JSON body is uptally's {id, event, at, data}, not Kuma's "
        "{heartbeat, monitor, msg}; custom bodies and headers are not kept"
    )


def _pagerduty(config: dict[str, Any]) -> tuple[str, str]:
    _need(config, "pagerdutyIntegrationKey")
    raise Unmapped(
        "Apprise's PagerDuty URL needs a REST API key that Uptime Kuma never stored; add "
        "pagerduty://INTEGRATION_KEY@API_KEY by hand"
    )


_BUILDERS = {
    "slack": _slack,
    "discord": _discord,
    "telegram": _telegram,
    "smtp": _smtp,
    "teams": _teams,
    "webhook": _webhook,
    "pagerduty": _pagerduty,
}


def _apprise_takes(url: str) -> bool:
    import apprise

    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a refused URL is reported by us, not logged by it
    try:
        with warnings.catch_warnings():  # its e-mail plugin imports the deprecated imghdr
            warnings.simplefilter("ignore", DeprecationWarning)
            return bool(apprise.Apprise().add(url))
    finally:
        logger.setLevel(level)
