"""Off-site backups against a real S3 endpoint (moto's server on 127.0.0.1): copy, retry,
rotate, list, fetch."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result

from tests.conftest import _pg_admin, _pg_base, config_from
from tests.procs import run_cli
from tests.receivers import poll_until
from uptally import audit
from uptally.backup.create import Created, create_backup
from uptally.backup.manifest import SUFFIX, list_backups, manifest_path
from uptally.backup.offsite import Bucket, Copied, OffsiteError, copy_offsite
from uptally.backup.restore import restore_backup
from uptally.backup.schedule import BackupSchedule, OwedCopy, retry_delay_ms
from uptally.backup.verify import verify_backup
from uptally.clock import FakeClock
from uptally.config import ConfigError
from uptally.config.schema import BackupKeep, BackupS3
from uptally.evaluator import MonitorState
from uptally.metrics import Metrics
from uptally.runtime import Runtime
from uptally.secrets import Key, Keyring
from uptally.store.database import Database

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CREDENTIALS = {"TEST_S3_KEY": "testing", "TEST_S3_SECRET": "testing"}
DAY = 86_400_000
SECRET_KEY = base64.b64encode(b"o" * 32).decode()


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


def _new_bucket_name() -> str:
    return f"uptally-{uuid.uuid4().hex[:12]}"


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


# -- retries of a failed copy ------------------------------------------------------------------


def test_retries_wait_a_minute_then_twice_as_long_up_to_an_hour() -> None:
    minutes = [retry_delay_ms(failures) // 60_000 for failures in range(1, 10)]
    assert minutes == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert retry_delay_ms(10_000) == 3_600_000


def _schedule(
    db: Database, directory: Path, clock: FakeClock, bucket: Bucket, outcomes: list[Copied]
) -> BackupSchedule:
    """serve's schedule without serve: its steps are taken by the test, on a fake clock."""
    settings = config_from(f"backup: {{dir: '{directory}', every: 1h}}\n").backup

    async def ignore(_: object) -> None:
        pass

    async def record(copied: Copied) -> None:
        outcomes.append(copied)

    return BackupSchedule(
        db, settings, None, clock, ignore, ignore, offsite=bucket, on_offsite=record
    )


async def _attempt(schedule: BackupSchedule) -> Copied:
    copied = await schedule.copy_owed()
    assert copied is not None, "no copy was due"
    return copied


async def test_a_failed_copy_is_retried_with_backoff_until_the_bucket_takes_it(
    s3_endpoint: str, tmp_path: Path, clock: FakeClock
) -> None:
    name = _new_bucket_name()  # not created yet: every attempt fails
    bucket = Bucket(_settings(s3_endpoint, name), CREDENTIALS)
    db = await _database(tmp_path)
    outcomes: list[Copied] = []
    schedule = _schedule(db, tmp_path / "local", clock, bucket, outcomes)
    try:
        created = await schedule.run_once()
        assert created is not None
        assert schedule.owed == OwedCopy(created.path.name, clock.now_ms())  # due at once
        waits = []
        for failures in (1, 2, 3):
            copied = await _attempt(schedule)
            assert not copied.ok
            assert "NoSuchBucket" in copied.detail
            owed = schedule.owed
            assert owed is not None
            assert owed.failures == failures
            waits.append(owed.due_ms - clock.now_ms())
            clock.advance(waits[-1] - 1)
            assert await schedule.copy_owed() is None  # not due yet: the bucket is not asked
            clock.advance(1)
        assert waits == [60_000, 120_000, 240_000]

        bucket.client.create_bucket(Bucket=name)
        copied = await _attempt(schedule)
        assert (copied.ok, copied.uploaded) == (True, True)
        assert schedule.owed is None  # settled: nothing more to try
        clock.advance(DAY)
        assert await schedule.copy_owed() is None
    finally:
        await db.close()
    assert [c.ok for c in outcomes] == [False, False, False, True]  # each attempt, once
    key = created.path.name
    assert _keys(bucket.client, name) == [key, key + SUFFIX]
    assert bucket.client.head_object(Bucket=name, Key=key)["Metadata"]["sha256"] == (
        created.manifest.sha256
    )


