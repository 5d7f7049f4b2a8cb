"""A remote probe agent: runs its location's monitors and forwards results to the hub.

It pulls its assignments (and keeps the last ones on disk, so it can start while the hub is
down), runs them with the same scheduler and checks as the hub's embedded probe, writes every
result to a durable local queue first and pushes the queue to the hub in order. When the hub
is unreachable it keeps checking and queueing, and replays when the hub returns; the hub
ingests by result id, so a replay or a retried batch never double-counts. Canaries tell it
whether its own network works; failures seen while they all fail are marked degraded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from uptally import __version__
from uptally.checks.base import CheckFailed, user_agent
from uptally.checks.httpclient import HttpResponse, fetch
from uptally.clock import Clock, SystemClock
from uptally.config.schema import ActiveMonitor, monitor_from_document
from uptally.metrics import Metrics
from uptally.probe.canary import CanaryResult, check_canaries
from uptally.probe.queue import DroppedSummary, ResultQueue
from uptally.probe.runner import ProbeRunner
from uptally.results import Result
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

FLUSH_S = 0.2  # how often checked results move from memory to the queue
REPORT_INTERVAL_S = 10.0  # contact the hub at least this often, even with nothing to send
REQUEST_TIMEOUT_S = 30.0
MAX_BACKOFF_S = 30.0
SKEW_CHANGE_MS = 1000  # a corrected offset that moves less than this (or 10%) is not news


@dataclass(slots=True)
class AgentSettings:
    hub: str
    token: str
    location: str
    queue_dir: Path
    concurrency: int = 500
    batch_size: int = 1000
    max_queue: int = 1_000_000
    max_age_ms: int = 7 * 86_400_000
    canary_interval_s: float = 30.0


class HubError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"hub answered {status}: {body}")
        self.status = status
        self.body = body


class Agent:
    def __init__(
        self, settings: AgentSettings, clock: Clock | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.hub = settings.hub.rstrip("/")
        self.queue = ResultQueue(
            settings.queue_dir / "queue.db",
            settings.location,
            settings.max_queue,
            settings.max_age_ms,
        )
        self.runner = ProbeRunner(
            settings.location, self._checked, self.clock, self.metrics, settings.concurrency
        )
        self.degraded = False
        self.canaries: list[CanaryResult] = []
        self.assignment_version: str | None = None
        self.connected = False  # the last exchange with the hub succeeded
        self._skew_said: int | None = None  # the hub's correction last logged; None: in line
        self._clock_refused = False  # the hub refuses our results for our clock (said so)
        self._canary_targets: list[str] = []
        self._poll_interval = 30.0
        self._buffer: list[Result] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._load_cached_assignment()
        loop = asyncio.get_running_loop()
        self.runner.start()
        for coroutine in (
            self._assignments(),
            self._flusher(),
            self._sender(),
            self._canary_loop(),
        ):
            self._tasks.append(loop.create_task(coroutine))

    async def run(self) -> None:
        await self.start()
        await self.stopped()
        await self.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    async def stopped(self) -> None:
        """Wait until a stop is requested."""
        await self._stopping.wait()

    async def stop(self) -> None:
        """Stop checking, let running checks finish, keep everything queued on disk."""
        self._stopping.set()
        await self.runner.stop()
        await self._flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await asyncio.to_thread(self.queue.close)

    # -- checking ----------------------------------------------------------------------------

    def _checked(self, result: Result) -> None:
        if self.degraded and not result.ok:
            result = replace(result, degraded=True)
        self._buffer.append(result)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            await self._flush()

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        await asyncio.to_thread(self.queue.put, batch, self.clock.now_ms())
        self._wake.set()

    # -- talking to the hub ----------------------------------------------------------------

    async def _request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        loop = asyncio.get_running_loop()
        all_headers = {"Authorization": f"Bearer {self.settings.token}", **(headers or {})}
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":")).encode()
            all_headers["Content-Type"] = "application/json"
        return await fetch(
            self.hub + path,
            method=method,
            headers=all_headers,
            body=payload,
            user_agent=user_agent(self.settings.location),
            deadline=loop.time() + REQUEST_TIMEOUT_S,
            follow_redirects=False,
            max_body=256 << 20,
        )

    async def _assignments(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.refresh_assignments()
                delay = self._poll_interval
            except (CheckFailed, HubError, ValueError) as error:
                log.warning("cannot get assignments from %s: %s", self.hub, error)
                delay = min(delay * 2, MAX_BACKOFF_S)
            await asyncio.sleep(delay)

    async def refresh_assignments(self) -> bool:
        """Fetch assignments; True if they changed."""
        headers = (
            {"If-None-Match": f'"{self.assignment_version}"'} if self.assignment_version else {}
        )
        response = await self._request("GET", "/api/v1/probes/assignments", headers=headers)
        if response.status == 304:
            return False
        if response.status != 200:
            raise HubError(response.status, response.text()[:300])
        document = json.loads(response.body)
        self._apply_assignment(document)
        cache = self.settings.queue_dir / "assignments.json"
        await asyncio.to_thread(cache.write_bytes, response.body)
        return True

    def _apply_assignment(self, document: dict[str, Any]) -> None:
        monitors = [monitor_from_document(m) for m in document["monitors"]]
        active = [m for m in monitors if isinstance(m, ActiveMonitor)]
        self.runner.set_monitors(active)
        self.assignment_version = document["version"]
        self._canary_targets = list(document.get("canaries") or [])
        self._poll_interval = float(document.get("poll_interval_s") or 30)
        log.info("running %d monitors (assignments %s)", len(active), self.assignment_version)

    def _load_cached_assignment(self) -> None:
        cache = self.settings.queue_dir / "assignments.json"
        if cache.exists():
            try:
                self._apply_assignment(json.loads(cache.read_bytes()))
            except (ValueError, KeyError) as error:
                log.warning("ignoring cached assignments: %s", error)

    async def _sender(self) -> None:
        delay = 1.0
        while True:
            try:
                sent = await self.send_once()
                delay = 1.0
                self.connected = True
            except (CheckFailed, HubError, ValueError, OSError) as error:
                self.connected = False
                self._send_failed(error)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            if not sent:
                await wait_event(self._wake, REPORT_INTERVAL_S)
                self._wake.clear()

    def _send_failed(self, error: Exception) -> None:
        refusal = _clock_refusal(error)
        if refusal is None:
            log.warning(
                "cannot reach the hub %s (will retry, results are queued): %s", self.hub, error
            )
        elif not self._clock_refused:  # said once: the refusal lasts until the clock is fixed
            log.warning("the hub refuses this probe's results (they stay queued): %s", refusal)
            self._clock_refused = True

    async def send_once(self) -> int:
        """Push the oldest queued results (or just a report); returns how many were sent."""
        batch = await asyncio.to_thread(self.queue.peek, self.settings.batch_size)
        dropped = await asyncio.to_thread(self.queue.dropped)
        body = self._batch_body(batch, dropped)
        response = await self._request("POST", "/api/v1/probes/results", body)
        answer = _json(response)
        if response.status == 403 and isinstance(answer, dict) and answer.get("rejected"):
            # Monitors no longer assigned here (the config changed): those results are void.
            rejected = [str(i) for i in answer["rejected"]]
            log.warning("the hub refused %d results for unassigned monitors", len(rejected))
            await asyncio.to_thread(self.queue.ack, rejected)
            return len(rejected)
        if response.status != 200:
            raise HubError(response.status, answer)
        await asyncio.to_thread(self.queue.ack, [r.id for r in batch])
        if dropped:
            await asyncio.to_thread(self.queue.ack_dropped, dropped)
        if isinstance(answer, dict):
            self._note_clock(bool(answer.get("corrected")), int(answer.get("clock_offset_ms") or 0))
        return len(batch)

    def _note_clock(self, corrected: bool, offset_ms: int) -> None:
        """Log when the hub starts correcting this probe's clock, when the correction changes
        materially and when it stops; not on every batch."""
        if self._clock_refused:
            log.info("the hub takes this probe's results again")
            self._clock_refused = False
        said = self._skew_said
        if corrected:
            if said is None or abs(offset_ms - said) >= max(SKEW_CHANGE_MS, abs(said) // 10):
                log.warning(
                    "this probe's clock is %+.1fs off the hub's: the hub corrects its results; "
                    "fix its time (NTP)",
                    -offset_ms / 1000,
                )
                self._skew_said = offset_ms
        elif said is not None:
            log.info("this probe's clock is in line with the hub's again")
            self._skew_said = None

    def _batch_body(self, batch: list[Result], dropped: list[DroppedSummary]) -> dict[str, Any]:
        return {
            "location": self.settings.location,
            "sent_at": self.clock.now_ms(),
            "agent": {
                "version": __version__,
                "queue_depth": max(0, self.queue.depth() - len(batch)),  # left after this one
                "degraded": self.degraded,
                "canaries": [
                    {"target": c.target, "ok": c.ok, "error": c.error} for c in self.canaries
                ],
                "dropped": [
                    {
                        "monitor": d.monitor,
                        "first_at": d.first_at,
                        "last_at": d.last_at,
                        "count": d.count,
                        "failures": d.failures,
                    }
                    for d in dropped
                ],
            },
            "results": [
                {
                    "id": r.id,
                    "monitor": r.monitor,
                    "at": r.at,
                    "ok": r.ok,
                    "latency_ms": r.latency_ms,
                    "error": r.error,
                    "message": r.message,
                    "degraded": r.degraded,
                }
                for r in batch
            ],
        }

    # -- canaries ----------------------------------------------------------------------------

    async def _canary_loop(self) -> None:
        while True:
            await self.check_canaries()
            await asyncio.sleep(self.settings.canary_interval_s)

    async def check_canaries(self) -> bool:
        """Degraded when no canary is reachable: the configured ones, or else the hub itself.

        A hub that answers proves little about the way to the targets (it may sit on a private
        link), so configured canaries replace it rather than join it.
        """
        targets = self._canary_targets or [f"{self.hub}/healthz"]
        self.canaries = await check_canaries(targets, self.settings.location)
        degraded = not any(c.ok for c in self.canaries)
        if degraded != self.degraded:
            if degraded:
                log.warning(
                    "no canary reachable (%s): failures now count as degraded",
                    "; ".join(f"{c.target}: {c.error}" for c in self.canaries),
                )
            else:
                log.info("canaries reachable again")
        self.degraded = degraded
        return degraded


def _clock_refusal(error: Exception) -> str | None:
    """The hub's message when it refused a batch for this probe's clock, else None."""
    if isinstance(error, HubError) and isinstance(error.body, dict):
        detail = error.body.get("error")
        if isinstance(detail, dict) and detail.get("code") == "clock_skew":
            return str(detail.get("message"))
    return None


def _json(response: HttpResponse) -> Any:
    try:
        return json.loads(response.body)
    except ValueError:
        return response.text()[:300]
