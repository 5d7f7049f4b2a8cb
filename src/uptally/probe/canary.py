"""Canaries: does this probe's own network work? When it does not, its failures mean nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from uptally.checks import net
from uptally.checks.base import CheckFailed, user_agent
from uptally.checks.httpclient import fetch

CANARY_TIMEOUT_S = 5.0

# Used when the hub's config names no canaries for the location (and none is given on the
# command line): three anycast resolvers of three operators, by IP (no DNS needed) on 443,
# which networks let out far more often than 53. Independent of the hub on purpose: losing
# the hub says nothing about the way to the targets.
DEFAULT_CANARIES = ("tcp://1.1.1.1:443", "tcp://8.8.8.8:443", "tcp://9.9.9.9:443")


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


def majority_answers(results: Sequence[CanaryResult]) -> bool:
    """The network works when more than half of the canaries answer (or there are none)."""
    return 2 * sum(1 for r in results if r.ok) > len(results) if results else True


@dataclass(frozen=True, slots=True)
class Verdict:
    degraded: bool
    news: str | None = None  # what to log, once, when the verdict (or its basis) changes
    loud: bool = False  # `news` is a warning


class NetworkJudge:
    """Judges rounds of canary results: is this probe's network degraded? (pure, no I/O)

    Configured canaries follow the majority rule. The built-in defaults do too, but only those
    that have answered from here at least once take part: a machine that has never reached
    them (no internet, a strict firewall, one resolver blocked) would otherwise count as
    degraded forever and hide every failure. While none has ever answered, the defaults flag
    nothing, and say so once, loudly.
    """

    def __init__(self, targets: Sequence[str], defaults: bool) -> None:
        self.targets = tuple(targets)
        self.defaults = defaults
        self.proven: set[str] = set() if defaults else set(self.targets)  # the electorate
        self.degraded = False
        self._said_unproven = False

    def judge(self, results: Sequence[CanaryResult]) -> Verdict:
        joined = sorted({r.target for r in results if r.ok} - self.proven)
        self.proven.update(joined)
        if not self.proven:
            news = None
            if not self._said_unproven:
                self._said_unproven = True
                news = (
                    f"none of the default canaries ({', '.join(self.targets)}) answers from "
                    "here, so they cannot tell whether this probe's network works: its failures "
                    "count as seen, never as degraded, until one answers. Configure canaries "
                    "this machine can reach (the location's `canaries` on the hub, or --canary)"
                )
            return Verdict(False, news, loud=True)
        voters = [r for r in results if r.target in self.proven]
        degraded = not majority_answers(voters)
        news, loud = None, False
        if degraded and not self.degraded:
            failing = "; ".join(f"{r.target}: {r.error}" for r in voters if not r.ok)
            answering = sum(1 for r in voters if r.ok)
            news, loud = (
                f"only {answering} of {len(voters)} canaries answer ({failing}): this probe's "
                "network is suspect, its failures count as degraded until most answer again",
                True,
            )
        elif not degraded and self.degraded:
            news = "most canaries answer again: this probe's failures count again"
        elif joined and self.defaults:
            names = ", ".join(joined)
            news = f"default canaries answering from here (they count from now on): {names}"
        self.degraded = degraded
        return Verdict(degraded, news, loud)
