"""`uptally export-site`: the status page as static files, for a CDN or any web server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from uptally.cli.app import (
    EXIT_OK,
    EXIT_USAGE,
    ConfigOption,
    DataDirOption,
    app,
    err,
    load_or_exit,
    out,
    run_async,
)
from uptally.cli.common import opened


@app.command("export-site")
def export_site(
    config: ConfigOption,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the site into.")],
    data_dir: DataDirOption = Path("uptally-data"),
    base_url: Annotated[
        str | None, typer.Option(help="Public URL of the site (default: site.url of the config).")
    ] = None,
    page: Annotated[
        str | None,
        typer.Option(
            "--page", help="Export this page of status_pages (its id) instead of the main page."
        ),
    ] = None,
) -> None:
    """Write the status page, history, incidents, Statuspage v2 JSON, feeds and badges."""
    loaded = load_or_exit(config, err)
    if page is not None:
        found = loaded.status_page(page)
        if found is None:
            known = ", ".join(p.id for p in loaded.status_pages) or "none"
            err.print(
                f"{config}: no status page {page!r} (status_pages: {known})",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USAGE)
        if found.private:
            err.print(
                f"status page {page!r} is private: a static export would publish it to anyone "
                "who can reach the files; refusing",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(EXIT_USAGE)

    async def main() -> int:
        from uptally.runtime import Runtime
        from uptally.statuspage.site import StatusSite

        async with opened(data_dir) as db:
            runtime = Runtime(loaded, db, run_probe=False)
            await runtime.load_state()
            site = StatusSite(runtime, base_url or loaded.site.url or "", page=page)
            written = await site.export(out_dir)
        return len(written)

    count = run_async(main())
    out.print(f"wrote {count} files to {out_dir}", markup=False)
    raise typer.Exit(EXIT_OK)
