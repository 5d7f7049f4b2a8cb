"""Retry delays: exponential backoff with jitter, bounded (pure, injected randomness)."""

from __future__ import annotations

import random
from collections.abc import Callable

from uptally.config.schema import Retry


def delay_ms(
    attempts: int,
    settings: Retry,
    retry_after_ms: int | None = None,
    rand: Callable[[], float] = random.random,
) -> int:
    """Wait before the next attempt, after `attempts` failed ones.

    first, twice that, four times … up to `max`, each drawn from its upper half (jitter keeps many
    queues that failed together from retrying together); a server's Retry-After is honoured
    up to `max`.
    """
    ceiling = min(settings.max, settings.first * 2 ** min(max(attempts - 1, 0), 40))
    wait = int(ceiling / 2 + rand() * ceiling / 2)
    if retry_after_ms is not None:
        wait = max(wait, min(retry_after_ms, settings.max))
    return max(wait, 1)
