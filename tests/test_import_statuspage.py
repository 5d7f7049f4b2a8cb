"""`uptally import statuspage`: saved v2 documents of real Statuspage pages become components
(with their groups) and, with --apply, incident history at its original times, served back by
uptally's own APIs; major incidents backfill the downtime behind them."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import config_from, serve_app
from uptally.cli import app
from uptally.config import parse_config
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store import outages as outage_store
from uptally.store import outbox as outbox_store
from uptally.store.database import Database
from uptally.web.app import create_app

DATA = Path(__file__).resolve().parent / "data" / "statuspage"
TOKEN = "adm-7Hq2LmZx9Wv4Rt8Ys1Nb"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["import", "statuspage", *args])
    return result.exit_code, result.stdout, result.stderr


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def test_components_keep_their_groups_and_the_yaml_validates() -> None:
    code, out, err = run(str(DATA / "hashicorp"))
    assert code == 0, err
    config = parse_config(out, "hashicorp")
    groups = {c.id: c.group for c in config.components}
    assert len(groups) == 48  # 54 entries, of which 6 are groups
    assert groups["hcp-portal"] == "HashiCorp Cloud Platform (HCP)"
    assert groups["stripe-js"] == "Terraform Cloud"
    # A group and a component may share a name; the component keeps it.
    assert groups["terraform-registry"] == "Terraform Registry"
    assert groups["vagrant-cloud"] is None
    assert "group Terraform Cloud" in err
    assert " left out" in err


def test_without_apply_it_prints_components_and_summarises_the_incidents() -> None:
    code, out, err = run(str(DATA / "github"))
    assert code == 0, err
    document = yaml.safe_load(out)
    assert [c["id"] for c in document["components"]][:3] == [
        "git-operations",
        "api-requests",
        "webhooks",
    ]
    assert set(document) == {"components"}
    assert "would import (with --apply) 2 incident(s) with 8 update(s)" in err
    assert "2020-04-02T20:20:54.005Z to 2022-02-05T22:18:24.560Z" in err
    maintenance = next(line for line in err.splitlines() if "Sunsetting API" in line)
    assert "left out" in maintenance


def test_a_file_that_is_not_statuspage_json_is_refused(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text('{"status": "ok"}')
    code, out, err = run(str(tmp_path))
    assert (code, out) == (2, "")
    assert "not a Statuspage v2 document" in err
    code, _, err = run(str(tmp_path / "missing"))
    assert code == 2
    code, _, err = run("http://127.0.0.1:9/")  # nothing listens on the discard port
    assert code == 2
    assert "127.0.0.1:9/api/v2/summary.json" in err


@pytest.fixture
def site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UPTALLY_DATA_DIR", raising=False)
    if db_url.startswith("postgresql"):
        monkeypatch.setenv("UPTALLY_DATABASE_URL", db_url)
    else:
        monkeypatch.delenv("UPTALLY_DATABASE_URL", raising=False)
    return tmp_path


Served = tuple[dict[str, Any], dict[str, Any], dict[str, Any], str, tuple[int, str, str]]


async def served(db_url: str) -> Served:
    """What uptally itself serves after the import: the admin API, the Statuspage v2 API (the
    last 90 days and what is open), the public page of the older, resolved incident; and an
    import from that live, Statuspage-compatible page by its address."""
    runtime = Runtime(
        config_from("site: {title: Imported}\n"),
        Database(db_url),
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    try:
        async with serve_app(create_app(runtime, TOKEN)) as url, aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with s.get(f"{url}/api/v1/incidents?limit=10", headers=headers) as r:
                assert r.status == 200, await r.text()
                admin = await r.json()
            async with s.get(f"{url}/api/v2/incidents.json") as r:
                assert r.status == 200
                public = await r.json()
            async with s.get(f"{url}/api/v2/components.json") as r:
                assert r.status == 200
                components = await r.json()
            [resolved] = [i for i in admin["incidents"] if i["status"] == "resolved"]
            async with s.get(f"{url}/incidents/{resolved['id']}") as r:
                assert r.status == 200
                page = await r.text()
            live = await asyncio.to_thread(run, url)
    finally:
        await runtime.stop()
    return admin, public, components, page, live


VISIT = "visit-www.githubstatus.com-for-more-information"


async def history(db_url: str, component: str) -> tuple[list[Any], list[str]]:
    """The outages kept for a component, and the incident events in the outbox."""
    db = Database(db_url)
    try:
        async with db.connect() as conn:
            found = await outage_store.list_outages(conn, component=component)
            events = await outbox_store.list_events(conn, limit=1000)
    finally:
        await db.close()
    return found, [e.kind for e in events if e.kind.startswith("incident.")]


def test_apply_keeps_the_incident_history_with_every_update_at_its_time(
    site: Path, db_url: str
) -> None:
    code, out, err = run(str(DATA / "github"), "--apply", "--data-dir", ".")
    assert code == 0, err
    assert "applied 9 changes (9 to create)" in out
    assert "imported 2 incident(s) with 8 update(s) and 0 backfilled outage(s)" in out
    admin, public, components, page, live = asyncio.run(served(db_url))

    by_title = {i["title"]: i for i in admin["incidents"]}
    past = by_title["Incident with GitHub Actions, GitHub Pages, and Webhooks"]
    assert past["status"] == "resolved"
    assert past["impact"] == "minor"
    assert ms(past["started_at"]) == ms("2022-02-05T22:18:24.560Z")
    assert ms(past["resolved_at"]) == ms("2022-02-06T02:01:26.920Z")
    source = json.loads((DATA / "github" / "incidents.json").read_text())["incidents"][0]
    expected = sorted(
        (ms(u["display_at"]), u["status"], u["body"]) for u in source["incident_updates"]
    )
    got = sorted((ms(u["created_at"]), u["status"], u["body"]) for u in past["updates"])
    assert got == expected
    assert [c["id"] for c in past["components"]] == ["webhooks"]
    assert by_title["Incident on 2020-04-02 20:20 UTC"]["status"] == "investigating"

    assert [i["name"] for i in public["incidents"]] == ["Incident on 2020-04-02 20:20 UTC"]
    assert "Webhooks is operating normally." in page
    assert "GitHub Pages is experiencing degraded performance" in page
    assert {"Git Operations", "Webhooks"} <= {c["name"] for c in components["components"]}

    code, out, err = live
    assert code == 0, err
    assert "git-operations" in {c["id"] for c in yaml.safe_load(out)["components"]}
    assert "would import (with --apply) 1 incident(s) with 2 update(s)" in err

    outages, announced = asyncio.run(history(db_url, "webhooks"))
    assert outages == []  # a minor incident is not downtime
    assert announced == []  # history is not announced again

    code, out, _ = run(str(DATA / "github"), "--apply", "--data-dir", ".")
    assert code == 0
    assert "imported 0 incident(s) with 0 update(s) and 0 backfilled outage(s); 2 already" in out


def test_a_resolved_major_incident_backfills_the_downtime_of_its_components(
    site: Path, db_url: str
) -> None:
    # The saved summary caught GitHub's 2020-04-02 major incident while it was under way; the
    # test resolves it (one more update, as the page later posted) to see its downtime kept.
    folder = site / "page"
    shutil.copytree(DATA / "github", folder)
    summary = json.loads((folder / "summary.json").read_text())
    incident = summary["incidents"][0]
    incident["status"], incident["resolved_at"] = "resolved", "2020-04-02T21:07:00.000Z"
    incident["incident_updates"].insert(
        0,
        {
            "id": "test-resolution",
            "status": "resolved",
            "body": "This incident has been resolved.",
            "created_at": "2020-04-02T21:07:00.000Z",
            "display_at": "2020-04-02T21:07:00.000Z",
            "affected_components": None,
        },
    )
    (folder / "summary.json").write_text(json.dumps(summary))
    code, out, err = run(str(folder), "--apply", "--data-dir", ".")
    assert code == 0, err
    backfill = next(line for line in err.splitlines() if "80d0cs6kpsps): downtime" in line)
    assert "approximated" in backfill
    assert "backfilled outage(s)" in out
    outages, announced = asyncio.run(history(db_url, VISIT))
    [outage] = outages  # the one component the page named in it
    assert outage.source == "manual"
    assert outage.component == VISIT
    assert (outage.outage.start, outage.outage.end) == (
        ms("2020-04-02T20:20:54.005Z"),
        ms("2020-04-02T21:07:00.000Z"),
    )
    assert announced == []
