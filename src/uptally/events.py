"""Event types: what happened, written to the outbox in the same transaction as its cause."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from uptally.clock import Millis
from uptally.ids import new_id


class EventKind(StrEnum):
    MONITOR_DOWN = "monitor.down"
    MONITOR_UP = "monitor.up"
    MONITOR_DEGRADED = "monitor.degraded"
    INCIDENT_CREATED = "incident.created"
    INCIDENT_UPDATED = "incident.updated"
    INCIDENT_RESOLVED = "incident.resolved"
    MAINTENANCE_SCHEDULED = "maintenance.scheduled"
    MAINTENANCE_STARTED = "maintenance.started"
    MAINTENANCE_COMPLETED = "maintenance.completed"
    SLA_BREACHED = "sla.breached"
    SLA_BURN_RATE = "sla.burn_rate"  # the error budget burns too fast (multi-window)
    SLA_PERIOD_CLOSED = "sla.period_closed"  # the ledger of a finished period, with credits
    PROBE_OFFLINE = "probe.offline"
    PROBE_DEGRADED = "probe.degraded"  # the probe cannot reach its canaries
    PROBE_ONLINE = "probe.online"  # back after offline or degraded
    COMMITMENT_DUE = "commitment.due"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    at: Millis  # when it happened (for late data: when it happened, not when we learnt it)
    subject: str  # the monitor, incident, … it is about
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
