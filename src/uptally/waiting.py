"""Waiting for an event with a time limit, without losing a cancellation.

`asyncio.wait_for` on Python 3.11 can swallow a cancellation that arrives just as the awaited
event fires, leaving a task that was told to stop running forever (seen as a hung shutdown).
`asyncio.timeout` tells its own timeout apart from a cancellation.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True if it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
