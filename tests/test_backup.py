"""Backups: consistent under load, checksummed, encrypted, verified, restored, rotated."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import _pg_admin, _pg_base, config_from
from tests.procs import run_cli, serving
from uptally import audit
from uptally.backup.create import create_backup
from uptally.backup.dumps import BackupError
from uptally.backup.manifest import list_backups, manifest_path, read_manifest
from uptally.backup.restore import restore_backup
from uptally.backup.rotation import rotate, to_keep
from uptally.backup.stream import CHUNK, BackupDamaged, open_file, seal_file
from uptally.backup.verify import verify_backup
from uptally.clock import FakeClock
from uptally.config.schema import BackupKeep
from uptally.evaluator import MonitorState
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring, SecretKeyError
from uptally.store.database import Database, database_url

KEY = Keyring(Key.parse(base64.b64encode(b"b" * 32).decode()))
OTHER_KEY = Keyring(Key.parse(base64.b64encode(b"x" * 32).decode()))


# -- the file format -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5])
@pytest.mark.parametrize("keyring", [None, KEY], ids=["plain", "encrypted"])
def test_a_sealed_file_opens_to_the_same_bytes(
    tmp_path: Path, size: int, keyring: Keyring | None
) -> None:
    data = os.urandom(size)
    (tmp_path / "in").write_bytes(data)
    digest, length = seal_file(tmp_path / "in", tmp_path / "sealed", keyring)
    assert length == (tmp_path / "sealed").stat().st_size
    assert len(digest) == 64
    assert open_file(tmp_path / "sealed", tmp_path / "out", keyring, keyring is not None) == size
    assert (tmp_path / "out").read_bytes() == data


def _sealed(tmp_path: Path, size: int = 3 * CHUNK) -> bytes:
    (tmp_path / "in").write_bytes(os.urandom(size))  # random: gzip cannot shrink it
    seal_file(tmp_path / "in", tmp_path / "sealed", KEY)
    return (tmp_path / "sealed").read_bytes()


@pytest.mark.parametrize("damage", ["cut-at-chunk", "cut-inside", "flipped-bit", "swapped-chunks"])
def test_a_damaged_encrypted_file_does_not_open(tmp_path: Path, damage: str) -> None:
    sealed = _sealed(tmp_path)
    header, chunk = 35, CHUNK + 16
    chunks = [
        sealed[header + i : header + i + chunk] for i in range(0, len(sealed) - header, chunk)
    ]
    if damage == "cut-at-chunk":
        broken = sealed[: header + 2 * chunk]
    elif damage == "cut-inside":
        broken = sealed[:-100]
    elif damage == "flipped-bit":
        broken = bytearray(sealed)
        broken[header + chunk + 7] ^= 0x01
        broken = bytes(broken)
    else:
        broken = sealed[:header] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    (tmp_path / "broken").write_bytes(broken)
    with pytest.raises(BackupDamaged, match="cannot decrypt"):
        open_file(tmp_path / "broken", tmp_path / "out", KEY, True)


def test_the_wrong_key_is_named(tmp_path: Path) -> None:
    _sealed(tmp_path, 10)
    with pytest.raises(SecretKeyError, match="not configured"):
        open_file(tmp_path / "sealed", tmp_path / "out", OTHER_KEY, True)
    with pytest.raises(SecretKeyError, match="UPTALLY_SECRET_KEY"):
        open_file(tmp_path / "sealed", tmp_path / "out", None, True)


# -- retention --------------------------------------------------------------------------------


def _at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_retention_keeps_the_newest_of_each_day_week_and_month() -> None:
    backups = [
        (f"d{day:02d}-{hour:02d}", _at(f"2026-03-{day:02d}T{hour:02d}:00:00"))
        for day in range(1, 32)
        for hour in (3, 15)
    ]
    backups += [("feb", _at("2026-02-20T03:00:00")), ("jan", _at("2026-01-10T03:00:00"))]
    kept = to_keep(backups, BackupKeep(daily=3, weekly=2, monthly=3))
    # daily: 31st, 30th, 29th (newest of each); weekly: the week of the 31st (Tue) and of the
    # 29th (Sun): both covered; monthly: March (31st), February, January.
    assert kept == {"d31-15", "d30-15", "d29-15", "feb", "jan"}
    assert to_keep(backups, BackupKeep(daily=0, weekly=0, monthly=0)) == {"d31-15"}
    assert to_keep([], BackupKeep()) == set()


# -- create, verify, restore on SQLite and PostgreSQL -----------------------------------------


async def _write(db: Database, n: int, tag: str) -> None:
    """One result row and one audit entry per transaction: a copy must hold both or neither."""
    for i in range(n):
        async with db.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO results (id, monitor, location, at, ok, message) "
                f"VALUES ('{tag}{i}-{uuid.uuid4().hex[:8]}', 'api', 'local', {i}, true, '')"
            )
            await audit.append(conn, "system", "test.write", f"result:{tag}{i}", {})


async def _counts(db: Database) -> tuple[int, int, bool]:
    async with db.connect() as conn:
        results = (await conn.exec_driver_sql("SELECT count(*) FROM results")).scalar_one()
        entries = (await conn.exec_driver_sql("SELECT count(*) FROM audit_log")).scalar_one()
        report = await audit.verify(conn)
    return int(results), int(entries), report.ok


@pytest.fixture
async def empty_target(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of the same kind to restore into."""
    if db_url.startswith("sqlite"):
        target = Database(f"sqlite+aiosqlite:///{tmp_path}/restored/uptally.db")
        yield target
        await target.close()
        return
    name = f"uptally_r_{uuid.uuid4().hex[:12]}"
    await _pg_admin([f"CREATE DATABASE {name}"])
    target = Database(f"postgresql+asyncpg://{_pg_base().split('://', 1)[1]}/{name}")
    try:
        yield target
    finally:
        await target.close()
        await _pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])


