"""Personal data in audit entries (e-mail and client addresses, subscriber ids), masked for
readers without the admin scope."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

MASK = "[redacted]"
# Actors and targets that name a person: a visitor by client address, a subscriber by id.
_PERSONAL_PREFIXES = ("public:", "subscriber:")
_EMAIL = re.compile(r"[^\s@<>\"',;:]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,63}")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")


def redacted(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry (as JSON) without personal data, for readers without the admin scope (its hash
    stays the stored entry's)."""
    return {
        **entry,
        "actor": masked_name(entry["actor"]),
        "target": masked_name(entry["target"]),
        "details": masked_details(entry["details"]),
    }


def masked_name(value: str) -> str:
    """An actor or target with the person it names masked ("subscriber:[redacted]")."""
    for prefix in _PERSONAL_PREFIXES:
        if value.startswith(prefix):
            return prefix + MASK
    return masked_text(value)


def masked_text(value: str) -> str:
    value = _EMAIL.sub(MASK, value)
    value = _IPV4.sub(MASK, value)
    return _IPV6.sub(lambda m: MASK if _is_ipv6(m[0]) else m[0], value)


def masked_details(value: Any) -> Any:
    """Details with every string (keys kept) masked, recursively."""
    if isinstance(value, str):
        return masked_name(value)
    if isinstance(value, dict):
        return {key: masked_details(item) for key, item in value.items()}
    if isinstance(value, list):
        return [masked_details(item) for item in value]
    return value


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