@pytest.mark.parametrize("arrived", ["backup", "backup and manifest"])
async def test_a_retry_uploads_only_what_the_bucket_lacks(
    s3_endpoint: str, tmp_path: Path, clock: FakeClock, arrived: str
) -> None:
    name = _new_bucket_name()
    bucket = Bucket(_settings(s3_endpoint, name), CREDENTIALS)
    db = await _database(tmp_path)
    outcomes: list[Copied] = []
    schedule = _schedule(db, tmp_path / "local", clock, bucket, outcomes)
    try:
        created = await schedule.run_once()
        assert created is not None
        assert not (await _attempt(schedule)).ok
        # What a failed attempt may leave behind (an answer lost on the way back), put there by
        # hand with a marker that a second upload would replace.
        bucket.client.create_bucket(Bucket=name)
        key = created.path.name
        metadata = {"sha256": created.manifest.sha256, "marker": "first-attempt"}
        bucket.client.put_object(
            Bucket=name, Key=key, Body=created.path.read_bytes(), Metadata=metadata
        )
        if arrived == "backup and manifest":
            bucket.client.put_object(
                Bucket=name,
                Key=key + SUFFIX,
                Body=manifest_path(created.path).read_bytes(),
                Metadata=metadata,
            )
        clock.advance(retry_delay_ms(1))
        copied = await _attempt(schedule)
    finally:
        await db.close()
    assert copied.ok, copied.detail
    assert copied.uploaded is (arrived == "backup")  # the missing manifest, and only that
    assert [c.ok for c in outcomes] == [False, True]  # found there after a failure: news
    assert _keys(bucket.client, name) == [key, key + SUFFIX]
    for object_key in (key, key + SUFFIX):
        head = bucket.client.head_object(Bucket=name, Key=object_key)
        assert head["Metadata"]["sha256"] == created.manifest.sha256
    assert bucket.client.head_object(Bucket=name, Key=key)["Metadata"]["marker"] == "first-attempt"
    [remote] = await bucket.list_backups()
    assert remote.manifest == created.manifest


