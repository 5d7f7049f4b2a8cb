"""Rendered pages and documents, built once per version of the data and served with ETags.

The model is rebuilt when something happened (a state change, an outage, an incident, a
maintenance window: every such change writes an outbox event or a status, and `touch()` is
called) or when it is older than `max_age_s` (uptime and latency drift with time). A rush of
visitors triggers at most one rebuild at a time, and never waits for it: the fast path keeps
serving the previous bytes (stale-while-revalidate) while a background rebuild makes the new
model and re-renders the documents asked for since the last one, then swaps them in at once.
Only a request for something not rendered yet waits for a current model.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate

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
    # Response headers as sent, per "gzipped?", filled in by the web layer on first use.
    wire: dict[bool, list[tuple[bytes, bytes]]] = field(default_factory=dict, compare=False)

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


Renderer = Callable[[PageModel], Awaitable[tuple[bytes, str] | None]]


class PageCache:
    def __init__(self, build: Callable[[], Awaitable[PageModel]], max_age_s: float = 60.0) -> None:
        self._build = build
        self.max_age_s = max_age_s
        self._model: PageModel | None = None
        self._built = 0.0
        self._version = 0  # bumped by touch()
        self._model_version = -1
        self._rendered: dict[str, Rendered] = {}
        self._renderers: dict[str, tuple[Renderer, str]] = {}
        self._used: set[str] = set()  # asked for since the last rebuild: re-rendered by it
        self._lock = asyncio.Lock()
        self._revalidating: asyncio.Task[None] | None = None
        self.builds = 0

    def touch(self) -> None:
        """Something changed: rebuild (in the background for the fast path)."""
        self._version += 1

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
        """The rendering of `key` if there is one, without waiting: possibly a moment old, in
        which case a background rebuild is started."""
        rendered = self._rendered.get(key)
        if rendered is not None:
            self._used.add(key)
            if not self._fresh():
                self.revalidate()
        return rendered

    def revalidate(self) -> None:
        """Start a background rebuild unless one is running or the model is current."""
        if self._revalidating is None and not self._fresh():
            self._revalidating = asyncio.get_running_loop().create_task(self._revalidate())

    async def _revalidate(self) -> None:
        try:
            await self.model()
        except Exception:
            log.exception("rebuilding the status page failed; serving the previous one")
        finally:
            self._revalidating = None

    async def _rebuild(self) -> None:
        version = self._version
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
        self._built = time.monotonic()
        self._model_version = version
        self.builds += 1

    def _fresh(self) -> bool:
        return (
            self._model is not None
            and self._model_version == self._version
            and time.monotonic() - self._built < self.max_age_s
        )


async def _render(model: PageModel, render: Renderer, cache_control: str) -> Rendered | None:
    produced = await render(model)
    if produced is None:
        return None
    body, content_type = produced
    return Rendered(
        body,
        content_type,
        '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"',
        formatdate(model.generated_at / 1000, usegmt=True),
        cache_control,
        gzip.compress(body, 6, mtime=0) if len(body) > 1024 else None,
    )
