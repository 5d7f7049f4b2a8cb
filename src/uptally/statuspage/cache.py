"""Rendered pages and documents, built once per version of the data and served with ETags.

A change (a state change, an outage, an incident, a maintenance window: every such change
writes an outbox event or a status, and `touch()` is called) starts a rebuild by itself, a
moment later (`debounce_s`, so that a burst of changes costs one rebuild), whether anyone is
looking or not. A rush of visitors never waits for it: the fast path keeps serving the previous
bytes (stale-while-revalidate) while the background rebuild makes the new model and re-renders
the documents asked for since the last one, then swaps them in at once. That lasts at most
`grace_s` after a change: from then on, a visitor who would get bytes from before it waits for
the rebuild instead (the same one for everyone). A model older than `max_age_s` (uptime and
latency drift with time) is rebuilt on the next visit, likewise served stale for at most
`grace_s`. Only a request for something not rendered yet always waits for a current model.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

from uptally import offloop
from uptally.statuspage.model import PageModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    cache_control: str
    gzipped: bytes | None = None  # compressed once, for every client that accepts gzip
    # Response headers as sent, per (gzipped?, cross-origin?), filled in by the web layer.
    wire: dict[tuple[bool, bool], list[tuple[bytes, bytes]]] = field(
        default_factory=dict, compare=False
    )

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


# Produces a document's bytes from the model; it runs the rendering itself off the event loop
# (`offloop.run`), reading the database first if it must.
Renderer = Callable[[PageModel], Awaitable[tuple[bytes, str] | None]]


DEBOUNCE_S = 0.25  # a change is rebuilt this long after it, with those that follow it meanwhile
GRACE_S = 1.0  # bytes from before a change are served this long after it, not longer
RETRY_S = 1.0  # after a failed rebuild


class PageCache:
    def __init__(
        self,
        build: Callable[[], Awaitable[PageModel]],
        max_age_s: float = 60.0,
        *,
        debounce_s: float = DEBOUNCE_S,
        grace_s: float = GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.max_age_s = max_age_s
        self.debounce_s = debounce_s
        self.grace_s = grace_s
        self._clock = clock
        self._model: PageModel | None = None
        self._built = 0.0
        self._build_s = 0.0  # how long the last rebuild took
        self._version = 0  # bumped by touch()
        self._model_version = -1
        self._started_version = -1  # what the latest rebuild began with
        # When a change not in the model was made: the first one after each rebuild began (those
        # after it are in the same rebuild, later); `_due` is the oldest of them plus the grace.
        self._changes: dict[int, float] = {}
        self._due = math.inf
        self._rendered: dict[str, Rendered] = {}
        self._renderers: dict[str, tuple[Renderer, str]] = {}
        self._used: set[str] = set()  # asked for since the last rebuild: re-rendered by it
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._revalidating: asyncio.Task[None] | None = None
        self._closed = False
        self._failing = False  # the last rebuild in the background failed
        self.builds = 0

    def touch(self) -> None:
        """Something changed: rebuild in the background, `debounce_s` from now."""
        self._version += 1
        if not self._changes or max(self._changes) <= self._started_version:
            now = self._clock()
            self._changes[self._version] = now
            self._due = min(self._due, now + self.grace_s)
        self._schedule()

    @property
    def version(self) -> int:
        return self._version

    async def model(self) -> PageModel:
        """A current model, waiting for a rebuild if need be."""
        if not self._fresh():
            async with self._lock:  # one rebuild for a rush of requests
                if not self._fresh():
                    await self._rebuild()
        assert self._model is not None
        return self._model

    async def get(self, key: str, render: Renderer, cache_control: str) -> Rendered | None:
        """The cached rendering of `key` (rendered now if missing); None if there is none."""
        model = await self.model()
        self._renderers[key] = (render, cache_control)
        self._used.add(key)
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = await _render(model, render, cache_control)
            if rendered is None:
                return None
            if self._model is model:  # not replaced by a rebuild meanwhile
                self._rendered[key] = rendered
        return rendered

    def peek(self, key: str) -> Rendered | None:
        """The rendering of `key` if it may be served without waiting (possibly from before a
        change made less than `grace_s` ago, while the rebuild runs); None when the request
        must take the full path, which renders it or waits for the rebuild."""
        rendered = self._rendered.get(key)
        if rendered is None:
            return None
        self._used.add(key)
        now = self._clock()
        age = now - self._built
        changed = self._model_version != self._version
        if not changed and age < self.max_age_s:
            return rendered
        if age < self.max_age_s + self.grace_s and not (changed and now >= self._due):
            if changed:
                self._schedule()  # in case it was touched where no loop ran
            else:
                self.revalidate()
            return rendered
        if self._failing:
            return rendered  # the data cannot be read now: the last page beats an error
        self.revalidate()  # at once, should the debounce still be running
        return None

    def revalidate(self) -> None:
        """Start a background rebuild unless one is running or the model is current."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._revalidating is None and not self._fresh() and not self._closed:
            self._revalidating = asyncio.get_running_loop().create_task(self._revalidate())

    def close(self) -> None:
        """Stop rebuilding in the background (the process is stopping)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._revalidating is not None:
            self._revalidating.cancel()

    def _schedule(self, at_least: float = 0.0) -> None:
        """Start a rebuild `debounce_s` after the oldest change not in the model (and not
        sooner than the last rebuild lasted after it ended: a storm of changes costs at most
        about half the time in rebuilds)."""
        if self._timer is not None or self._revalidating is not None or self._closed:
            return
        if not self._changes or self._model is None:  # nobody has looked yet: nothing to do
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a command, not a server): the next request rebuilds
            return
        now = self._clock()
        delay = max(
            min(self._changes.values()) + self.debounce_s - now,
            self._built + self._build_s - now,
            at_least,
            0.0,
        )
        self._timer = loop.call_later(delay, self.revalidate)

    async def _revalidate(self) -> None:
        retry = 0.0
        try:
            await self.model()
        except Exception:
            log.exception("rebuilding the status page failed; serving the previous one")
            self._failing, retry = True, RETRY_S
        finally:
            self._revalidating = None
        self._schedule(retry)  # changes made while it ran

    async def _rebuild(self) -> None:
        version = self._started_version = self._version
        started = self._clock()
        model = await self._build()
        used, self._used = self._used, set()
        rendered: dict[str, Rendered] = {}
        for key in used:
            if key not in self._renderers:  # first asked for during the previous rebuild
                continue
            render, cache_control = self._renderers[key]
            fresh = await _render(model, render, cache_control)
            if fresh is not None:
                rendered[key] = fresh
            await asyncio.sleep(0)  # let the fast path answer between renderings
        for key in set(self._renderers) - used:
            del self._renderers[key]
        self._model, self._rendered = model, rendered
        self._built = self._clock()
        self._build_s = self._built - started
        self._model_version = version
        self._changes = {v: at for v, at in self._changes.items() if v > version}
        self._due = min(self._changes.values(), default=math.inf) + self.grace_s
        self._failing = False
        self.builds += 1

    def _fresh(self) -> bool:
        return (
            self._model is not None
            and self._model_version == self._version
            and self._clock() - self._built < self.max_age_s
        )


async def _render(model: PageModel, render: Renderer, cache_control: str) -> Rendered | None:
    """`render` (which renders off the loop) and then, also off the loop, the ETag and the
    compressed copy (gzip of a page of megabytes takes a tenth of a second)."""
    produced = await render(model)
    if produced is None:
        return None
    body, content_type = produced
    return await offloop.run(_rendered, body, content_type, model.generated_at, cache_control)


def _rendered(body: bytes, content_type: str, at: float, cache_control: str) -> Rendered:
    return Rendered(
        body,
        content_type,
        '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        formatdate(at / 1000, usegmt=True),
        cache_control,
        gzip.compress(body, 6, mtime=0) if len(body) > 1024 else None,
    )