async def test_the_next_backup_takes_over_from_a_copy_that_keeps_failing(
    s3_endpoint: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = _new_bucket_name()
    bucket = Bucket(_settings(s3_endpoint, name), CREDENTIALS)
    db = await _database(tmp_path)
    outcomes: list[Copied] = []
    schedule = _schedule(db, tmp_path / "local", clock, bucket, outcomes)
    try:
        first = await schedule.run_once()
        for _ in range(2):
            assert not (await _attempt(schedule)).ok
            owed = schedule.owed
            assert owed is not None
            clock.advance(owed.due_ms - clock.now_ms())
        clock.advance(3_600_000)
        bucket.client.create_bucket(Bucket=name)
        with caplog.at_level(logging.WARNING, logger="uptally.backup.schedule"):
            second = await schedule.run_once()  # the next scheduled backup
        assert first is not None
        assert second is not None
        assert schedule.owed == OwedCopy(second.path.name, clock.now_ms())  # a fresh start
        assert (await _attempt(schedule)).ok
        assert await schedule.copy_owed() is None
    finally:
        await db.close()
    assert [(c.backup, c.ok) for c in outcomes] == [
        (first.path.name, False),
        (first.path.name, False),
        (second.path.name, True),
    ]
    assert _keys(bucket.client, name) == [second.path.name, second.path.name + SUFFIX]
    assert f"gave up copying {first.path.name} off-site after 2 failed attempts" in caplog.text


async def test_serve_retries_a_failed_copy_on_its_clock(
    s3_endpoint: str, tmp_path: Path, clock: FakeClock
) -> None:
    name = _new_bucket_name()
    config = config_from(
        f"backup: {{dir: '{tmp_path}/local', every: 1h, s3: {_s3_block(s3_endpoint, name)}}}\n"
    )
    offsite = Bucket(_settings(s3_endpoint, name), CREDENTIALS)
    db = await _database(tmp_path)
    runtime = Runtime(config, db, clock=clock, metrics=Metrics(), run_probe=False, offsite=offsite)
    counter = runtime.metrics.offsite_backups
    await runtime.start()
    try:
        created = await _first_scheduled_backup(runtime, tmp_path / "local")
        schedule = runtime.backups
        assert schedule is not None
        assert counter.labels("failed")._value.get() == 1
        assert schedule.owed == OwedCopy(created.path.name, clock.now_ms() + 60_000, 1)
        offsite.client.create_bucket(Bucket=name)
        clock.advance(60_000)
        schedule.wake()  # the fake clock moved: the loop looks again instead of sleeping on
        await poll_until(lambda: counter.labels("ok")._value.get() == 1, timeout=10)
        assert counter.labels("failed")._value.get() == 1
        assert runtime.metrics.last_offsite_backup._value.get() == (
            created.manifest.created_at_ms / 1000
        )
        assert schedule.owed is None
        status = runtime.evaluator.status("uptally-backup")
        assert status is not None
        assert status.state is MonitorState.UP
    finally:
        await runtime.stop()
    key = created.path.name
    assert _keys(offsite.client, name) == [key, key + SUFFIX]


async def test_after_a_restart_the_newest_backup_is_copied_unless_it_is_there(
    s3_endpoint: str, tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = _new_bucket_name()
    config = config_from(
        f"backup: {{dir: '{tmp_path}/local', every: 1h, s3: {_s3_block(s3_endpoint, name)}}}\n"
    )
    offsite = Bucket(_settings(s3_endpoint, name), CREDENTIALS)
    seeded = await _database(tmp_path)
    url = seeded.url
    await seeded.close()

    def runtime() -> Runtime:
        db = Database(url)
        return Runtime(config, db, clock=clock, metrics=Metrics(), run_probe=False, offsite=offsite)

    first = runtime()
    await first.start()  # backs up at once; the bucket does not exist yet
    try:
        created = await _first_scheduled_backup(first, tmp_path / "local")
        assert first.metrics.offsite_backups.labels("failed")._value.get() == 1
    finally:
        await first.stop()
    offsite.client.create_bucket(Bucket=name)

    second = runtime()  # not due for another backup: the newest one's copy is still owed
    await second.start()
    try:
        counter = second.metrics.offsite_backups
        await poll_until(lambda: counter.labels("ok")._value.get() == 1, timeout=10)
        assert counter.labels("failed")._value.get() == 0
    finally:
        await second.stop()
    key = created.path.name
    assert _keys(offsite.client, name) == [key, key + SUFFIX]

    third = runtime()
    with caplog.at_level(logging.INFO, logger="uptally.backup.offsite"):
        await third.start()
        try:
            await poll_until(lambda: "was already in" in caplog.text, timeout=10)
            counter = third.metrics.offsite_backups
            assert counter.labels("ok")._value.get() == 0  # found there: not uploaded, no news
            assert counter.labels("failed")._value.get() == 0
            gauge = third.metrics.last_offsite_backup  # from the bucket's listing at start
            await poll_until(lambda: gauge._value.get() == created.manifest.created_at_ms / 1000)
        finally:
            await third.stop()
    assert [path for path, _ in list_backups(tmp_path / "local")] == [created.path]


# -- what arrived is read back -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("truncated", "bytes arrived, the manifest says"),
        ("another object", "SHA-256 metadata 'f00d' does not match the manifest"),
    ],
)
async def test_a_copy_that_differs_in_the_bucket_is_deleted_and_reported(
    s3_endpoint: str,
    bucket_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    problem: str,
) -> None:
    bucket = Bucket(_settings(s3_endpoint, bucket_name), CREDENTIALS)
    db = await _database(tmp_path)
    try:
        created = await create_backup(db, tmp_path / "local", None)
    finally:
        await db.close()
    client = bucket.client
    upload_file = client.upload_file

    def damaging_upload(filename: str, name: str, key: str, **kwargs: Any) -> None:
        """The upload succeeds, but what the bucket then holds is not what was sent."""
        upload_file(filename, name, key, **kwargs)
        if key.endswith(SUFFIX):
            return
        body = Path(filename).read_bytes()
        if damage == "truncated":
            client.put_object(
                Bucket=name, Key=key, Body=body[:-1], Metadata=kwargs["ExtraArgs"]["Metadata"]
            )
        else:
            client.put_object(Bucket=name, Key=key, Body=body, Metadata={"sha256": "f00d"})

    monkeypatch.setattr(client, "upload_file", damaging_upload)
    copied = await copy_offsite(bucket, created.path, created.manifest, BackupKeep(), 0)

    assert not copied.ok
    assert problem in copied.detail
    assert copied.detail.endswith("the copy was deleted")
    assert _keys(client, bucket_name) == []  # no damaged backup, and no manifest vouching for it
    assert await bucket.list_backups() == []
    assert (await verify_backup(created.path, None)).ok  # the local backup stands


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


