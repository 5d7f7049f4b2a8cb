"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from uptally.evaluator.states import LocationState
from uptally.web.deps import runtime_of

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database is unreachable"}})
async def readyz(request: Request) -> JSONResponse:
    """The database answers and the runtime is started."""
    runtime = runtime_of(request)
    try:
        await runtime.db.ping()
    except Exception as error:
        return JSONResponse(
            {
                "error": {
                    "code": "unavailable",
                    "message": f"database unreachable: {type(error).__name__}",
                }
            },
            status_code=503,
        )
    if not runtime.started:
        return JSONResponse(
            {"error": {"code": "unavailable", "message": "starting"}}, status_code=503
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    runtime = runtime_of(request)
    instruments = runtime.metrics
    for state, count in runtime.state_counts().items():
        instruments.monitors.labels(state).set(count)
    instruments.set_monitors_up(
        (snapshot.monitor, snapshot.location, snapshot.state == LocationState.UP)
        for monitor in runtime.config.monitors
        for snapshot in runtime.evaluator.location_snapshots(monitor.id)
        if snapshot.state != LocationState.UNKNOWN
    )
    instruments.queue_depth.set(runtime.ingest.pending)
    instruments.in_flight.set(runtime.probe.scheduler.in_flight)
    return Response(generate_latest(instruments.registry), media_type=CONTENT_TYPE_LATEST)
