"""Scheduled backups inside `serve`: every `backup.every`, rotated, and reported.

The schedule is derived from the newest manifest in the directory, so a restart neither skips
a backup nor takes one early. Each outcome is handed to callbacks: the runtime pings the
built-in heartbeat monitor (`backup.monitor`, "backup currency") and sets
`uptally_last_backup_timestamp_seconds`. With several instances on one PostgreSQL, an
advisory lock lets one of them back up; the others find the fresh manifest and wait.

With `backup.s3`, each new backup is then copied off-site. That copy is reported on its own
(`on_offsite`: a metric and an ERROR log line when it fails): the heartbeat tells that a
backup exists, and a bucket outage must neither fail nor delay the local backup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text

from uptally.backup.create import Created, create_backup
from uptally.backup.manifest import Manifest, list_backups
from uptally.backup.offsite import Bucket, Copied, copy_offsite
from uptally.backup.rotation import rotate
from uptally.clock import Clock, Millis
from uptally.config.schema import Backup, Config, HeartbeatMonitor
from uptally.secrets import Keyring
from uptally.store.database import Database

log = logging.getLogger(__name__)

_LOCK = 727_275  # advisory lock key: one scheduled backup at a time per PostgreSQL database
MAX_SLEEP_S = 300.0  # re-read the directory now and then (a manual backup resets the schedule)


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

    async def due_at(self) -> Millis:
        latest = await asyncio.to_thread(newest, self.directory)
        return self.clock.now_ms() if latest is None else latest.created_at_ms + self.settings.every

    async def run(self) -> None:
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
        """One backup now (None if another instance holds the lock), rotated and reported."""
        created = await self._locked_backup()
        if created is not None and self.offsite is not None:
            # After the lock and the heartbeat: a slow upload holds up neither.
            copied = await copy_offsite(
                self.offsite,
                created.path,
                created.manifest,
                self.settings.s3_keep,
                self.clock.now_ms(),
            )
            if self._on_offsite is not None:
                await self._on_offsite(copied)
        return created

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
            encrypt=self.settings.encrypt,
            clock=self.clock,
        )
        removed = await asyncio.to_thread(rotate, self.directory, self.settings.keep)
        log.info("backup %s written (%d old ones rotated out)", created.path, len(removed))
        await self._on_success(created)
        return created