# -- `backup list` and restores on the command line, in-process ---------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """`uptally …` in this process (click's runner): about a second less than a new process."""
    from typer.testing import CliRunner

    from uptally.cli import app

    settings = {**CREDENTIALS, "UPTALLY_SECRET_KEY": SECRET_KEY, "COLUMNS": "200", **(env or {})}
    return CliRunner().invoke(app, list(args), env=settings)


async def _backed_up(url: str, directory: Path, bucket: Bucket) -> Created:
    """Three results, each with its audit entry; backed up (encrypted), then copied off-site."""
    db = Database(url)
    try:
        for n in range(3):
            async with db.begin() as conn:
                await conn.exec_driver_sql(
                    "INSERT INTO results (id, monitor, location, at, ok, message) "
                    f"VALUES ('r{n}', 'api', 'local', {n}, true, '')"
                )
                await audit.append(conn, "system", "test.write", f"result:r{n}", {})
        ring = Keyring(Key.parse(SECRET_KEY))
        created = await create_backup(db, directory, ring, encrypt=True)
    finally:
        await db.close()
    keep, now = BackupKeep(), created.manifest.created_at_ms
    copied = await copy_offsite(bucket, created.path, created.manifest, keep, now)
    assert copied.ok, copied.detail
    return created


@pytest.fixture
def restore_target(db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """An empty database of db_url's kind: its URL, and the environment that names it."""
    if db_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path}/restored/uptally.db", {}
        return
    name = f"uptally_r_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin([f"CREATE DATABASE {name}"]))
    url = f"postgresql+asyncpg://{_pg_base().split('://', 1)[1]}/{name}"
    try:
        yield url, {"UPTALLY_DATABASE_URL": url.replace("+asyncpg", "")}
    finally:
        asyncio.run(_pg_admin([f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]))


async def _restored(url: str) -> tuple[list[str], str, bool]:
    db = Database(url)
    try:
        async with db.connect() as conn:
            rows = await conn.exec_driver_sql("SELECT id FROM results ORDER BY id")
            [last] = await audit.list_entries(conn, audit.AuditFilter(limit=1))
            return list(rows.scalars()), last.action, (await audit.verify(conn)).ok
    finally:
        await db.close()


