"""Disaster-recovery drills on real backups: restore, verify, measure RTO/RPO, record."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import config_from, serve_app
from tests.procs import run_cli
from uptally import audit
from uptally.backup.create import create_backup
from uptally.backup.drill import run_drill
from uptally.clock import FakeClock
from uptally.config.schema import DisasterRecovery
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database
from uptally.web.app import create_app

KEY = Keyring(Key.parse(base64.b64encode(b"d" * 32).decode()))
HOUR = 3_600_000


async def _some_history(db: Database) -> None:
    async with db.begin() as conn:
        for i in range(3):
            await audit.append(conn, "cli:ops", "token.created", f"token:{i}", {"i": i})


async def test_a_drill_on_a_real_backup_reports_plausible_rto_and_rpo(
    db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    await _some_history(db)
    created = await create_backup(db, tmp_path / "b", KEY, encrypt=True, clock=clock)
    clock.advance(2 * HOUR)
    report = await run_drill(
        db, tmp_path / "b", KEY, DisasterRecovery(), actor="cli:ops", clock=clock
    )
    assert report.ok, report.checks
    assert report.backup == created.path
    assert report.rpo_ms == 2 * HOUR
    assert report.rto_ms is not None
    assert 0 < report.rto_ms < 60_000
    names = [name for name, _, _ in report.checks]
    assert names == [
        "backup",
        "checksum",
        "decrypt and decompress",
        *(["restore"] if db.dialect == "postgresql" else ["database"]),
        "schema revision",
        "row counts",
        "audit chain",
        "servable",
        "RTO",
        "RPO",
    ]
    async with db.connect() as conn:
        [entry] = await audit.list_entries(conn, audit.AuditFilter(action="dr.drill"))
        assert (await audit.verify(conn)).ok
    assert entry.details["ok"] is True
    assert entry.details["rpo_ms"] == 2 * HOUR


async def test_a_missed_target_or_a_bad_backup_fails_the_drill(
    db: Database, tmp_path: Path, clock: FakeClock
) -> None:
    await _some_history(db)
    created = await create_backup(db, tmp_path / "b", None, clock=clock)
    clock.advance(25 * HOUR)
    stale = await run_drill(db, tmp_path / "b", None, DisasterRecovery(), actor="t", clock=clock)
    assert not stale.ok
    assert [(n, ok) for n, ok, _ in stale.checks if not ok] == [("RPO", False)]
    assert stale.rto_ms is not None  # the copy itself was fine

    data = created.path.read_bytes()
    created.path.write_bytes(data[:-10] + b"0123456789")
    broken = await run_drill(db, tmp_path / "b", None, DisasterRecovery(), actor="t", clock=clock)
    assert not broken.ok
    assert broken.rto_ms is None  # nothing servable was reached
    assert ("checksum", False) in [(n, ok) for n, ok, _ in broken.checks]

    empty = await run_drill(db, tmp_path / "none", None, DisasterRecovery(), actor="t", clock=clock)
    assert not empty.ok
    assert "no backup" in empty.checks[0][2]


async def test_drills_are_listed_in_the_api(db_url: str, tmp_path: Path, clock: FakeClock) -> None:
    runtime = Runtime(
        config_from("site: {title: x}\n"),
        Database(db_url),
        clock=clock,
        metrics=Metrics(),
        run_probe=False,
    )
    await runtime.start()
    try:
        await create_backup(runtime.db, tmp_path / "b", None, clock=clock)
        clock.advance(HOUR)
        await run_drill(
            runtime.db, tmp_path / "b", None, DisasterRecovery(), actor="t", clock=clock
        )
        clock.advance(1000)
        strict = DisasterRecovery(rpo="1m")
        await run_drill(runtime.db, tmp_path / "b", None, strict, actor="t", clock=clock)
        async with serve_app(create_app(runtime, "tok")) as url, aiohttp.ClientSession() as session:
            headers = {"Authorization": "Bearer tok"}
            async with session.get(url + "/api/v1/dr/drills", headers=headers) as response:
                assert response.status == 200
                body = await response.json()
    finally:
        await runtime.stop()
    first, second = body["drills"][1], body["drills"][0]
    assert (first["ok"], second["ok"]) == (True, False)
    assert first["rpo_s"] == 3600.0
    assert second["rpo_target_s"] == 60.0
    assert first["rto_s"] is not None
    assert {c["name"] for c in first["checks"]} >= {"audit chain", "row counts", "RTO", "RPO"}


@pytest.mark.slow
async def test_dr_drill_on_the_command_line(tmp_path: Path) -> None:
    # The PostgreSQL drill is tested in-process above; the command line is the same for both.
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    await db.migrate()
    try:
        await _some_history(db)
    finally:
        await db.close()
    env = {"UPTALLY_SECRET_KEY": base64.b64encode(b"d" * 32).decode()}
    config = tmp_path / "c.yaml"
    config.write_text(f"backup: {{dir: '{tmp_path}/b', encrypt: true}}\ndr: {{rto: 1h, rpo: 1h}}\n")
    args = ["--config", str(config), "--data-dir", str(tmp_path)]
    code, output = await run_cli("dr", "drill", *args, env=env)
    assert code == 1
    assert "no backup" in output
    code, output = await run_cli("backup", "create", *args, env=env)
    assert code == 0, output
    code, output = await run_cli("dr", "drill", *args, "--format", "json", env=env)
    assert code == 0, output
    report = json.loads(output)
    assert report["ok"] is True
    assert 0 < report["rto_s"] < 60
    assert 0 <= report["rpo_s"] < 60
    config.write_text(f"backup: {{dir: '{tmp_path}/b', encrypt: true}}\ndr: {{rpo: 1ms}}\n")
    code, output = await run_cli("dr", "drill", *args, env=env)
    assert code == 1
    assert "RPO" in output
    assert "FAILED" in output
