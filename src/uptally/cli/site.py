"""`uptally export-site`: the status page as static files, for a CDN or any web server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uptally.cli.app import (
    EXIT_OK,
    ConfigOption,
    DataDirOption,
    app,
    err,
    load_or_exit,
    out,
    run_async,
)


@app.command("export-site")
def export_site(
    config: ConfigOption,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the site into.")],
    data_dir: DataDirOption = Path("uptally-data"),
    base_url: Annotated[
        str | None, typer.Option(help="Public URL of the site (default: site.url of the config).")
    ] = None,
) -> None:
    """Write the status page, history, incidents, Statuspage v2 JSON, feeds and badges."""
    loaded = load_or_exit(config, err)

    async def main() -> int:
        from uptally.runtime import Runtime
        from uptally.statuspage.site import StatusSite
        from uptally.store.database import Database, database_url

        runtime = Runtime(loaded, Database(database_url(data_dir)), run_probe=False)
        try:
            await runtime.load_state()
            site = StatusSite(runtime, base_url or loaded.site.url or "")
            written = await site.export(out_dir)
        finally:
            await runtime.db.close()
        return len(written)

    count = run_async(main())
    out.print(f"wrote {count} files to {out_dir}", markup=False)
    raise typer.Exit(EXIT_OK)
