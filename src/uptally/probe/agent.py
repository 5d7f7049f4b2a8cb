"""A remote probe agent: runs its location's monitors and forwards results to the hub.

It pulls its assignments (and keeps the last ones on disk, so it can start while the hub is
down), runs them with the same scheduler and checks as the hub's embedded probe, writes every
result to a durable local queue first and pushes the queue to the hub in order. When the hub
is unreachable it keeps checking and queueing, and replays when the hub returns; the hub
ingests by result id, so a replay or a retried batch never double-counts, and evaluates each
result at its own time. Canaries (independent of the hub) tell it whether its own network
works; failures seen while most of them fail are marked degraded. Whether the hub answers is
tracked apart and never makes a result degraded: an absent hub only means results wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from uptally import __version__
from uptally.checks.base import CheckFailed, user_agent
from uptally.checks.httpclient import HttpResponse, fetch
from uptally.clock import Clock, Millis, SystemClock, iso
from uptally.config.schema import ActiveMonitor, monitor_from_document
from uptally.metrics import Metrics
from uptally.probe.canary import DEFAULT_CANARIES, CanaryResult, NetworkJudge, check_canaries
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
# Where the canaries come from, first found wins (see canary_plan).
FROM_AGENT, FROM_HUB, FROM_DEFAULTS = "given to this agent", "the hub's config", "the defaults"
HUB_AWAY_REPORT_S = 60.0  # while the hub is unreachable, say so (and the queue depth) this often
RUNS_WAIT_S = 25.0  # the long poll for "check now" requests (the hub allows up to 30 s)
NO_RUNS_S = 300.0  # a hub without "check now" (404) is asked again this rarely


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
    canaries: list[str] | None = None  # given here (--canary): overrides the hub's list
    default_canaries: tuple[str, ...] = field(default=DEFAULT_CANARIES)


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
        self.degraded = False  # most canaries fail: this probe's own network is suspect
        self.canaries: list[CanaryResult] = []
        self.assignment_version: str | None = None
        self.connected = False  # the last exchange with the hub succeeded
        self.hub_unreachable_since: Millis | None = None  # apart from `degraded`, on purpose
        self._hub_said = 0.0  # monotonic time the absent hub was last reported
        self._skew_said: int | None = None  # the hub's correction last logged; None: in line
        self._clock_refused = False  # the hub refuses our results for our clock (said so)
        self._canary_targets: list[str] | None = None  # from the hub; None: not configured
        self._judge: NetworkJudge | None = None
        self._assigned = asyncio.Event()  # assignments known (from the hub or the cache)
        self._poll_interval = 30.0
        self._buffer: list[Result] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()  # "check now" runs in flight
        self.metrics.agent_queue_depth.set_function(self.queue.depth)
        self.metrics.agent_network_ok.set(1)

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
            self._run_requests(),
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
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
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
                if isinstance(error, HubError) and error.status < 500:
                    log.warning("the hub refuses assignments: %s", error)
                else:
                    self._hub_failed(error)
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
        canaries = document.get("canaries")  # null or absent: the hub configures none
        self._canary_targets = None if canaries is None else [str(c) for c in canaries]
        self._poll_interval = float(document.get("poll_interval_s") or 30)
        self._assigned.set()
        log.info("running %d monitors (assignments %s)", len(active), self.assignment_version)

    def _load_cached_assignment(self) -> None:
        cache = self.settings.queue_dir / "assignments.json"
        if cache.exists():
            try:
                self._apply_assignment(json.loads(cache.read_bytes()))
            except (ValueError, KeyError) as error:
                log.warning("ignoring cached assignments: %s", error)

    async def _run_requests(self) -> None:
        """Keep one long poll waiting for "check now" requests and run each at once (their
        results go out like any other, under the request's id). Failures are not logged here:
        the sender says when the hub is away."""
        delay = 1.0
        while True:
            try:
                response = await self._request("GET", f"/api/v1/probes/runs?wait={RUNS_WAIT_S:g}")
                if response.status == 404:  # an older hub: no "check now" for agents
                    await asyncio.sleep(NO_RUNS_S)
                    continue
                if response.status != 200:
                    raise HubError(response.status, response.text()[:300])
                runs = json.loads(response.body).get("runs", [])
                if not runs:  # the wait ended (or the hub is stopping): a breath, then again
                    await asyncio.sleep(0.2 + 0.8 * random.random())
                for run in runs:
                    task = asyncio.get_running_loop().create_task(
                        self.run_now(str(run["id"]), run["monitor"])
                    )
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                delay = 1.0
            except (CheckFailed, HubError, ValueError, KeyError, TypeError, OSError):
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, MAX_BACKOFF_S)

    async def run_now(self, request_id: str, document: Any) -> None:
        """Run the monitor the hub sent once, now, and send its result with `request_id`."""
        try:
            monitor = monitor_from_document(document)
        except ValueError as error:
            log.warning("the hub asked to run a monitor this agent cannot read: %s", error)
            return
        if not isinstance(monitor, ActiveMonitor):
            return
        self._checked(await self.runner.check_once(monitor, request_id))
        await self._flush()

    async def _sender(self) -> None:
        delay = 1.0
        while True:
            try:
                sent = await self.send_once()
                delay = 1.0
                self._hub_answered()
            except (CheckFailed, HubError, ValueError, OSError) as error:
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
            self._hub_failed(error)
        elif not self._clock_refused:  # said once: the refusal lasts until the clock is fixed
            self.connected = False
            log.warning("the hub refuses this probe's results (they stay queued): %s", refusal)
            self._clock_refused = True

    # -- the hub's reachability (never a reason to call results degraded) ---------------------

    def _hub_failed(self, error: Exception) -> None:
        """Said when the hub is first missed, then every HUB_AWAY_REPORT_S, not per retry."""
        self.connected = False
        now = time.monotonic()
        if self.hub_unreachable_since is None:
            self.hub_unreachable_since = self.clock.now_ms()
            self.metrics.agent_hub_reachable.set(0)
            self.metrics.agent_hub_unreachable_since.set(self.hub_unreachable_since / 1000)
            log.warning("%s: checking goes on, results wait for it (%s)", self.hub_status(), error)
            self._hub_said = now
        elif now - self._hub_said >= HUB_AWAY_REPORT_S:
            self._hub_said = now
            log.warning("%s (last error: %s)", self.hub_status(), error)

    def _hub_answered(self) -> None:
        self.connected = True
        self.metrics.agent_hub_reachable.set(1)
        if self.hub_unreachable_since is not None:
            away_s = (self.clock.now_ms() - self.hub_unreachable_since) / 1000
            self.hub_unreachable_since = None
            self.metrics.agent_hub_unreachable_since.set(0)
            log.warning(
                "hub %s reachable again after %.0fs; replaying %d queued results",
                self.hub,
                away_s,
                self.queue.depth(),
            )

    def hub_status(self) -> str:
        """One line on the hub's reachability and the queue, e.g. for logs."""
        depth = self.queue.depth()
        if self.hub_unreachable_since is None:
            return f"hub {self.hub} reachable, {depth} results queued"
        return (
            f"hub {self.hub} unreachable since {iso(self.hub_unreachable_since)}, "
            f"{depth} results queued"
        )

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
        if self.settings.canaries is None:
            await self._assigned.wait()  # the hub's config may name the canaries
        while True:
            await self.check_canaries()
            await asyncio.sleep(self.settings.canary_interval_s)

    def canary_plan(self) -> tuple[list[str], str]:
        """The canaries to check and where they come from: --canary, the hub, or the defaults."""
        if self.settings.canaries is not None:
            return list(self.settings.canaries), FROM_AGENT
        if self._canary_targets is not None:
            return list(self._canary_targets), FROM_HUB
        return list(self.settings.default_canaries), FROM_DEFAULTS

    async def check_canaries(self) -> bool:
        """Degraded when most canaries fail (see NetworkJudge); the hub is not a canary: an
        agent that loses the hub still sees the targets, and its failures still count."""
        targets, source = self.canary_plan()
        if self._judge is None or self._judge.targets != tuple(targets):
            self._judge = NetworkJudge(targets, defaults=source == FROM_DEFAULTS)
            self.metrics.agent_canary_up.clear()
            log.info("canaries from %s: %s", source, ", ".join(targets) or "none (check off)")
        self.canaries = await check_canaries(targets, self.settings.location)
        verdict = self._judge.judge(self.canaries)
        if verdict.news:
            log.log(logging.WARNING if verdict.loud else logging.INFO, "%s", verdict.news)
        self.degraded = verdict.degraded
        self.metrics.agent_network_ok.set(0 if self.degraded else 1)
        for canary in self.canaries:
            self.metrics.agent_canary_up.labels(canary.target).set(1 if canary.ok else 0)
        return self.degraded


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
