"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from uptally import offloop
from uptally.evaluator.states import LocationState, MonitorState
from uptally.metrics import Metrics
from uptally.web import monitor_list
from uptally.web.deps import runtime_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


READY_TIMEOUT_S = 1.5  # a load balancer's probe must get its answer, whatever the database does


@router.get(
    "/readyz",
    responses={503: {"description": "the database does not answer, or writes to it fail"}},
)
async def readyz(request: Request) -> JSONResponse:
    """The database answers (within READY_TIMEOUT_S), writes to it succeed, and the runtime is
    started."""
    runtime = runtime_of(request)
    ping = asyncio.ensure_future(runtime.db.ping())
    try:
        # Not asyncio.timeout: cancelling a statement on a hung server takes seconds more (the
        # driver's cleanup), and this answer must not wait for it.
        await asyncio.wait({ping}, timeout=READY_TIMEOUT_S)
        if not ping.done():
            ping.cancel()
            _abandoned.add(ping)
            ping.add_done_callback(_forget)
            raise TimeoutError
        ping.result()
    except TimeoutError:
        return _unavailable(
            f"the database did not answer within {READY_TIMEOUT_S:g} s", "database_unavailable"
        )
    except Exception as error:
        return _unavailable(
            f"the database is unreachable: {type(error).__name__}", "database_unavailable"
        )
    if not runtime.started:
        return _unavailable("starting", "unavailable")
    health = runtime.ingest.health
    if health.failing:
        # Checks, states and alerts go on from memory, but nothing is stored: not ready.
        return _unavailable(f"database writes failing: {health.reason}", "database_writes_failing")
    return JSONResponse({"status": "ready"})


_abandoned: set[asyncio.Future[None]] = set()  # cancelled pings, kept until they end


def _forget(ping: asyncio.Future[None]) -> None:
    _abandoned.discard(ping)
    if not ping.cancelled():
        ping.exception()


def _unavailable(reason: str, code: str) -> JSONResponse:
    """503 with the reason, in both the probe's shape and the API's error shape."""
    return JSONResponse(
        {"status": "unavailable", "reason": reason, "error": {"code": code, "message": reason}},
        status_code=503,
    )


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format. The states are read on the loop a few milliseconds at a time;
    the series (one per monitor and location: tens of thousands) are set and written out in
    the render pool, so a scrape never holds the loop while checks are in flight."""
    runtime = runtime_of(request)
    instruments = runtime.metrics
    pacer = offloop.Pacer()
    counts = {state.value: 0 for state in MonitorState}
    up: list[tuple[str, str, bool]] = []
    for monitor in runtime.config.monitors:
        counts[monitor_list.state_of(runtime, monitor.id)] += 1
        up.extend(
            (snapshot.monitor, snapshot.location, snapshot.state == LocationState.UP)
            for snapshot in runtime.evaluator.location_snapshots(monitor.id)
            if snapshot.state != LocationState.UNKNOWN
        )
        await pacer.tick()
    instruments.queue_depth.set(runtime.ingest.pending)
    instruments.in_flight.set(runtime.probe.scheduler.in_flight)
    body = await offloop.run(_exposition, instruments, counts, up)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


_exposing = threading.Lock()  # two scrapes at once must not clear each other's series


def _exposition(
    instruments: Metrics, counts: dict[str, int], up: list[tuple[str, str, bool]]
) -> bytes:
    with _exposing:
        for state, count in counts.items():
            instruments.monitors.labels(state).set(count)
        instruments.set_monitors_up(up)
        return generate_latest(instruments.registry)
