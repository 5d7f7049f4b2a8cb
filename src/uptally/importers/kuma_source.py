"""Read Uptime Kuma's data, from a 1.x JSON backup or its SQLite `kuma.db`, into plain rows."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

Row = dict[str, Any]  # one row of a foreign table, keys in Uptime Kuma's snake_case columns

SQLITE_MAGIC = b"SQLite format 3\x00"
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class SourceError(Exception):
    """The source is not an Uptime Kuma backup or database we can read."""


@dataclass(slots=True)
class KumaData:
    """What an Uptime Kuma instance holds, as far as an import needs it."""

    origin: str
    monitors: list[Row] = field(default_factory=list)  # + "tags": [(name, value)], "notifications"
    notifications: list[Row] = field(default_factory=list)  # + "config": dict
    status_pages: list[Row] = field(default_factory=list)  # + "groups": [(name, [monitor ids])]
    maintenance: list[Row] = field(default_factory=list)  # + "monitors", "status_pages"
    has_pages: bool = False  # a JSON backup has no status pages nor maintenance


def read(path: Path) -> KumaData:
    """Read a JSON backup or a `kuma.db` (opened read-only); raise SourceError if neither."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise SourceError(f"{path}: cannot read: {error}") from None
    if head == SQLITE_MAGIC:
        return _read_db(path)
    return _read_backup(path)


def _read_backup(path: Path) -> KumaData:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path}: neither a SQLite kuma.db nor a JSON backup: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("monitorList"), list):
        raise SourceError(f"{path}: not an Uptime Kuma backup (no monitorList)")
    found = KumaData(origin=f"JSON backup (Uptime Kuma {data.get('version', '?')})")
    for item in data.get("notificationList") or []:
        row = {_snake(k): v for k, v in item.items()}
        row["config"] = _json(row.get("config"), {})
        found.notifications.append(row)
    for item in data["monitorList"]:
        row = {_snake(k): v for k, v in item.items() if k not in ("tags", "notificationIDList")}
        row["tags"] = [(t.get("name", ""), t.get("value") or "") for t in item.get("tags") or []]
        ids = item.get("notificationIDList") or {}
        row["notifications"] = sorted(int(k) for k, on in ids.items() if on)
        found.monitors.append(row)
    return found


def _read_db(path: Path) -> KumaData:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as error:
        raise SourceError(f"{path}: cannot open the database: {error}") from None
    conn.row_factory = sqlite3.Row
    try:
        return _load(conn)
    except sqlite3.Error as error:
        raise SourceError(f"{path}: not an Uptime Kuma database: {error}") from None
    finally:
        conn.close()


def _load(conn: sqlite3.Connection) -> KumaData:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "monitor" not in tables:
        raise SourceError("no monitor table: not an Uptime Kuma database")
    found = KumaData(origin="SQLite database (kuma.db)", has_pages=True)

    def rows(sql: str, *args: Any) -> list[Row]:
        return [dict(r) for r in conn.execute(sql, args)]

    for row in rows("SELECT * FROM notification ORDER BY id"):
        row["config"] = _json(row.get("config"), {})
        found.notifications.append(row)
    for row in rows("SELECT * FROM monitor ORDER BY id"):
        row["accepted_statuscodes"] = _json(row.pop("accepted_statuscodes_json", None), None)
        row["tags"] = [
            (r["name"], r["value"] or "")
            for r in rows(
                "SELECT tag.name, monitor_tag.value FROM monitor_tag"
                " JOIN tag ON tag.id = monitor_tag.tag_id WHERE monitor_id = ? ORDER BY tag.id",
                row["id"],
            )
        ]
        row["notifications"] = [
            r["notification_id"]
            for r in rows(
                "SELECT notification_id FROM monitor_notification WHERE monitor_id = ?"
                " ORDER BY notification_id",
                row["id"],
            )
        ]
        found.monitors.append(row)
    if {"status_page", "group", "monitor_group"} <= tables:
        for page in rows("SELECT * FROM status_page ORDER BY id"):
            page["groups"] = [
                (
                    group["name"],
                    [
                        r["monitor_id"]
                        for r in rows(
                            "SELECT monitor_id FROM monitor_group WHERE group_id = ?"
                            " ORDER BY weight, id",
                            group["id"],
                        )
                    ],
                )
                for group in rows(
                    'SELECT * FROM "group" WHERE status_page_id = ? ORDER BY weight, id', page["id"]
                )
            ]
            found.status_pages.append(page)
    if {"maintenance", "monitor_maintenance", "maintenance_status_page"} <= tables:
        for window in rows("SELECT * FROM maintenance ORDER BY id"):
            window["monitors"] = [
                r["monitor_id"]
                for r in rows(
                    "SELECT monitor_id FROM monitor_maintenance WHERE maintenance_id = ?",
                    window["id"],
                )
            ]
            window["status_pages"] = [
                r["status_page_id"]
                for r in rows(
                    "SELECT status_page_id FROM maintenance_status_page WHERE maintenance_id = ?",
                    window["id"],
                )
            ]
            found.maintenance.append(window)
    return found


def _snake(key: str) -> str:
    """retryInterval -> retry_interval: backup keys are the columns in camelCase."""
    return _CAMEL.sub(r"_\1", key).lower()


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str):
        return text if text is not None else default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


def truthy(value: Any) -> bool:
    """Kuma's booleans: 0/1 in SQLite, true/false in JSON."""
    return value not in (None, 0, False, "", "0", "false")
