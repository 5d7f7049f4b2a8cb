"""Audit entries for the configuration: which monitors, components, channels… changed since
the last load (only ids and digests are recorded, never values, which may hold secrets)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.audit.chain import Entry, canonical
from uptally.audit.log import append
from uptally.config import Config
from uptally.store import meta
from uptally.store.database import Database

META_KEY = "config_digests"


def _digest(model: BaseModel | list[Any] | None) -> str:
    if isinstance(model, BaseModel):
        data: Any = model.model_dump(mode="json")
    elif isinstance(model, list):
        data = [item.model_dump(mode="json") for item in model]
    else:
        data = model
    return hashlib.sha256(canonical(data)).hexdigest()[:16]


def digests(config: Config) -> dict[str, dict[str, str]]:
    """Per section, a digest of each item by id (and one for the plain settings)."""
    sections: dict[str, list[Any]] = {
        "monitors": list(config.monitors),
        "components": list(config.components),
        "locations": list(config.locations),
        "channels": list(config.notifications.channels),
        "sla_policies": list(config.sla.policies),
        "status_pages": list(config.status_pages),
    }
    found = {
        name: {str(getattr(item, "id", None) or item.name): _digest(item) for item in items}
        for name, items in sections.items()
    }
    found["maintenance"] = {str(i): _digest(item) for i, item in enumerate(config.maintenance)}
    settings = ("site", "probe", "retention", "backup", "dr", "security")
    found["settings"] = {name: _digest(getattr(config, name, None)) for name in settings}
    return found


def changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section, {}), after.get(section, {})
        diff = {
            "added": sorted(set(new) - set(old)),
            "removed": sorted(set(old) - set(new)),
            "changed": sorted(key for key in set(old) & set(new) if old[key] != new[key]),
        }
        diff = {kind: ids for kind, ids in diff.items() if ids}
        if diff:
            out[section] = diff
    return out


async def record_config(
    db: Database, conn: AsyncConnection, config: Config, actor: str, action: str
) -> Entry | None:
    """Append `action` (e.g. config.loaded) if the config differs from the last one recorded."""
    stored = await meta.get(conn, META_KEY)
    before = json.loads(stored) if stored else {}
    after = digests(config)
    diff = changes(before, after)
    if not diff:
        return None
    await meta.put(db, conn, META_KEY, json.dumps(after, sort_keys=True))
    return await append(conn, actor, action, "config", {"changes": diff})
