"""Signed webhooks: a JSON POST {id, event, at, data}, signed as uptally.signing says.

The timestamp is fresh on each attempt; the delivery id (`X-Uptally-Delivery`, or `webhook-id`
with Standard Webhooks) is the same on every attempt of one delivery.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

import aiohttp

from uptally import __version__
from uptally.clock import iso
from uptally.netguard import UnsafeTarget
from uptally.notify.transport import DeliveryError, Outgoing, http_failure
from uptally.signing import Signer

PREFIX = "webhook+"


def body_of(outgoing: Outgoing) -> bytes:
    document = {
        "id": outgoing.event,
        "event": outgoing.kind,
        "at": iso(outgoing.at),
        "data": dict(outgoing.data),
    }
    return json.dumps(document, separators=(",", ":"), default=str).encode()


def headers_for(
    outgoing: Outgoing, body: bytes, signer: Signer, now_s: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if now_s is None else now_s
    return {
        "Content-Type": "application/json",
        "User-Agent": f"uptally/{__version__}",
        **signer.headers(outgoing.delivery, outgoing.kind, body, timestamp),
    }


class Webhook:
    """One webhook; with a guarded session (netguard.PinnedResolver) it reaches checked
    addresses only, and a refused address fails the delivery for good."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        signer: Signer,
        timeout_s: float,
        *,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self.url = url.removeprefix(PREFIX)
        self.signer = signer
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.extra_headers = dict(extra_headers or {})

    async def send(self, outgoing: Outgoing) -> int | None:
        body = body_of(outgoing)
        headers = {**headers_for(outgoing, body, self.signer), **self.extra_headers}
        try:
            async with self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    await response.read()
                    return response.status
                detail = (await response.content.read(200)).decode("utf-8", "replace").strip()
                raise http_failure(response.status, detail, response.headers.get("Retry-After"))
        except UnsafeTarget as error:
            raise DeliveryError(str(error), permanent=True) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise DeliveryError(_describe(error)) from None


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return text[:300]
