"""Who still refers to an object: a component or policy that would point at nothing if it went."""

from __future__ import annotations

from collections.abc import Iterable

from uptally.config.managed import COMPONENT, LOCATION, MONITOR, Kind
from uptally.config.schema import ActiveMonitor, Config
from uptally.store.channels import StoredChannel


def users_of(config: Config, kind: Kind, object_id: str) -> list[str]:
    """`section/id` of everything in `config` that names the object (empty: it may go)."""
    found: list[str] = []
    if kind is MONITOR:
        found += [f"components/{c.id}" for c in config.components if object_id in c.monitors]
        found += [
            f"maintenance/{w.id or w.title}" for w in config.maintenance if object_id in w.monitors
        ]
        found += [
            f"channels/{c.id}" for c in config.notifications.channels if object_id in c.monitors
        ]
        if config.backup.dir and config.backup.monitor == object_id:
            found.append("backup/monitor")
    elif kind is COMPONENT:
        found += [f"status_pages/{p.id}" for p in config.status_pages if object_id in p.components]
        found += [f"sla/policies/{p.id}" for p in config.sla.policies if object_id in p.components]
        found += [
            f"sla/customers/{c.id}" for c in config.sla.customers if object_id in c.components
        ]
        found += ["sla/exclusions" for e in config.sla.exclusions if e.component == object_id][:1]
        found += [
            f"maintenance/{w.id or w.title}"
            for w in config.maintenance
            if object_id in w.components
        ]
        found += [
            f"channels/{c.id}" for c in config.notifications.channels if object_id in c.components
        ]
        if object_id in config.incidents.automation.components:
            found.append("incidents/automation")
    elif kind is LOCATION:
        found += [
            f"monitors/{m.id}"
            for m in config.monitors
            if isinstance(m, ActiveMonitor) and object_id in m.locations
        ]
    return [_with_origin(config, user) for user in found]


def _with_origin(config: Config, user: str) -> str:
    section, _, object_id = user.partition("/")
    origin = config.origin(section, object_id)
    return f"{user} ({origin})" if origin else user


def channel_users(channels: Iterable[StoredChannel], kind: Kind, object_id: str) -> list[str]:
    """`channels/id` of each channel made through the API that routes by the object."""
    field = {MONITOR.name: "monitors", COMPONENT.name: "components"}.get(kind.name)
    if field is None:
        return []
    return [f"channels/{c.id}" for c in channels if object_id in getattr(c, field)]