def test_a_backup_restores_from_the_bucket_into_an_empty_database(
    db_url: str,
    s3_endpoint: str,
    bucket_name: str,
    tmp_path: Path,
    restore_target: tuple[str, dict[str, str]],
) -> None:
    bucket = Bucket(_settings(s3_endpoint, bucket_name, prefix="prod"), CREDENTIALS)
    created = asyncio.run(_backed_up(db_url, tmp_path / "local", bucket))
    kind = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    assert created.manifest.database == kind
    assert created.path.name.endswith(
        ".pgdump.gz.enc" if kind == "postgresql" else ".sqlite.gz.enc"
    )
    config = tmp_path / "c.yaml"
    config.write_text(f"backup: {{s3: {_s3_block(s3_endpoint, 'elsewhere')}}}\n")
    url = f"s3://{bucket_name}/prod/{created.path.name}"

    listed = _cli(
        "backup", "list", "--config", str(config), "--dir", str(tmp_path / "local"),
        "--s3", f"s3://{bucket_name}/prod", "--format", "json",
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)["backups"]
    assert [(row["location"], row["path"]) for row in rows] == [
        ("local", str(created.path)),
        ("s3", url),
    ]
    for row in rows:
        assert row["sha256"] == created.manifest.sha256
        assert row["size"] == created.manifest.size
        assert row["schema_revision"] == created.manifest.schema_revision
        assert (row["database"], row["encrypted"]) == (kind, True)
        assert row["created_at"] == created.manifest.created_at

    target_url, env = restore_target
    data_dir = str(tmp_path / "restored")
    restored = _cli(
        "backup", "restore", url, "--config", str(config), "--data-dir", data_dir, env=env
    )
    assert restored.exit_code == 0, restored.output
    assert f"restored the backup of {created.manifest.created_at}" in restored.stdout
    assert asyncio.run(_restored(target_url)) == (["r0", "r1", "r2"], "backup.restored", True)


def test_backup_list_prints_a_table_or_csv_and_names_what_it_cannot_read(
    s3_endpoint: str, bucket_name: str, tmp_path: Path
) -> None:
    bucket = Bucket(_settings(s3_endpoint, bucket_name), CREDENTIALS)
    clock = FakeClock()

    async def two_backups_one_off_site() -> list[Created]:
        db = await _database(tmp_path)
        try:
            older = await create_backup(db, tmp_path / "local", clock=clock)
            clock.advance(DAY)
            newer = await create_backup(db, tmp_path / "local", clock=clock)
        finally:
            await db.close()
        copied = await copy_offsite(bucket, older.path, older.manifest, BackupKeep(), 0)
        assert copied.ok, copied.detail
        return [older, newer]

    older, newer = asyncio.run(two_backups_one_off_site())
    config = tmp_path / "c.yaml"
    config.write_text(
        f"backup: {{dir: '{tmp_path}/local', s3: {_s3_block(s3_endpoint, bucket_name)}}}\n"
    )

    listed = _cli("backup", "list", "--config", str(config), "--format", "csv")
    assert listed.exit_code == 0, listed.output
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert [(row["file"], row["location"]) for row in rows] == [
        (older.path.name, "local"),
        (older.path.name, "s3"),
        (newer.path.name, "local"),
    ]
    assert rows[1]["path"] == f"s3://{bucket_name}/{older.path.name}"
    assert rows[2] == {
        "created_at": newer.manifest.created_at,
        "file": newer.path.name,
        "size": str(newer.manifest.size),
        "schema_revision": newer.manifest.schema_revision,
        "encrypted": "false",
        "sha256": newer.manifest.sha256,
        "database": "sqlite",
        "location": "local",
        "path": str(newer.path),
    }

    table = _cli("backup", "list", "--config", str(config))
    assert table.exit_code == 0, table.output
    lines = [line for line in table.stdout.splitlines() if older.path.name in line]
    assert len(lines) == 2
    for line, location in zip(lines, ("local", "s3"), strict=True):
        assert older.manifest.created_at in line
        assert older.manifest.sha256[:12] in line
        assert older.manifest.sha256[:13] not in line  # shortened
        assert f"{older.manifest.size:,}" in line
        assert line.rstrip(" │").endswith(location)
    assert newer.path.name in table.stdout

    missing = _new_bucket_name()
    unreadable = _cli("backup", "list", "--config", str(config), "--s3", f"s3://{missing}/x")
    assert unreadable.exit_code == 1
    assert f"cannot list s3://{missing}/x/" in unreadable.output
    assert "NoSuchBucket" in unreadable.output
    for wrong in (["--s3", "s3://Not_A_Bucket"], ["--s3", "https://b1s/"], ["--format", "xml"]):
        refused = _cli("backup", "list", "--config", str(config), *wrong)
        assert refused.exit_code == 2, (wrong, refused.output)