async def test_a_backup_verifies_and_restores_to_the_same_data(
    db: Database, empty_target: Database, tmp_path: Path
) -> None:
    await _write(db, 5, "a")
    created = await create_backup(db, tmp_path / "backups", KEY, encrypt=True)
    manifest = created.manifest
    assert created.path.name.endswith(".gz.enc")
    assert manifest.encrypted
    assert manifest.key_id == KEY.current.id
    assert manifest.tables["results"] == 5
    assert manifest.audit_head == {"seq": 5, "hash": manifest.audit_head["hash"]}
    assert manifest.schema_revision is not None
    assert read_manifest(created.path) == manifest

    result = await verify_backup(created.path, KEY)
    assert result.ok, result.problems
    assert [c.name for c in result.checks][:3] == ["manifest", "checksum", "decrypt and decompress"]
    assert (await verify_backup(manifest_path(created.path), KEY)).ok  # the manifest names it too

    restored = await restore_backup(created.path, empty_target, KEY, force=False, actor="cli:test")
    assert restored.sha256 == manifest.sha256
    results, entries, chain_ok = await _counts(empty_target)
    assert (results, entries, chain_ok) == (5, 6, True)  # + the backup.restored entry
    async with empty_target.connect() as conn:
        [last] = await audit.list_entries(conn, audit.AuditFilter(limit=1))
    assert (last.action, last.actor) == ("backup.restored", "cli:test")

    with pytest.raises(BackupError, match="not empty"):
        await restore_backup(created.path, empty_target, KEY, force=False, actor="cli:test")
    await _write(empty_target, 2, "late")
    await restore_backup(created.path, empty_target, KEY, force=True, actor="cli:test")
    assert (await _counts(empty_target))[:2] == (5, 6)


