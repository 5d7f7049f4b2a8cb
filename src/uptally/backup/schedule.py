"""Scheduled backups inside `serve`: every `backup.every`, rotated, reported, copied off-site.

The schedule is derived from the newest manifest in the directory, so a restart neither skips
a backup nor takes one early. Each outcome is handed to callbacks: the runtime pings the
built-in heartbeat monitor (`backup.monitor`, "backup currency") and sets
`uptally_last_backup_timestamp_seconds`. With several instances on one PostgreSQL, an
advisory lock lets one of them back up; the others find the fresh manifest and wait.

With `backup.s3`, the newest backup is then copied off-site by a loop of its own: the
heartbeat tells that a backup exists, and a bucket outage must neither fail nor delay the local
backup. Each attempt is reported on its own (`on_offsite`: a metric, an ERROR log line when it
fails). A failed copy is retried after 1 min, 2, 4 … at most 1 h apart, until it succeeds or a
newer local backup takes over; every attempt asks the bucket first, so nothing is uploaded
twice. After a restart the newest local backup is looked for in the bucket the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from uptally.backup.create import Created, create_backup
from uptally.backup.manifest import Manifest, list_backups
from uptally.backup.offsite import Bucket, Copied, copy_offsite
from uptally.backup.rotation import rotate
from uptally.clock import Clock, Millis
from uptally.config.schema import Backup, Config, HeartbeatMonitor
from uptally.durations import format_duration_ms
from uptally.secrets import Keyring
from uptally.store.database import Database
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

_LOCK = 727_275  # advisory lock key: one scheduled backup at a time per PostgreSQL database
MAX_SLEEP_S = 300.0  # re-read the directory now and then (a manual backup resets the schedule)
RETRY_FIRST_MS = 60_000  # the first retry of a failed off-site copy; then doubling …
RETRY_MOST_MS = 3_600_000  # … up to this


def retry_delay_ms(failures: int) -> Millis:
    """The wait after `failures` failed off-site attempts in a row: 1 min, 2, 4 … at most 1 h."""
    return min(RETRY_FIRST_MS << min(max(failures, 1) - 1, 16), RETRY_MOST_MS)


@dataclass(slots=True)
class OwedCopy:
    """An off-site copy still owed: of the newest local backup, next tried at `due_ms`."""

    file: str  # the backup the failures were counted for
    due_ms: Millis
    failures: int = 0  # failed attempts in a row


def with_backup_monitor(config: Config) -> Config:
    """The config plus the built-in heartbeat monitor for backup currency, when backups run."""
    settings = config.backup
    if settings.dir is None or config.monitor(settings.monitor) is not None:
        return config
    monitor = HeartbeatMonitor.model_validate(
        {
            "id": settings.monitor,
            "name": "uptally backups",
            "description": f"a backup to {settings.dir} at least every "
            f"{settings.every // 1000}s (plus {settings.grace // 1000}s grace)",
            "kind": "heartbeat",
            "period": f"{settings.every}ms",
            "grace": f"{settings.grace}ms",
        }
    )
    return config.model_copy(update={"monitors": [*config.monitors, monitor]})


def newest(directory: Path) -> Manifest | None:
    backups = list_backups(directory)
    return backups[-1][1] if backups else None


class BackupSchedule:
    def __init__(
        self,
        db: Database,
        settings: Backup,
        keyring: Keyring | None,
        clock: Clock,
        on_success: Callable[[Created], Awaitable[None]],
        on_failure: Callable[[str], Awaitable[None]],
        *,
        offsite: Bucket | None = None,
        on_offsite: Callable[[Copied], Awaitable[None]] | None = None,
    ) -> None:
        assert settings.dir is not None
        self.db = db
        self.settings = settings
        self.directory = Path(settings.dir)
        self.keyring = keyring
        self.clock = clock
        self._on_success = on_success
        self._on_failure = on_failure
        self.offsite = offsite
        self._on_offsite = on_offsite
        self.owed: OwedCopy | None = None
        self._owed_changed = asyncio.Event()

    async def due_at(self) -> Millis:
        latest = await asyncio.to_thread(newest, self.directory)
        return self.clock.now_ms() if latest is None else latest.created_at_ms + self.settings.every

    async def run(self) -> None:
        """Back up on schedule; with a bucket, keep the newest backup copied off-site beside."""
        if self.offsite is None:
            await self._backups()
            return
        latest = await asyncio.to_thread(newest, self.directory)
        if latest is not None:  # its copy may have failed before a restart, or never been tried
            self._owe(latest.file)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._backups(), name="backups")
            tasks.create_task(self._copies(), name="offsite-copies")

    async def _backups(self) -> None:
        while True:
            delay = (await self.due_at() - self.clock.now_ms()) / 1000
            if delay > 0:
                await asyncio.sleep(min(delay, MAX_SLEEP_S))
                continue
            try:
                await self.run_once()
            except Exception as error:
                log.exception("scheduled backup failed")
                await self._on_failure(f"backup failed: {type(error).__name__}: {error}")
                # Retry sooner than the next regular slot, but do not hammer a full disk.
                retry = min(max(self.settings.every / 10, 60_000), 3_600_000)
                await asyncio.sleep(retry / 1000)

    async def run_once(self) -> Created | None:
        """One backup now (None if another instance holds the lock), rotated and reported.

        Its off-site copy is then owed (`copy_owed`), tried at once by the loop of `run`.
        """
        created = await self._locked_backup()
        if created is not None and self.offsite is not None:
            superseded = self.owed
            if superseded is not None and superseded.failures:
                log.warning(
                    "gave up copying %s off-site after %d failed attempts: %s is newer",
                    superseded.file,
                    superseded.failures,
                    created.manifest.file,
                )
            self._owe(created.manifest.file)
        return created

    def wake(self) -> None:
        """Look at the owed copy and the clock now, not at the next timer (a fake clock moved)."""
        self._owed_changed.set()

    def _owe(self, file: str) -> None:
        self.owed = OwedCopy(file, self.clock.now_ms())
        self._owed_changed.set()

    async def _copies(self) -> None:
        """The off-site loop: apart from the backups, so a slow bucket delays none of them."""
        while True:
            self._owed_changed.clear()
            owed = self.owed
            if owed is None:
                await self._owed_changed.wait()
                continue
            delay = (owed.due_ms - self.clock.now_ms()) / 1000
            if delay > 0:
                await wait_event(self._owed_changed, min(delay, MAX_SLEEP_S))
                continue
            try:
                await self.copy_owed()
            except Exception:  # a bug or the directory, not the bucket: never a busy loop
                log.exception("off-site copy of %s failed", owed.file)
                self._failed(owed)

    async def copy_owed(self) -> Copied | None:
        """Try the owed off-site copy if it is due; None if none was, or nothing new happened.

        The copy is of the newest local backup at this moment (a backup made by `uptally backup
        create` meanwhile takes over). An outcome is reported, except a backup found in the
        bucket at a first look (after a restart, or copied by `backup create`): nothing new.
        """
        owed = self.owed
        if self.offsite is None or owed is None or owed.due_ms > self.clock.now_ms():
            return None
        latest = await asyncio.to_thread(newest, self.directory)
        if latest is None:  # deleted by hand: nothing left to copy
            self._settle(owed)
            return None
        if latest.file != owed.file:
            owed.file, owed.failures = latest.file, 0
        tried = owed.failures > 0
        copied = await copy_offsite(
            self.offsite,
            self.directory / latest.file,
            latest,
            self.settings.s3_keep,
            self.clock.now_ms(),
        )
        if copied.ok:
            self._settle(owed)
        else:
            self._failed(owed)
        if (copied.uploaded or not copied.ok or tried) and self._on_offsite is not None:
            await self._on_offsite(copied)
        return copied

    def _settle(self, owed: OwedCopy) -> None:
        if self.owed is owed:  # not replaced by a newer backup meanwhile
            self.owed = None

    def _failed(self, owed: OwedCopy) -> None:
        if self.owed is not owed:
            return
        owed.failures += 1
        delay = retry_delay_ms(owed.failures)
        owed.due_ms = self.clock.now_ms() + delay
        log.warning("next attempt to copy %s off-site in %s", owed.file, format_duration_ms(delay))

    async def _locked_backup(self) -> Created | None:
        if self.db.is_sqlite:
            return await self._backup()
        async with self.db.connect() as conn:
            if not (await conn.execute(text(f"SELECT pg_try_advisory_lock({_LOCK})"))).scalar():
                return None
            try:
                if await self.due_at() > self.clock.now_ms():
                    return None  # another instance just made one
                return await self._backup()
            finally:
                await conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK})"))

    async def _backup(self) -> Created:
        created = await create_backup(
            self.db,
            self.directory,
            self.keyring,
            encrypt=self.settings.encrypts(self.keyring is not None),
            clock=self.clock,
        )
        removed = await asyncio.to_thread(rotate, self.directory, self.settings.keep)
        log.info("backup %s written (%d old ones rotated out)", created.path, len(removed))
        await self._on_success(created)
        return created
