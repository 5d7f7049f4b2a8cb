"""A static copy of the status page that any web server or CDN can serve while uptally is down.

Every file is written next to its final name and renamed into place, so a host syncing the
directory mid-export never serves half a page. Links are relative, so the copy works under any
path and even from the file system.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from uptally import offloop
from uptally.statuspage import render
from uptally.statuspage.model import PageModel

HistoryPage = Callable[[PageModel, int, render.Links], Awaitable[tuple[bytes, bool]]]
Lookup = Callable[[str], Awaitable[Any | None]]


async def export_site(
    model: PageModel, out: Path, history_page: HistoryPage, more_incidents: list[Any]
) -> list[Path]:
    """Write the page, history, incident and maintenance pages, v2 JSON, feeds and badges.
    History pages are read (from the database) here; everything is rendered and written off
    the event loop."""
    files: dict[str, bytes] = {}
    page = 1
    while True:
        body, has_older = await history_page(model, page, render.Links(export_depth=0))
        files[render.export_path(f"/history?page={page}")] = body
        if not has_older or page >= 200:
            break
        page += 1
    files.update(await offloop.run(render_files, model, more_incidents))
    return await offloop.run(write_files, out, files)


def render_files(model: PageModel, more_incidents: list[Any]) -> dict[str, bytes]:
    """Every file of the export but the history pages, by name."""
    files: dict[str, bytes] = {"index.html": render.index_html(model, render.Links(export_depth=0))}
    incidents = {i.id: i for i in [*model.incidents, *more_incidents]}
    for incident in incidents.values():
        files[f"incidents/{incident.id}.html"] = render.incident_html(
            model, render.Links(1), incident
        )
    for window in model.maintenance:
        files[f"maintenance/{window.id}.html"] = render.maintenance_html(
            model, render.Links(1), window
        )
    for name in render.V2_DOCUMENTS:
        files[f"api/v2/{name}"] = render.v2_json(model, name)
    files["feed.atom"] = render.atom(model)
    files["feed.rss"] = render.rss(model)
    for key, kind, period in render.badge_paths(model):
        badge = render.badge(model, key, kind, period)
        if badge is not None:
            files[f"badge/{key}/{kind}.svg"] = badge
    for name in ("local-times.js", "favicon.svg"):
        files[f"static/{name}"] = (render.STATIC / name).read_bytes()
    return files


def write_files(out: Path, files: dict[str, bytes]) -> list[Path]:
    """Each file replaced atomically; index.html last, so that a first export whose index is
    there is complete and a page never links to a file that is not written yet."""
    written = []
    for relative, body in sorted(files.items(), key=lambda item: item[0] == "index.html"):
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
        written.append(target)
    return written