async def test_backups_taken_under_write_load_restore_to_a_consistent_state(
    db: Database, empty_target: Database, tmp_path: Path
) -> None:
    stop = asyncio.Event()
    progress = asyncio.Event()

    async def load(name: str) -> int:
        written = 0
        while not stop.is_set():
            await _write(db, 1, f"{name}-{written}-")
            written += 1
            progress.set()
        return written

    writers = [asyncio.create_task(load(f"w{n}")) for n in range(3)]
    backups = []
    try:
        for _ in range(3):
            progress.clear()
            await progress.wait()  # writes land between (and during) the backups
            created = await create_backup(db, tmp_path / "backups", None)
            backups.append(created)
    finally:
        stop.set()
        written = sum(await asyncio.gather(*writers))
    assert written > 0
    for created in backups:
        tables = created.manifest.tables
        assert tables["results"] == tables["audit_log"]  # the snapshot is one instant
        assert created.manifest.audit_head is not None
        assert created.manifest.audit_head["seq"] == tables["audit_log"]
        assert (await verify_backup(created.path, None)).ok
    newest = backups[-1]
    await restore_backup(newest.path, empty_target, None, force=True, actor="cli:test")
    results, entries, chain_ok = await _counts(empty_target)
    assert chain_ok
    assert results == newest.manifest.tables["results"]
    assert entries == results + 1


def _edit(path: Path, change: str) -> None:
    data = path.read_bytes()
    if change == "flip":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    elif change == "truncate":
        path.write_bytes(data[: len(data) - 40])


def _rewrite_manifest(path: Path) -> None:
    """As if the damage happened before the checksum was taken."""
    import hashlib

    manifest = manifest_path(path)
    data = json.loads(manifest.read_text())
    content = path.read_bytes()
    data["sha256"] = hashlib.sha256(content).hexdigest()
    data["size"] = len(content)
    manifest.write_text(json.dumps(data))


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize(
    ("change", "same_checksum", "expected"),
    [
        ("flip", False, "does not match the manifest"),
        ("truncate", False, "cut off?"),
        ("flip", True, "decrypt and decompress"),
        ("truncate", True, "decrypt and decompress"),
    ],
    ids=["corrupted", "truncated", "corrupted-before-checksum", "truncated-before-checksum"],
)
async def test_a_corrupted_or_truncated_backup_fails_verify(
    db: Database,
    tmp_path: Path,
    encrypted: bool,
    change: str,
    same_checksum: bool,
    expected: str,
) -> None:
    await _write(db, 20, "c")
    created = await create_backup(db, tmp_path / "backups", KEY, encrypt=encrypted)
    _edit(created.path, change)
    if same_checksum:
        _rewrite_manifest(created.path)
    result = await verify_backup(created.path, KEY)
    assert not result.ok
    assert any(expected in problem for problem in result.problems), result.problems


async def test_verify_names_a_missing_manifest_or_key(db: Database, tmp_path: Path) -> None:
    created = await create_backup(db, tmp_path / "backups", KEY, encrypt=True)
    problems = (await verify_backup(created.path, OTHER_KEY)).problems
    assert len(problems) == 1
    assert f"encrypted with key {KEY.current.id}, which is not configured" in problems[0]
    manifest_path(created.path).unlink()
    result = await verify_backup(created.path, KEY)
    assert result.problems == [
        f"manifest: no manifest beside the backup (expected {manifest_path(created.path)})"
    ]


async def test_an_encrypted_backup_needs_a_key(db: Database, tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError):
        await create_backup(db, tmp_path, None, encrypt=True)


def test_rotation_deletes_backups_and_their_manifests(tmp_path: Path) -> None:
    for day in range(1, 6):
        name = f"uptally-2026010{day}.sqlite.gz"
        (tmp_path / name).write_bytes(b"x")
        manifest_path(tmp_path / name).write_text(
            json.dumps(
                {
                    "file": name,
                    "sha256": "0" * 64,
                    "size": 1,
                    "created_at_ms": _at(f"2026-01-0{day}T03:00:00"),
                    "database": "sqlite",
                    "schema_revision": "0002",
                    "encrypted": False,
                    "key_id": None,
                    "audit_head": None,
                }
            )
        )
    removed = rotate(tmp_path, BackupKeep(daily=2, weekly=0, monthly=0))
    assert sorted(p.name for p in removed) == [f"uptally-2026010{d}.sqlite.gz" for d in (1, 2, 3)]
    assert [p.name for p, _ in list_backups(tmp_path)] == [
        "uptally-20260104.sqlite.gz",
        "uptally-20260105.sqlite.gz",
    ]
    assert len(list(tmp_path.iterdir())) == 4


