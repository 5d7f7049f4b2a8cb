"""Statuspage v2 documents (the Atlassian public API shapes) from the page model (pure).

Field names, enums and nesting follow https://metastatuspage.com/api/v2 so that existing
clients read uptally unchanged. Timestamps are ISO 8601 in the page's timezone with offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from uptally.clock import Millis, to_datetime
from uptally.statuspage.model import ComponentView, GroupView, PageModel

RECENT = 50


class V2:
    def __init__(self, model: PageModel) -> None:
        self.model = model
        self.zone = ZoneInfo(model.site.timezone)
        self._components = {c.id: c for c in model.components}

    def time(self, ms: Millis | None) -> str | None:
        if ms is None:
            return None
        return to_datetime(ms, self.zone).isoformat(timespec="milliseconds")

    # -- documents ---------------------------------------------------------------------------

    def page(self) -> dict[str, Any]:
        m = self.model
        return {
            "id": m.page_id,
            "name": m.site.title,
            "url": m.url,
            "time_zone": m.site.timezone,
            "updated_at": self.time(self._updated_at()),
        }

    def status(self) -> dict[str, Any]:
        return {"page": self.page(), "status": self._status()}

    def components(self) -> dict[str, Any]:
        return {"page": self.page(), "components": self._component_list()}

    def summary(self) -> dict[str, Any]:
        m = self.model
        return {
            "page": self.page(),
            "components": self._component_list(),
            "incidents": [self.incident(i) for i in m.active_incidents],
            "scheduled_maintenances": [
                self.maintenance(w) for w in m.active_maintenance + m.upcoming_maintenance
            ],
            "status": self._status(),
        }

    def incidents(self, unresolved: bool = False) -> dict[str, Any]:
        items = self.model.active_incidents if unresolved else self.model.incidents[:RECENT]
        return {"page": self.page(), "incidents": [self.incident(i) for i in items]}

    def scheduled_maintenances(self, which: str = "all") -> dict[str, Any]:
        m = self.model
        if which == "upcoming":
            items = m.upcoming_maintenance
        elif which == "active":
            items = m.active_maintenance
        else:
            items = sorted(m.maintenance, key=lambda w: w.scheduled_for, reverse=True)[:RECENT]
        return {"page": self.page(), "scheduled_maintenances": [self.maintenance(w) for w in items]}

    # -- pieces ------------------------------------------------------------------------------

    def _status(self) -> dict[str, str]:
        indicator = self.model.indicator
        return {"indicator": indicator.indicator, "description": indicator.description}

    def _updated_at(self) -> Millis:
        m = self.model
        times = [c.updated_at for c in m.components if c.updated_at is not None]
        times += [i.updated_at for i in m.incidents]
        times += [w.updated_at for w in m.maintenance if w.updated_at is not None]
        return max(times, default=m.generated_at)

    def _component_list(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for group in self.model.groups:
            rows.append(self._group(group))
            rows.extend(self.component(c) for c in group.components)
        rows.extend(self.component(c) for c in self.model.ungrouped)
        return sorted(rows, key=lambda r: (r["position"], not r["group"]))

    def component(self, c: ComponentView) -> dict[str, Any]:
        created = c.created_at or self.model.generated_at
        return {
            "id": c.id,
            "name": c.name,
            "status": c.status.value,
            "created_at": self.time(created),
            "updated_at": self.time(c.updated_at or created),
            "position": c.position,
            "description": c.description,
            "showcase": True,
            "start_date": to_datetime(created, self.zone).date().isoformat(),
            "group_id": c.group_id,
            "page_id": self.model.page_id,
            "group": False,
            "only_show_if_degraded": False,
        }

    def _group(self, g: GroupView) -> dict[str, Any]:
        created = min(
            (c.created_at for c in g.components if c.created_at is not None),
            default=self.model.generated_at,
        )
        return {
            "id": g.id,
            "name": g.name,
            "status": g.status.value,
            "created_at": self.time(created),
            "updated_at": self.time(g.updated_at or created),
            "position": g.position,
            "description": None,
            "showcase": False,
            "start_date": None,
            "group_id": None,
            "page_id": self.model.page_id,
            "group": True,
            "only_show_if_degraded": False,
            "components": [c.id for c in g.components],
        }

    def _affected(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return [self.component(self._components[i]) for i in ids if i in self._components]

    def incident(self, incident: Any) -> dict[str, Any]:
        components = [c.component_id for c in incident.components]
        return {
            "id": incident.id,
            "name": incident.title,
            "status": incident.status,
            "created_at": self.time(incident.created_at),
            "updated_at": self.time(incident.updated_at),
            "monitoring_at": self.time(incident.monitoring_at),
            "resolved_at": self.time(incident.resolved_at),
            "impact": incident.impact,
            "shortlink": f"{self.model.url}/incidents/{incident.id}",
            "started_at": self.time(incident.started_at or incident.created_at),
            "page_id": self.model.page_id,
            "incident_updates": [self._update(incident.id, u) for u in incident.updates],
            "components": self._affected(components),
            "reminder_intervals": None,
        }

    def _update(self, parent: str, update: Any) -> dict[str, Any]:
        affected = [
            {
                "code": impact.component_id,
                "name": self._name(impact.component_id),
                "old_status": "operational",
                "new_status": impact.current if update.status != "resolved" else "operational",
            }
            for impact in getattr(update, "affected_components", None) or []
        ]
        body = getattr(update, "body_markdown", None) or getattr(update, "body", "") or ""
        return {
            "id": update.id,
            "status": update.status,
            "body": body,
            "incident_id": parent,
            "created_at": self.time(update.created_at),
            "updated_at": self.time(update.created_at),
            "display_at": self.time(update.created_at),
            "affected_components": affected or None,
            "deliver_notifications": True,
            "custom_tweet": None,
            "tweet_id": None,
        }

    def _name(self, key: str) -> str:
        component = self._components.get(key)
        return component.name if component else key

    def maintenance(self, window: Any) -> dict[str, Any]:
        status = "in_progress" if window.status == "in_progress" else window.status
        return {
            "id": window.id,
            "name": window.title,
            "status": status,
            "created_at": self.time(window.created_at),
            "updated_at": self.time(window.updated_at or window.created_at),
            "monitoring_at": None,
            "resolved_at": self.time(getattr(window, "completed_at", None)),
            "impact": "maintenance",
            "shortlink": f"{self.model.url}/maintenance/{window.id}",
            "started_at": self.time(getattr(window, "started_at", None) or window.scheduled_for),
            "page_id": self.model.page_id,
            "incident_updates": [self._update(window.id, u) for u in window.updates],
            "components": self._affected(window.components),
            "scheduled_for": self.time(window.scheduled_for),
            "scheduled_until": self.time(window.scheduled_until),
        }
