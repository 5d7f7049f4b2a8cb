"""`uptally probe`: run a remote probe agent for one location."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from uptally import __version__
from uptally.cli.app import EXIT_OK, EXIT_USAGE, app, err, out, run_async
from uptally.durations import parse_duration_ms


@app.command()
def probe(
    hub: Annotated[str, typer.Option(help="The hub's base URL, e.g. https://status.example.com")],
    location: Annotated[str, typer.Option(help="This agent's location name (as in the config).")],
    token: Annotated[str, typer.Option(envvar="UPTALLY_PROBE_TOKEN", help="The location's token.")],
    queue_dir: Annotated[
        Path | None,
        typer.Option(help="Where results wait for the hub (default ./uptally-probe-NAME)."),
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Checks running at once.")] = 500,
    max_queue: Annotated[int, typer.Option(help="Results kept while the hub is away.")] = 1_000_000,
    max_age: Annotated[str, typer.Option(help="Oldest result kept while the hub is away.")] = "7d",
    canary_interval: Annotated[str, typer.Option(help="How often to check the canaries.")] = "30s",
    canary: Annotated[
        list[str] | None,
        typer.Option(
            envvar="UPTALLY_PROBE_CANARIES",
            help="A canary (http(s)://… or tcp://host:port), repeatable; overrides the hub's"
            " list and the defaults. The variable takes several, separated by spaces.",
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(help="Serve this agent's Prometheus metrics on HOST:PORT (default: off)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run a remote probe agent: check this location's monitors, queue and forward results."""
    from prometheus_client import start_http_server

    from uptally.cli.core import tune_gc
    from uptally.config.schema import canary_target
    from uptally.metrics import Metrics
    from uptally.probe.agent import Agent, AgentSettings

    if not hub.lower().startswith(("http://", "https://")):
        err.print(f"--hub must be an http(s) URL, not {hub!r}", markup=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        age = parse_duration_ms(max_age)
        canaries_every = parse_duration_ms(canary_interval) / 1000
        canaries = None if canary is None else [canary_target(c) for c in canary]
        listen = _listen_address(metrics_listen) if metrics_listen else None
    except ValueError as error:
        err.print(str(error), markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = AgentSettings(
        hub=hub,
        token=token,
        location=location,
        queue_dir=queue_dir or Path(f"uptally-probe-{location}"),
        concurrency=concurrency,
        max_queue=max_queue,
        max_age_ms=age,
        canary_interval_s=canaries_every,
        canaries=canaries,
    )
    metrics = Metrics()
    if listen is not None:
        try:
            start_http_server(listen[1], listen[0], registry=metrics.registry)
        except OSError as error:
            err.print(f"--metrics-listen {metrics_listen}: {error.strerror or error}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None

    async def main() -> None:
        agent = Agent(settings, metrics=metrics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, agent.request_stop)
        await agent.start()
        tune_gc()
        out.print(
            f"uptally {__version__} probe {location} → {hub} (queue {settings.queue_dir})",
            markup=False,
        )
        await agent.stopped()
        err.print("stopping: finishing running checks; queued results stay on disk", markup=False)
        await agent.stop()

    run_async(main())
    raise typer.Exit(EXIT_OK)


def _listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--metrics-listen is HOST:PORT (e.g. 127.0.0.1:9464), not {value!r}")
    return host.strip("[]"), int(port)
