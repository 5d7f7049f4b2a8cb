"""Off-site backups against a real S3 endpoint (moto's server on 127.0.0.1): copy, rotate, fetch."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import config_from
from tests.procs import run_cli
from uptally.backup.create import Created, create_backup
from uptally.backup.manifest import SUFFIX, list_backups
from uptally.backup.offsite import Bucket, OffsiteError, copy_offsite
from uptally.backup.restore import restore_backup
from uptally.backup.verify import verify_backup
from uptally.clock import FakeClock
from uptally.config import ConfigError
from uptally.config.schema import BackupKeep, BackupS3
from uptally.evaluator import MonitorState
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.store.database import Database

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CREDENTIALS = {"TEST_S3_KEY": "testing", "TEST_S3_SECRET": "testing"}
DAY = 86_400_000


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def monkeypatched_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def _s3_block(endpoint: str, bucket: str, extra: str = "") -> str:
    return (
        f"{{bucket: {bucket}, endpoint_url: '{endpoint}', region: us-east-1, "
        f"access_key_env: TEST_S3_KEY, secret_key_env: TEST_S3_SECRET{extra}}}"
    )


def _settings(endpoint: str, bucket: str, **more: object) -> BackupS3:
    return BackupS3.model_validate(
        {
            "bucket": bucket,
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "access_key_env": "TEST_S3_KEY",
            "secret_key_env": "TEST_S3_SECRET",
            **more,
        }
    )


@pytest.fixture
def bucket_name(s3_endpoint: str) -> str:
    """A new, empty bucket on the server."""
    name = f"uptally-{uuid.uuid4().hex[:12]}"
    Bucket(_settings(s3_endpoint, name), CREDENTIALS).client.create_bucket(Bucket=name)
    return name


def _keys(client: S3Client, bucket: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    await db.migrate()
    async with db.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO results (id, monitor, location, at, ok, message) "
            "VALUES ('r1', 'api', 'local', 1, true, '')"
        )
    return db


# -- configuration -----------------------------------------------------------------------------


def test_the_s3_block_is_validated_with_clear_messages() -> None:
    cases = {
        "{bucket: my-backups, prefix: /prod/}": "must not start with /",
        "{bucket: My_Backups}": "is not a bucket name",
        "{bucket: b1s, access_key_env: KEY}": "give both access_key_env and secret_key_env",
        "{bucket: b1s, endpoint_url: 'minio:9000'}": "url must start with http",
        "{bucket: b1s, region: 'EU WEST'}": "is not a region name",
        "{bucket: b1s, secret_key: x}": "secret_key",
        "{bucket: b1s, keep: {daily: -1}}": "daily",
    }
    for block, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            config_from(f"backup: {{s3: {block}}}\n")


def test_the_prefix_is_a_folder_and_keep_defaults_to_the_local_one() -> None:
    config = config_from(
        "backup: {keep: {daily: 3}, s3: {bucket: my-backups, prefix: prod/uptally}}\n"
    )
    assert config.backup.s3 is not None
    assert config.backup.s3.prefix == "prod/uptally/"
    assert config.backup.s3_keep == BackupKeep(daily=3)
    other = config_from("backup: {s3: {bucket: b1s, keep: {daily: 1}}}\n")
    assert other.backup.s3_keep == BackupKeep(daily=1)


async def test_serve_refuses_to_start_without_the_named_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_S3_KEY", raising=False)
    with pytest.raises(OffsiteError, match="TEST_S3_KEY, which is not set"):
        Bucket(_settings("http://127.0.0.1:9", "b1s"), {})
    block = _s3_block("http://127.0.0.1:9", "b1s")
    config = config_from(f"backup: {{dir: '{tmp_path}/local', s3: {block}}}\n")
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    runtime = Runtime(config, db, metrics=Metrics(), run_probe=False)
    try:
        with pytest.raises(OffsiteError, match="TEST_S3_KEY"):
            await runtime.start()
    finally:
        await db.close()


# -- copies from serve's schedule --------------------------------------------------------------


async def _first_scheduled_backup(runtime: Runtime, directory: Path) -> Created:
    """Serve takes a backup at start when there is none: wait until its copy is settled."""
    counter = runtime.metrics.offsite_backups
    async with asyncio.timeout(10):
        while counter.labels("ok")._value.get() + counter.labels("failed")._value.get() < 1:
            await asyncio.sleep(0.02)
    await runtime.ingest.drained()
    [(path, manifest)] = list_backups(directory)
    return Created(path, manifest)


@pytest.mark.usefixtures("monkeypatched_credentials")
async def test_a_scheduled_backup_is_copied_off_site_with_its_checksum(
    s3_endpoint: str, bucket_name: str, tmp_path: Path, clock: FakeClock
) -> None:
    s3 = _s3_block(s3_endpoint, bucket_name, ", prefix: prod/uptally")
    config = config_from(f"backup: {{dir: '{tmp_path}/local', every: 1h, s3: {s3}}}\n")
    db = await _database(tmp_path)
    runtime = Runtime(config, db, clock=clock, metrics=Metrics(), run_probe=False)
    await runtime.start()
    try:
        assert runtime.offsite is not None
        created = await _first_scheduled_backup(runtime, tmp_path / "local")
        status = runtime.evaluator.status("uptally-backup")
        assert status is not None
        assert status.state is MonitorState.UP
        metrics = runtime.metrics
        assert metrics.offsite_backups.labels("ok")._value.get() == 1
        assert metrics.offsite_backups.labels("failed")._value.get() == 0
        assert metrics.last_offsite_backup._value.get() == created.manifest.created_at_ms / 1000
    finally:
        await runtime.stop()

    client = runtime.offsite.client
    key = f"prod/uptally/{created.path.name}"
    assert _keys(client, bucket_name) == [key, key + SUFFIX]
    head = client.head_object(Bucket=bucket_name, Key=key)
    assert head["ContentLength"] == created.manifest.size
    assert head["Metadata"]["sha256"] == created.manifest.sha256
    manifest = client.get_object(Bucket=bucket_name, Key=key + SUFFIX)["Body"].read()
    assert manifest == (created.path.parent / (created.path.name + SUFFIX)).read_bytes()
    [remote] = await runtime.offsite.list_backups()
    assert (remote.key, remote.manifest) == (key, created.manifest)


async def test_an_unreachable_bucket_fails_only_the_off_site_step(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    config = config_from(
        f"backup: {{dir: '{tmp_path}/local', every: 1h, s3: {_s3_block(endpoint, 'gone')}}}\n"
    )
    offsite = Bucket(_settings(endpoint, "gone"), CREDENTIALS, attempts=1)
    db = await _database(tmp_path)
    runtime = Runtime(config, db, clock=clock, metrics=Metrics(), run_probe=False, offsite=offsite)
    await runtime.start()
    try:
        with caplog.at_level(logging.ERROR, logger="uptally.backup.offsite"):
            created = await _first_scheduled_backup(runtime, tmp_path / "local")
        status = runtime.evaluator.status("uptally-backup")
        assert status is not None
        assert status.state is MonitorState.UP  # the local backup is what the heartbeat tells
        assert runtime.metrics.offsite_backups.labels("failed")._value.get() == 1
        assert runtime.metrics.offsite_backups.labels("ok")._value.get() == 0
        assert runtime.metrics.last_offsite_backup._value.get() == 0
        assert runtime.metrics.last_backup._value.get() == created.manifest.created_at_ms / 1000
    finally:
        await runtime.stop()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert f"off-site copy of {created.path.name} to s3://gone/ FAILED" in message
    assert "Could not connect to the endpoint URL" in message
    assert [path for path, _ in list_backups(tmp_path / "local")] == [created.path]
    assert (await verify_backup(created.path, None)).ok


# -- retention and restore ---------------------------------------------------------------------


async def test_retention_deletes_old_remote_copies_and_abandoned_uploads(
    s3_endpoint: str, bucket_name: str, tmp_path: Path
) -> None:
    bucket = Bucket(_settings(s3_endpoint, bucket_name), CREDENTIALS)
    db = await _database(tmp_path)
    clock = FakeClock(1_767_225_600_000)  # 2026-01-01T00:00Z
    keep = BackupKeep(daily=2, weekly=0, monthly=0)
    names = []
    try:
        for _ in range(4):
            created = await create_backup(db, tmp_path / "local", clock=clock)
            now = clock.now_ms()
            copied = await copy_offsite(bucket, created.path, created.manifest, keep, now)
            assert copied.ok, copied.detail
            names.append(created.path.name)
            clock.advance(DAY)
    finally:
        await db.close()
    # Not uptally's, or a half-upload: left alone until it is a day old.
    bucket.client.put_object(Bucket=bucket_name, Key="notes.txt", Body=b"mine")
    bucket.client.put_object(Bucket=bucket_name, Key="uptally-half.sqlite.gz", Body=b"x")
    assert _keys(bucket.client, bucket_name) == sorted(
        [*names[2:], *(n + SUFFIX for n in names[2:]), "notes.txt", "uptally-half.sqlite.gz"]
    )
    assert len(list_backups(tmp_path / "local")) == 4  # off-site retention is its own

    # The half-upload's age is the server's time of it (the real one) to now.
    removed = await bucket.rotate(keep, int(time.time() * 1000) + 2 * DAY)
    assert removed == ["uptally-half.sqlite.gz"]
    assert [r.key for r in await bucket.list_backups()] == names[2:]
    assert "notes.txt" in _keys(bucket.client, bucket_name)


async def test_a_backup_restores_from_the_bucket(
    s3_endpoint: str, bucket_name: str, tmp_path: Path
) -> None:
    bucket = Bucket(_settings(s3_endpoint, bucket_name, prefix="x"), CREDENTIALS)
    db = await _database(tmp_path)
    try:
        created = await create_backup(db, tmp_path / "local", None)
    finally:
        await db.close()
    key = await bucket.upload(created.path, created.manifest)
    assert key == f"x/{created.path.name}"

    fetched = await bucket.download(key + SUFFIX, tmp_path / "fetched")  # the manifest names it
    assert fetched.read_bytes() == created.path.read_bytes()
    assert (await verify_backup(fetched, None)).ok
    target = Database(f"sqlite+aiosqlite:///{tmp_path}/restored/uptally.db")
    try:
        restored = await restore_backup(fetched, target, None, force=False, actor="cli:test")
        assert restored.sha256 == created.manifest.sha256
        async with target.connect() as conn:
            rows = (await conn.exec_driver_sql("SELECT id FROM results")).scalars().all()
        assert rows == ["r1"]
    finally:
        await target.close()


@pytest.mark.slow
async def test_backup_create_and_restore_through_the_bucket_on_the_command_line(
    s3_endpoint: str, bucket_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"backup: {{s3: {_s3_block(s3_endpoint, bucket_name)}}}\n")
    db = await _database(tmp_path / "data")
    await db.close()
    code, output = await run_cli(
        "backup", "create", "--config", str(config), "--data-dir", str(tmp_path / "data"),
        env=CREDENTIALS,
    )  # fmt: skip
    assert code == 0, output
    name = Path(output.strip().splitlines()[0]).name
    assert f"copied to s3://{bucket_name}/{name}" in output
    code, output = await run_cli(
        "backup", "restore", f"s3://{bucket_name}/{name}", "--config", str(config),
        "--data-dir", str(tmp_path / "restored"), env=CREDENTIALS,
    )  # fmt: skip
    assert code == 0, output
    assert "restored the backup of" in output

    code, output = await run_cli(
        "backup", "restore", f"s3://{bucket_name}/nothing-here", "--config", str(config),
        "--data-dir", str(tmp_path / "other"), env=CREDENTIALS,
    )  # fmt: skip
    assert code == 1
    assert "cannot download" in output
