"""What every channel transport shares: the message, the delivery, and how a send failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from uptally.clock import Millis


@dataclass(frozen=True, slots=True)
class Message:
    """A short human message about an event, with a link back to the page."""

    title: str
    body: str
    url: str | None = None

    def text(self) -> str:
        return f"{self.body}\n{self.url}" if self.url else self.body


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery as a transport sees it."""

    delivery: str  # X-Uptally-Delivery: the same on every attempt
    event: str
    kind: str
    at: Millis
    subject: str
    data: Mapping[str, Any]
    message: Message


class DeliveryError(Exception):
    """A failed attempt; permanent ones are not retried (e.g. HTTP 4xx other than 408/429)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status
        self.retry_after_s = retry_after_s


class Transport(Protocol):
    async def send(self, outgoing: Outgoing) -> int | None:
        """Deliver, or raise DeliveryError; returns the status code if there is one."""
        ...


def http_failure(status: int, detail: str, retry_after: str | None = None) -> DeliveryError:
    """Classify an HTTP answer: 4xx other than 408 and 429 is permanent, the rest transient."""
    permanent = 400 <= status < 500 and status not in (408, 429)
    wait: float | None = None
    if retry_after and retry_after.strip().isdigit():
        wait = float(retry_after.strip())
    return DeliveryError(
        f"HTTP {status}{': ' + detail if detail else ''}",
        permanent=permanent,
        status=status,
        retry_after_s=wait,
    )
