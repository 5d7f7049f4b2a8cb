"""Run CPU-heavy work (rendering, serialising) in a thread of its own, off the event loop.

The event loop also reads every probe's reply: a page that renders for a second on it makes
every check in flight look a second slower. A dedicated pool, not asyncio's default one, so
that a rush of renders never queues the host-name lookups (getaddrinfo) the checks make there.
Python threads share the GIL, which is handed over every few milliseconds
(`sys.getswitchinterval`), so the loop keeps running while a render is under way.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uptally-render")


async def run(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the render pool; the loop only awaits it."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await loop.run_in_executor(_POOL, call)
