"""Runs a location's active monitors on the scheduler and hands each result to a sink."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from uptally.checks.base import CheckResult, ErrorCode
from uptally.checks.net import guarded
from uptally.checks.registry import run_check
from uptally.clock import Clock, Millis
from uptally.config.schema import ActiveMonitor
from uptally.config.secretrefs import names_in, resolved
from uptally.ids import new_id
from uptally.metrics import Metrics
from uptally.netguard import Guard
from uptally.probe.secretsource import SecretUnavailable
from uptally.redaction import Redactor
from uptally.results import Result
from uptally.scheduler import Scheduler

SecretSource = Callable[[set[str]], Awaitable[dict[str, str]]]


# First checks of monitors made while running, at most this many a second (a batch of ten
# thousand would otherwise start ten thousand checks at once and make every check late).
FIRST_CHECKS_PER_S = 1000


class ProbeRunner:
    def __init__(
        self,
        location: str,
        sink: Callable[[Result], None],
        clock: Clock,
        metrics: Metrics,
        concurrency: int = 500,
        *,
        secrets: SecretSource | None = None,
        redactor: Callable[[], Redactor] = Redactor,
        guard: Callable[[str], Guard | None] = lambda _key: None,
    ) -> None:
        self.location = location
        self._guard = guard  # the SSRF guard over a monitor's checks, by monitor id (or None)
        self._secrets = secrets  # fills in ${secret:NAME}; None: references are not resolved here
        self._redactor = redactor
        self._sink = sink
        self._clock = clock
        self._metrics = metrics
        self._monitors: dict[str, ActiveMonitor] = {}
        self._given: list[ActiveMonitor] = []  # as last set, paused ones included
        self._paused: frozenset[str] = frozenset()
        self._references: dict[str, set[str]] = {}  # monitor id -> secret names it refers to
        self.scheduler = Scheduler(
            self._run, concurrency, on_lateness=lambda ms: metrics.lateness.observe(ms / 1000)
        )
        self._task: asyncio.Task[None] | None = None

    def set_monitors(
        self, monitors: Iterable[ActiveMonitor], failed: Mapping[str, Millis] | None = None
    ) -> None:
        """Run exactly these monitors from now on (added, changed and removed ones). `failed`:
        when the last check of a monitor failed here (from the state kept across a restart), so
        that it is re-checked after its retry interval, as if uptally had not stopped. Paused
        monitors (`set_paused`) are left out until they resume."""
        self._given = list(monitors)
        wanted = {
            m.id: m
            for m in self._given
            if m.enabled and self.location in m.locations and m.id not in self._paused
        }
        for key in self.scheduler.scheduled():
            if key not in wanted:
                self.scheduler.remove(key)
        now = self._clock.now_ms()
        failed = failed or {}
        for key, monitor in wanted.items():
            at = failed.get(key)
            ago = None if at is None else max(0, now - at)
            self.scheduler.upsert(key, monitor.interval, monitor.retry_interval, ago)
        self._monitors = wanted
        self._references = {key: names_in(monitor) for key, monitor in wanted.items()}
        self._metrics.scheduled.set(len(wanted))

    def update(self, changed: Iterable[ActiveMonitor], removed: Iterable[str]) -> None:
        """Apply a few changes while running (the rest stays as it is): a monitor new here is
        checked within a second (many new at once: spread at `FIRST_CHECKS_PER_S`), a changed
        one at its next check with its new settings."""
        changed = list(changed)
        new_here = sum(1 for m in changed if m.id not in self._monitors)
        within = 1000.0 * max(1.0, new_here / FIRST_CHECKS_PER_S)
        given = {m.id: m for m in self._given}
        for key in removed:
            given.pop(key, None)
            self.scheduler.remove(key)
            self._monitors.pop(key, None)
            self._references.pop(key, None)
        for monitor in changed:
            given[monitor.id] = monitor
            here = monitor.enabled and self.location in monitor.locations
            if not here or monitor.id in self._paused:
                self.scheduler.remove(monitor.id)
                self._monitors.pop(monitor.id, None)
                self._references.pop(monitor.id, None)
                continue
            new = monitor.id not in self._monitors
            self._monitors[monitor.id] = monitor
            self._references[monitor.id] = names_in(monitor)
            self.scheduler.upsert(
                monitor.id,
                monitor.interval,
                monitor.retry_interval,
                start_within_ms=min(within, monitor.interval) if new else None,
            )
        self._given = list(given.values())
        self._metrics.scheduled.set(len(self._monitors))

    def set_paused(self, paused: frozenset[str]) -> None:
        """Stop running these monitors (a check in flight still reports), and run again those
        that are no longer paused."""
        self._paused = paused
        self.set_monitors(self._given)

    def monitor(self, key: str) -> ActiveMonitor | None:
        return self._monitors.get(key)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.scheduler.run())

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _check(self, monitor: ActiveMonitor, names: set[str]) -> CheckResult:
        redactor = self._redactor()
        if names:
            if self._secrets is None:
                message = "${secret:…} references are resolved by `uptally serve` only"
                return CheckResult.failure(ErrorCode.INTERNAL, message, None)
            try:
                values = await self._secrets(names)
            except SecretUnavailable as error:
                return CheckResult.failure(ErrorCode.INTERNAL, str(error), None)
            monitor = resolved(monitor, values)
            redactor = redactor.including(values.values())
        with guarded(self._guard(monitor.id)):  # checked at connect time: no rebinding past it
            return await run_check(monitor, self.location, redactor)

    async def trial(self, monitor: ActiveMonitor) -> CheckResult:
        """Run a monitor that is not saved once, for a person ("test before save"): secrets
        are resolved as for a real check; nothing is counted, handed on or kept."""
        return await self._check(monitor, names_in(monitor))

    async def check_once(self, monitor: ActiveMonitor, result_id: str | None = None) -> Result:
        """Run `monitor` once now, apart from its schedule ("check now"); the result is
        returned, not handed to the sink. `result_id`: the id it must carry (else a new one)."""
        return await self._execute(monitor, names_in(monitor), result_id)

    async def _run(self, key: str) -> bool:
        monitor = self._monitors.get(key)
        if monitor is None:
            return True
        result = await self._execute(monitor, self._references.get(key, set()))
        self._sink(result)
        return result.ok

    async def _execute(
        self, monitor: ActiveMonitor, names: set[str], result_id: str | None = None
    ) -> Result:
        at = self._clock.now_ms()
        self._metrics.in_flight.inc()
        try:
            outcome = await self._check(monitor, names)
        finally:
            self._metrics.in_flight.dec()
        kind = monitor.kind  # type: ignore[attr-defined]
        self._metrics.checks.labels(kind, self.location, "up" if outcome.ok else "down").inc()
        if outcome.latency_ms is not None:
            self._metrics.check_latency.labels(kind).observe(outcome.latency_ms / 1000)
        if outcome.error is not None:
            self._metrics.check_errors.labels(kind, outcome.error.value).inc()
        return Result(
            result_id or new_id(at),
            monitor.id,
            self.location,
            at,
            outcome.ok,
            None if outcome.latency_ms is None else round(outcome.latency_ms, 3),
            None if outcome.error is None else outcome.error.value,
            outcome.message,
        )
