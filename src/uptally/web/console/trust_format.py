"""How the trust pages read form fields and show times, ages and sizes."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData

from uptally.clock import Millis, iso
from uptally.durations import format_duration_ms


def field(form: FormData, name: str, limit: int = 2048) -> str:
    """A text field of a form ("" when absent or a file), cut at `limit` characters."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def when(ms: Millis | None) -> str:
    """A time as people read it, in UTC to the second ("" for none)."""
    text = iso(ms)
    return f"{text[:10]} {text[11:19]} UTC" if text else ""


def ago(ms: Millis | None, now: Millis) -> str:
    if ms is None:
        return "never"
    if now - ms < 1000:
        return "just now"
    return f"{format_duration_ms(round((now - ms) / 1000) * 1000)} ago"


def size(count: int) -> str:
    """Bytes as KiB, MiB or GiB with one decimal."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def summary(details: dict[str, Any], limit: int = 140) -> str:
    """An audit entry's details on one line: `key=value` pairs, cut at `limit` characters."""
    parts = []
    for key, value in details.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
