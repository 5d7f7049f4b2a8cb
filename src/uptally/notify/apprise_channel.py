"""Any Apprise URL (Slack, Discord, Telegram, PagerDuty, Teams, mailto://, json://, …)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Mapping
from typing import Any

from uptally.netguard import Guard
from uptally.notify.socketguard import guarding
from uptally.notify.transport import DeliveryError, Outgoing

log = logging.getLogger(__name__)

# Apprise's notify types (apprise.NotifyType values): chat services colour and badge by them.
_TYPES = {
    "monitor.down": "failure",
    "monitor.degraded": "warning",
    "monitor.up": "success",
    "incident.created": "failure",
    "incident.updated": "failure",
    "incident.resolved": "success",
    "probe.offline": "failure",
    "probe.degraded": "warning",
    "probe.online": "success",
    "sla.breached": "failure",
    "sla.burn_rate": "warning",
}


def notify_type(kind: str, data: Mapping[str, Any]) -> str:
    """How bad the event is, as Apprise's type (failure, warning, success; info otherwise)."""
    if kind.startswith("incident.") and data.get("postmortem"):
        return "info"
    if kind == "commitment.due":
        return "warning" if data.get("state") == "overdue" else "info"
    return _TYPES.get(kind, "info")


class AppriseChannel:
    """One Apprise URL; with a guard, its plugin connects to checked addresses only."""

    def __init__(self, url: str, timeout_s: float, guard: Guard | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.guard = guard

    async def send(self, outgoing: Outgoing) -> int | None:
        with warnings.catch_warnings():
            # Apprise loads its plugins on first use; some import modules Python deprecates.
            warnings.simplefilter("ignore", DeprecationWarning)
            import apprise  # heavy (≈0.1 s): only when a channel needs it

            service = apprise.Apprise()
            if not service.add(self.url):
                raise DeliveryError("not a valid or supported Apprise URL", permanent=True)
        message = outgoing.message
        capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]
        with capture as captured, guarding(self.guard) as refused:
            try:
                # Apprise has its own timeouts; this bounds a plugin that ignores them.
                async with asyncio.timeout(self.timeout_s * 3):
                    ok = await service.async_notify(
                        body=message.text(),
                        title=message.title,
                        notify_type=apprise.NotifyType(notify_type(outgoing.kind, outgoing.data)),
                    )
            except TimeoutError:
                raise DeliveryError("timed out") from None
        if refused:
            raise DeliveryError(refused[0], permanent=True)
        if not ok:
            detail = " ".join(str(captured.getvalue()).split())[:300]
            raise DeliveryError(f"apprise: {detail or 'the service did not accept it'}")
        return None
