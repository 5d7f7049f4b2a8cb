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
import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

TURN_EVERY_S = 0.005  # work on the loop between two of its turns (see Pacer)

_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="uptally-render")
_running = 0
_lock = threading.Lock()
_paused_gc = False


async def run(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` in the render pool; the loop only awaits it."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
    return await loop.run_in_executor(_POOL, functools.partial(_without_gc_pauses, call))


def _without_gc_pauses(call: Callable[[], T]) -> T:
    """Run `call` with the cyclic garbage collector paused. A render allocates millions of
    objects, which sets off full collections; one holds the GIL, and so the event loop, for a
    quarter of a second at 3,000 monitors (measured). What a render leaves is freed by
    reference counting; the collector resumes when the last render ends.

    What the render keeps (the page model) is walked by the next collections on the loop's
    thread (about 130 ms at 10,000 monitors, measured). Freezing it instead (`gc.freeze`) was
    tried and taken out: freeze takes every tracked object, cyclic garbage of the whole process
    included, and the soak benchmark grew 61 MiB in 4 minutes at 10,000 monitors with it."""
    global _running, _paused_gc
    with _lock:
        _running += 1
        if _running == 1 and gc.isenabled():
            gc.disable()
            _paused_gc = True
    try:
        return call()
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _paused_gc:
                _paused_gc = False
                gc.enable()


class Pacer:
    """Lets the event loop turn once `every_s` of work has run on it since its last turn.

    For work that must stay on the loop (it reads state the loop changes) but is long in
    total: call `await pacer.tick()` once per item. A count of items per turn would be right
    on one machine only; on a loaded one a few hundred items already take a tenth of a second.
    """

    def __init__(self, every_s: float = TURN_EVERY_S) -> None:
        self.every_s = every_s
        self._since = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self._since >= self.every_s:
            await asyncio.sleep(0)
            self._since = time.perf_counter()
