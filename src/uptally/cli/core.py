"""`uptally serve`, `validate` and `check`: running the platform and its checks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
import uvicorn
from rich.table import Table

from uptally import __version__
from uptally.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ConfigOption,
    DataDirOption,
    app,
    err,
    load_or_exit,
    out,
    print_table,
    run_async,
)
from uptally.config import Config
from uptally.config.schema import ActiveMonitor, ExternalMonitor, HeartbeatMonitor
from uptally.heap import limit_arenas, release_free_memory

if TYPE_CHECKING:
    from uptally.runtime import Runtime
    from uptally.store.database import Database


@app.command()
def validate(config: ConfigOption) -> None:
    """Check a config file; print every problem as FILE:LINE: message (exit 2 if any)."""
    loaded = load_or_exit(config, out)
    out.print(
        f"{config}: OK ({len(loaded.monitors)} monitors, {len(loaded.components)} components, "
        f"{len(loaded.locations) + 1} locations)",
        markup=False,
    )


@app.command()
def check(
    config: ConfigOption,
    monitor_id: Annotated[str, typer.Argument(metavar="MONITOR_ID", help="The monitor to run.")],
    output: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Run one monitor's check once from here; exit 0 if up, 1 if down."""
    from uptally.checks.registry import run_check
    from uptally.config.secretrefs import names_in
    from uptally.redaction import Redactor

    loaded = load_or_exit(config, err)
    monitor = loaded.monitor(monitor_id)
    if monitor is None:
        known = ", ".join(m.id for m in loaded.monitors) or "none"
        err.print(f"no monitor {monitor_id!r} in {config} (known: {known})", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if isinstance(monitor, HeartbeatMonitor):
        err.print(
            f"{monitor_id} is a heartbeat monitor: it is up while its job pings /ping/<token>; "
            "see its state with `uptally serve` and GET /api/v1/monitors/" + monitor_id,
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
    if isinstance(monitor, ExternalMonitor):
        err.print(
            f"{monitor_id} is an external monitor: Alertmanager's alerts drive it through "
            "POST /api/v1/integrations/alertmanager; there is nothing to check from here",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
    assert isinstance(monitor, ActiveMonitor)
    if names_in(monitor):
        err.print(
            f"{monitor_id} refers to the secret store (${{secret:…}}), which `uptally serve` "
            "reads; this command does not",
            markup=False,
        )
        raise typer.Exit(EXIT_USAGE)
    redactor = Redactor.with_keys(loaded.security.secret_query_keys)
    result = run_async(run_check(monitor, "local", redactor))
    if output == "json":
        out.print_json(
            json.dumps(
                {
                    "monitor": monitor_id,
                    "ok": result.ok,
                    "latency_ms": result.latency_ms,
                    "error": result.error.value if result.error else None,
                    "message": result.message,
                    "timings": {t.name: round(t.ms, 3) for t in result.timings},
                }
            )
        )
    else:
        latency = f"{result.latency_ms:.1f} ms" if result.latency_ms is not None else "-"
        if result.ok:
            out.print(f"[bold green]UP[/] {monitor_id} ({latency})")
        else:
            code = result.error.value if result.error else "failed"
            out.print(f"[bold red]DOWN[/] {monitor_id} ({latency}): {code}: ", end="")
            out.print(result.message, markup=False)
        if result.timings:
            table = Table("step", "ms", box=None, pad_edge=False)
            for timing in result.timings:
                table.add_row(timing.name, f"{timing.ms:.2f}")
            print_table(table)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


@app.command()
def serve(
    config: ConfigOption,
    data_dir: DataDirOption = Path("uptally-data"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            envvar="UPTALLY_PORT",
            help="Port to listen on (0: any free port); the config sees it as ${env:UPTALLY_PORT}.",
        ),
    ] = 8080,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
    export_dir: Annotated[
        Path | None,
        typer.Option(help="Keep a static copy of the status page here, re-exported on changes."),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(help="A throwaway demo: allows a short UPTALLY_ADMIN_TOKEN such as 'demo'."),
    ] = False,
) -> None:
    """Run everything in one process: web/API, scheduler, embedded probe, evaluator, timers."""
    _check_admin_token(os.environ.get("UPTALLY_ADMIN_TOKEN") or None, demo)
    if port:  # a config that watches this very server (like the demo) follows --port
        os.environ["UPTALLY_PORT"] = str(port)
    limit_arenas()  # before the database and worker threads start (uptally.heap)
    loaded = load_or_exit(config, err)
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # import chatter
    code = run_async(
        _serve(
            loaded,
            data_dir,
            host,
            port,
            log_level,
            access_log,
            config_path=config,
            export_dir=export_dir,
            demo=demo,
        )
    )
    raise typer.Exit(code)


DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "uptally-demo-console"


async def _welcome(runtime: Runtime, url: str, demo: bool) -> None:
    """How to reach the console: with --demo a demo admin (made once, printed); with no user
    yet a one-time setup link for the first admin (valid 1 h)."""
    from uptally.accounts import links, users
    from uptally.accounts.roles import Role
    from uptally.store import accounts as account_store

    now = runtime.clock.now_ms()
    async with runtime.db.begin() as conn:
        if demo and await account_store.user_by_email(conn, DEMO_USER) is None:
            await users.create(
                conn, DEMO_USER, Role.ADMIN, DEMO_PASSWORD, "demo", now, runtime.config.console
            )
        token = await links.setup_link(conn, now)
    if demo:
        out.print(
            f"console: {url}/console/ (sign in as {DEMO_USER}, password {DEMO_PASSWORD})",
            markup=False,
        )
    elif token is not None:
        out.print(
            f"no console user yet: create the first admin at {url}/console/setup?token={token} "
            "(works once, for 1 hour; or `uptally users create`)",
            markup=False,
            soft_wrap=True,
        )


def _check_admin_token(token: str | None, demo: bool) -> None:
    """The bootstrap token holds the admin scope: refuse a guessable one outside a demo."""
    from uptally.tokens import bootstrap_weakness

    why = bootstrap_weakness(token) if token else None
    if why is None:
        return
    if demo:
        err.print(
            f"demo: UPTALLY_ADMIN_TOKEN {why}; never expose this instance beyond this machine",
            markup=False,
            soft_wrap=True,
        )
        return
    err.print(
        f"UPTALLY_ADMIN_TOKEN {why} (make one with: python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(24))'); `serve --demo` accepts a weak one for a demo",
        markup=False,
        soft_wrap=True,
    )
    raise typer.Exit(EXIT_USAGE)


def tune_gc() -> None:
    """Collect garbage less often and never re-scan what start-up built.

    A probe allocates many short-lived objects per check; with CPython's default threshold
    (700) young collections run thousands of times a second and full ones walk every monitor's
    config. Measured with bench/probe_throughput.py: 2,950 → 3,980 checks/s at 4,000 offered.
    """
    gc.collect()
    gc.freeze()  # start-up objects (config, state) move to a generation that is never scanned
    gc.set_threshold(50_000, 20, 100)
    release_free_memory()


async def _reload(runtime: Runtime) -> None:
    """SIGHUP: apply the config file again, or say why not and keep the running one."""
    from uptally.config import ConfigError
    from uptally.managed.load import ProvisioningConflict
    from uptally.runtime import ReloadRefused

    try:
        changes = await runtime.reload("signal:SIGHUP")
    except ConfigError as error:
        err.print("config reload refused, the running config stays:", markup=False)
        for line in error.lines():
            err.print(line, markup=False, soft_wrap=True)
    except (ReloadRefused, ProvisioningConflict) as error:
        err.print(f"config reload refused, the running config stays: {error}", markup=False)
    else:
        err.print(f"config reloaded: {json.dumps(changes, sort_keys=True)}", markup=False)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: uptally stops the runtime first, then exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _from_driver(error: BaseException) -> bool:
    """An error of the database driver: the database is unreachable or unusable."""
    return type(error).__module__.startswith(("sqlalchemy", "asyncpg", "sqlite3"))


def _unusable_directory(directory: Path, error: OSError) -> str:
    """Which data directory serve cannot use, and why, in one line."""
    existing = next(p for p in (directory, *directory.parents) if p.exists() or p == p.parent)
    if existing == directory and not directory.is_dir():
        return f"cannot use the data directory {directory}: it is not a directory"
    if not existing.is_dir():
        return f"cannot create the data directory {directory}: {existing} is not a directory"
    action = "write to" if directory.is_dir() else "create"
    return f"cannot {action} the data directory {directory}: {error.strerror or error}"


async def _serve(
    config: Config,
    data_dir: Path,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    config_path: Path | None = None,
    export_dir: Path | None = None,
    demo: bool = False,
) -> int:
    from uptally.store.database import Database, InUse, database_url

    db = Database(database_url(data_dir))
    try:
        # Held for the life of the process: no second serve on SQLite, no restore under us.
        claim = await db.claim(exclusive=False)
    except InUse as error:
        err.print(f"{error}: not starting", markup=False, soft_wrap=True)
        await db.close()
        return EXIT_USAGE
    except Exception as error:
        if not isinstance(error, OSError) and not _from_driver(error):
            raise
        path = db.sqlite_file
        if isinstance(error, OSError) and path is not None:
            message = _unusable_directory(path.parent, error)
        else:
            message = f"cannot open the database ({db.url.split('@')[-1]}): {error}"
        err.print(f"{message}: not starting", markup=False, soft_wrap=True)
        await db.close()
        return EXIT_USAGE
    try:
        return await _run(
            config, db, host, port, log_level, access_log, config_path, export_dir, demo
        )
    finally:
        await claim.release()  # after the runtime has written its last results


async def _run(
    config: Config,
    db: Database,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    config_path: Path | None,
    export_dir: Path | None,
    demo: bool = False,
) -> int:
    from uptally.backup.offsite import OffsiteError
    from uptally.managed.load import ProvisioningConflict
    from uptally.runtime import Runtime
    from uptally.secrets import SecretKeyError
    from uptally.store.database import DatabaseError
    from uptally.web.app import create_app, listening

    runtime = Runtime(config, db)
    try:
        await runtime.start()
    except (DatabaseError, OSError) as error:
        err.print(f"cannot open the database: {error}", markup=False)
        await db.close()
        return EXIT_USAGE
    except SecretKeyError as error:
        err.print(f"secret key: {error}", markup=False)
        await db.close()
        return EXIT_USAGE
    except (OffsiteError, ProvisioningConflict) as error:
        err.print(str(error), markup=False)
        await db.close()
        return EXIT_USAGE
    except Exception as error:
        if _from_driver(error):
            err.print(f"cannot open the database ({db.url.split('@')[-1]}): {error}", markup=False)
            await db.close()
            return EXIT_USAGE
        raise
    app_ = create_app(runtime, os.environ.get("UPTALLY_ADMIN_TOKEN") or None)
    tune_gc()
    server = _Server(
        uvicorn.Config(
            app_,
            host=host,
            port=port,
            log_level=log_level.lower(),
            access_log=access_log,
            lifespan="on",  # the status pages' change watcher (web/app.py)
            loop="none",
            http="httptools",
            server_header=False,
            timeout_graceful_shutdown=5,
            # X-Forwarded-For/-Proto only from configured proxies (uvicorn would trust any
            # local client by default); the client is the right-most untrusted hop.
            proxy_headers=bool(runtime.config.security.trusted_proxies),
            forwarded_allow_ips=list(runtime.config.security.trusted_proxies) or "",
        )
    )
    loop = asyncio.get_running_loop()

    def stop_serving() -> None:
        server.should_exit = True
        runtime.fleet.runs.stop()  # agents' long polls end now, not at the graceful timeout

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_serving)
    runtime.config_path = config_path
    reloads: set[asyncio.Task[None]] = set()

    def reload_on_hup() -> None:
        task = asyncio.create_task(_reload(runtime))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload_on_hup)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        listening(app_, f"http://{shown}:{bound[1]}")
        out.print(f"uptally {__version__} listening on http://{shown}:{bound[1]}", markup=False)
        await _welcome(runtime, f"http://{shown}:{bound[1]}", demo)
    exporting = None
    if export_dir is not None and server.started:
        site = app_.api.state.status_site
        exporting = asyncio.create_task(site.keep_exported(export_dir))
    await serving
    if exporting is not None:
        exporting.cancel()
    err.print("stopping: letting running checks finish and writing buffered results…", markup=False)
    await runtime.stop()
    err.print("stopped cleanly", markup=False)
    return EXIT_OK if server.started else EXIT_USAGE
