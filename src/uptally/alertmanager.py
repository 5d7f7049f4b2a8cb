"""Alertmanager's webhook (payload version 4) as results of `external` monitors.

An alert whose labels contain every label of a monitor's `match` drives that monitor: firing is
a down result dated at the alert's `startsAt` (so the outage starts when the alert did, not when
the notification arrived), resolved is an up result at its `endsAt` (with the down result at
`startsAt` too, in case the firing notification was never received). Result ids are derived from
monitor, fingerprint, status and `startsAt`, so the repeats and regroupings Alertmanager sends
are stored once and judged once: ingestion drops an id it already has. A resolved alert does
not bring the monitor up while another of its alerts, started before that end, still fires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from uptally.checks.base import ErrorCode
from uptally.clock import Millis, from_datetime
from uptally.config.schema import ExternalMonitor
from uptally.results import Result

LOCATION = "local"
VERSION = "4"
MESSAGE_LIMIT = 500


class Alert(BaseModel):
    """One alert of a notification (unknown fields are Alertmanager's business, ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    fingerprint: str = Field(min_length=1, max_length=200)


class Notification(BaseModel):
    """The webhook payload; `version` is checked before this model is validated."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[Alert] = Field(max_length=10_000)


@dataclass(frozen=True, slots=True)
class Received:
    """What a notification came to: results to ingest, and how many alert/monitor pairs
    matched."""

    results: list[Result]
    matched: int


def matches(monitor: ExternalMonitor, labels: dict[str, str]) -> bool:
    return all(labels.get(name) == value for name, value in monitor.match.items())


def _result_id(monitor: str, alert: Alert, status: str, starts: Millis) -> str:
    key = f"{monitor}:{alert.fingerprint}:{status}:{starts}"
    return "am" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def _describe(alert: Alert) -> str:
    name = alert.labels.get("alertname", "an alert")
    about = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    text = f"{name} is firing" + (f": {about}" if about else "")
    return text[:MESSAGE_LIMIT]


class AlertReceiver:
    """Turns notifications into results; remembers which alerts fire for each monitor."""

    def __init__(self) -> None:
        self._firing: dict[str, dict[str, Millis]] = {}  # monitor -> fingerprint -> startsAt

    def receive(
        self, notification: Notification, monitors: Iterable[ExternalMonitor], now: Millis
    ) -> Received:
        """The results a notification means for the enabled `monitors`, as of `now` (times in
        the future, from a skewed clock, count as now)."""
        known = {m.id: m for m in monitors if m.enabled}
        for gone in self._firing.keys() - known.keys():
            del self._firing[gone]
        results: list[Result] = []
        matched = 0
        # Firing first: a resolved alert must not bring up a monitor that another alert of the
        # same notification keeps down.
        ordered = sorted(notification.alerts, key=lambda a: a.status != "firing")
        for alert in ordered:
            began = from_datetime(alert.startsAt)
            starts = min(began, now)
            for monitor in known.values():
                if not matches(monitor, alert.labels):
                    continue
                matched += 1
                firing = self._firing.setdefault(monitor.id, {})
                down = Result(
                    _result_id(monitor.id, alert, "firing", began),
                    monitor.id,
                    LOCATION,
                    starts,
                    False,
                    None,
                    ErrorCode.ALERT.value,
                    _describe(alert),
                )
                results.append(down)
                if alert.status == "firing":
                    firing[alert.fingerprint] = starts
                    continue
                if firing.get(alert.fingerprint) == starts:  # not a newer firing of the same
                    del firing[alert.fingerprint]
                ends = alert.endsAt
                end = now if ends is None or ends.year < 2 else from_datetime(ends)
                end = max(min(end, now), starts + 1)
                if any(start <= end for start in firing.values()):
                    continue  # another alert kept it down past this one's end
                up = Result(
                    _result_id(monitor.id, alert, "resolved", began),
                    monitor.id,
                    LOCATION,
                    end,
                    True,
                    None,
                    None,
                    "",
                )
                results.append(up)
        return Received(results, matched)
