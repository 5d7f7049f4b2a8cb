"""Canaries: can this probe reach the outside world? If none answers, its failures mean nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from uptally.checks import net
from uptally.checks.base import CheckFailed, user_agent
from uptally.checks.httpclient import fetch

CANARY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class CanaryResult:
    target: str
    ok: bool
    error: str | None = None


async def check_canary(target: str, location: str) -> CanaryResult:
    """Any HTTP answer (even an error status) or an accepted TCP connection counts as reachable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANARY_TIMEOUT_S
    try:
        async with asyncio.timeout_at(deadline):
            if target.startswith("tcp://"):
                parts = urlsplit(target)
                host, port = parts.hostname or "", parts.port or 0
                addresses = await net.resolve(host, port)
                transport = await net.connect(asyncio.Protocol, addresses, host, port)
                transport.close()
            else:
                await fetch(
                    target,
                    user_agent=user_agent(location),
                    deadline=deadline,
                    follow_redirects=False,
                    max_body=64 * 1024,
                )
    except CheckFailed as failed:
        return CanaryResult(target, False, f"{failed.code.value}: {failed.message}")
    except TimeoutError:
        return CanaryResult(target, False, f"timeout: no answer within {CANARY_TIMEOUT_S:g}s")
    except OSError as error:
        return CanaryResult(target, False, f"connect: {error.strerror or error}")
    return CanaryResult(target, True)


async def check_canaries(targets: list[str], location: str) -> list[CanaryResult]:
    return list(await asyncio.gather(*(check_canary(t, location) for t in targets)))