# -- scheduled backups inside serve ----------------------------------------------------------


async def test_scheduled_backups_ping_the_backup_currency_monitor(
    db_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    config = config_from(
        f"backup: {{dir: '{tmp_path}/scheduled', every: 1h, keep: {{daily: 2}}}}\n"
    )
    database = Database(db_url)
    claim = await database.claim(exclusive=False)  # held as serve holds it: backups still run
    runtime = Runtime(config, database, clock=clock, metrics=Metrics(), run_probe=False)
    assert runtime.config.monitor("uptally-backup") is not None
    await runtime.start()
    try:
        assert runtime.backups is not None
        # The schedule takes the first backup at once (nothing to be current with yet).
        async with asyncio.timeout(30):
            while not runtime.metrics.last_backup._value.get():
                await asyncio.sleep(0.02)
        [(path, manifest)] = list_backups(tmp_path / "scheduled")
        await runtime.ingest.drained()
        status = runtime.evaluator.status("uptally-backup")
        assert status is not None
        assert status.state is MonitorState.UP
        assert runtime.metrics.last_backup._value.get() == manifest.created_at_ms / 1000
        assert (await verify_backup(path, None)).ok
        assert await runtime.backups.due_at() == manifest.created_at_ms + 3_600_000
    finally:
        await runtime.stop()
        await claim.release()


async def test_a_failing_scheduled_backup_turns_the_monitor_down(
    tmp_path: Path, clock: FakeClock
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = config_from(f"backup: {{dir: '{blocker}', every: 1h}}\n")
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    runtime = Runtime(config, db, clock=clock, metrics=Metrics(), run_probe=False)
    await runtime.start()
    try:
        assert runtime.backups is not None
        # What the schedule does when a run fails:
        with pytest.raises(FileExistsError):
            await runtime.backups.run_once()
        await runtime.backups._on_failure("backup failed: disk full")
        await runtime.ingest.drained()
        status = runtime.evaluator.status("uptally-backup")
        assert status is not None
        assert status.state is MonitorState.DOWN
    finally:
        await runtime.stop()


# -- the command line, while serve runs -------------------------------------------------------


@pytest.fixture
def cli_env(db_url: str) -> dict[str, str]:
    env = {"UPTALLY_SECRET_KEY": base64.b64encode(b"b" * 32).decode()}
    if db_url.startswith("postgresql"):
        env["UPTALLY_DATABASE_URL"] = db_url.replace("+asyncpg", "")
    return env


@pytest.mark.slow
async def test_backup_commands_work_while_serve_runs(
    db: Database, db_url: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    await _write(db, 3, "s")
    config = tmp_path / "c.yaml"
    config.write_text("monitors: [{id: beat, kind: heartbeat, period: 1h}]\n")
    data = tmp_path / "data"
    async with serving(config, data, env=cli_env):
        code, output = await run_cli(
            "backup", "create", "--config", str(config), "--data-dir", str(data),
            "--out", str(tmp_path / "b"), "--encrypt", env=cli_env,
        )  # fmt: skip
        assert code == 0, output
        path = Path(output.strip().splitlines()[-1])
        code, output = await run_cli("backup", "verify", str(path), env=cli_env)
        assert code == 0, output
        assert "OK" in output
    _edit(path, "truncate")
    code, output = await run_cli("backup", "verify", str(path), "--format", "json", env=cli_env)
    assert code == 1
    assert json.loads(output)["ok"] is False
    code, output = await run_cli(
        "backup", "restore", str(path), "--data-dir", str(data), "--force", env=cli_env
    )
    assert code == 1
    assert "cut off" in output
    if db_url.startswith("sqlite"):
        code, output = await run_cli("backup", "create", "--data-dir", str(tmp_path / "none"))
        assert code == 2
        assert "no database" in output


@pytest.mark.slow
async def test_restore_is_refused_while_serve_runs_on_the_database(
    db: Database, db_url: str, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("monitors: [{id: beat, kind: heartbeat, period: 1h}]\n")
    data = tmp_path  # the fixture's SQLite file is tmp_path/uptally.db
    code, output = await run_cli(
        "tokens", "create", "--name", "ci", "--scope", "read", "--data-dir", str(data), env=cli_env
    )
    assert code == 0, output
    token = output.strip().splitlines()[-1]
    code, output = await run_cli(
        "backup", "create", "--data-dir", str(data), "--out", str(tmp_path / "b"), env=cli_env
    )
    assert code == 0, output
    backup = output.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    async with serving(config, data, env=cli_env) as (url, _), aiohttp.ClientSession() as http:
        code, output = await run_cli(
            "tokens", "revoke", token.split("_")[1], "--data-dir", str(data), env=cli_env
        )
        assert code == 0, output
        code, output = await run_cli(
            "backup", "restore", backup, "--data-dir", str(data), "--force", env=cli_env
        )
        assert code == 2, output
        assert "restore refused" in output
        assert "in use" in output
        assert "stop it first" in output
        async with http.get(url + "/api/v1/monitors", headers=headers) as response:
            assert response.status == 401  # the revocation stands
        if db_url.startswith("sqlite"):
            code, output = await run_cli(
                "serve", "--config", str(config), "--data-dir", str(data), "--port", "0",
                env=cli_env,
            )  # fmt: skip
            assert code == 2
            [line] = output.strip().splitlines()
            assert f"the data directory {data} is in use by another uptally process" in line
        else:  # several instances may share one PostgreSQL database
            async with (
                serving(config, tmp_path / "other", env=cli_env) as (other, _),
                http.get(other + "/healthz") as response,
            ):
                assert response.status == 200
    code, output = await run_cli(
        "backup", "restore", backup, "--data-dir", str(data), "--force", env=cli_env
    )
    assert code == 0, output


@pytest.mark.slow
async def test_backups_are_encrypted_by_default_with_a_key_and_private(
    db: Database, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    where = ("--data-dir", str(tmp_path))  # the fixture's SQLite file is tmp_path/uptally.db
    old = os.umask(0o022)  # a permissive umask must not make them readable by others
    try:
        code, output = await run_cli("backup", "create", *where, "--out", str(tmp_path / "b"),
                                     env=cli_env)  # fmt: skip
        assert code == 0, output
        sealed = Path(output.strip().splitlines()[-1])
        code, output = await run_cli("backup", "create", *where, "--out", str(tmp_path / "c"),
                                     "--no-encrypt", env=cli_env)  # fmt: skip
        assert code == 0, output
        plain = Path(output.strip().splitlines()[-1])
    finally:
        os.umask(old)
    assert sealed.name.endswith(".enc")
    assert read_manifest(sealed).encrypted
    assert not read_manifest(plain).encrypted
    for path in (sealed, plain, manifest_path(sealed)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o700


async def test_the_sqlite_database_is_created_private_and_an_open_one_tightened(
    tmp_path: Path,
) -> None:
    old = os.umask(0o022)
    try:
        database = Database(database_url(tmp_path / "new"))
        try:
            await database.migrate()
            async with database.begin() as conn:
                await conn.exec_driver_sql("CREATE TABLE t (x)")
        finally:
            await database.close()
        existing = tmp_path / "old" / "uptally.db"
        existing.parent.mkdir()
        existing.touch(mode=0o644)
        os.chmod(existing, 0o644)
        database = Database(database_url(existing.parent))
        try:
            await database.migrate()
        finally:
            await database.close()
    finally:
        os.umask(old)
    created = tmp_path / "new" / "uptally.db"
    for path in (created, created.with_name("uptally.db-wal"), existing):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(created.parent.stat().st_mode) == 0o700
