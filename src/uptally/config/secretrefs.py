"""`${secret:NAME}` in a monitor's values: kept as written in the config, filled in from the
secret store by whoever runs the check, just before it runs (never shown resolved)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from uptally.config.schema import ActiveMonitor, monitor_document, monitor_from_document

REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9][A-Za-z0-9_.:\-]{0,127})\}")


def names_in(monitor: ActiveMonitor) -> set[str]:
    """The secret names the monitor refers to (none for most monitors)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.update(REFERENCE.findall(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(monitor_document(monitor))
    return found


def resolved(monitor: ActiveMonitor, values: Mapping[str, str]) -> ActiveMonitor:
    """A copy of the monitor with every `${secret:NAME}` replaced by its value in `values`."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return REFERENCE.sub(lambda match: values[match[1]], value)
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    found = monitor_from_document(fill(monitor_document(monitor)))
    assert isinstance(found, ActiveMonitor)
    return found
