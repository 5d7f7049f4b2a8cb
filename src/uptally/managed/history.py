"""A monitor's configuration history, read back from the audit log: API changes and file loads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.audit.chain import Entry, parse_row
from uptally.clock import Millis
from uptally.store import audit as audit_store

API_ACTIONS = ("monitor.created", "monitor.updated", "monitor.deleted")
# What the file changed is recorded per load (ids only, never values: they may hold secrets).
FILE_ACTIONS = ("config.loaded", "config.reloaded")
_FILE_LISTS = ("added", "changed", "removed")


@dataclass(frozen=True, slots=True)
class ConfigChange:
    at: Millis
    actor: str
    action: str
    source: Literal["api", "config"]
    changes: dict[str, Any] | None  # pointer -> {before, after}; None for the file (ids only)


def _file_monitors(entry: Entry, lists: Collection[str]) -> set[str]:
    section = entry.details.get("changes", {}).get("monitors", {})
    if not isinstance(section, dict):
        return set()
    return {m for key in lists for m in section.get(key, []) if isinstance(m, str)}


async def monitor_changes(conn: AsyncConnection, monitor_id: str) -> list[ConfigChange]:
    """Every change of the monitor's configuration, newest first (also after it was deleted)."""
    api = await audit_store.with_actions(conn, API_ACTIONS, target=f"monitor:{monitor_id}")
    file = await audit_store.with_actions(conn, FILE_ACTIONS, target="config")
    found: list[tuple[int, ConfigChange]] = []
    for row in api:
        entry = parse_row(row)
        changes = entry.details.get("changes")
        shown = changes if isinstance(changes, dict) else {}
        found.append((entry.seq, ConfigChange(entry.at, entry.actor, entry.action, "api", shown)))
    for row in file:
        entry = parse_row(row)
        if monitor_id in _file_monitors(entry, _FILE_LISTS):
            change = ConfigChange(entry.at, entry.actor, entry.action, "config", None)
            found.append((entry.seq, change))
    return [change for _, change in sorted(found, key=lambda item: item[0], reverse=True)]


async def reconfigured(
    conn: AsyncConnection, monitors: Collection[str], since: Millis
) -> dict[str, list[Millis]]:
    """When each of `monitors` had its configuration changed (not made or deleted) since
    `since`, oldest first: the markers on a timeline."""
    wanted = set(monitors)
    times: dict[str, list[Millis]] = defaultdict(list)
    for row in await audit_store.with_actions(conn, ("monitor.updated",), since=since):
        monitor = row.target.removeprefix("monitor:")
        if monitor in wanted:
            times[monitor].append(row.at)
    for row in await audit_store.with_actions(conn, FILE_ACTIONS, target="config", since=since):
        for monitor in _file_monitors(parse_row(row), ("changed",)) & wanted:
            times[monitor].append(row.at)
    return {monitor: sorted(at) for monitor, at in times.items()}
