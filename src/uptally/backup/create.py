"""`backup create`: a consistent snapshot, compressed, optionally encrypted, with its manifest."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from uptally import __version__
from uptally.backup.dumps import dump_postgres, snapshot_sqlite, sqlite_path
from uptally.backup.manifest import Manifest, write_manifest
from uptally.backup.stream import seal_file
from uptally.clock import Clock, SystemClock
from uptally.secrets import Keyring, SecretKeyError
from uptally.store.database import Database
from uptally.store.files import private_dir, private_file


@dataclass(frozen=True, slots=True)
class Created:
    path: Path
    manifest: Manifest


def backup_name(at_ms: int, database: str, encrypted: bool) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at_ms / 1000)) + f"{at_ms % 1000:03d}Z"
    extension = "sqlite.gz" if database == "sqlite" else "pgdump.gz"
    return f"uptally-{stamp}.{extension}" + (".enc" if encrypted else "")


async def create_backup(
    db: Database,
    out_dir: Path,
    keyring: Keyring | None = None,
    *,
    encrypt: bool = False,
    clock: Clock | None = None,
) -> Created:
    """Back up the live database into `out_dir` (works while serve writes to it)."""
    if encrypt and keyring is None:
        raise SecretKeyError("an encrypted backup needs UPTALLY_SECRET_KEY")
    database = "sqlite" if db.is_sqlite else "postgresql"
    started = (clock or SystemClock()).now_ms()
    name = backup_name(started, database, encrypt)
    # Work beside the target, so the finished file is renamed into place, never copied.
    work = await asyncio.to_thread(_workdir, out_dir)
    try:
        raw = work / "snapshot"
        if db.is_sqlite:
            snapshot = await asyncio.to_thread(snapshot_sqlite, sqlite_path(db.url), raw)
        else:
            snapshot = await dump_postgres(db, raw)
        sealer = keyring if encrypt else None
        digest, size = await asyncio.to_thread(seal_file, raw, work / name, sealer)
        manifest = Manifest(
            file=name,
            sha256=digest,
            size=size,
            created_at_ms=started,
            database=database,
            schema_revision=snapshot.revision,
            encrypted=encrypt,
            key_id=keyring.current.id if encrypt and keyring else None,
            key_salt=_salt(keyring) if encrypt else None,
            audit_head=snapshot.audit_head,
            tables=snapshot.tables,
            uptally_version=__version__,
        )
        final = await asyncio.to_thread(_publish, work / name, out_dir / name, manifest)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    return Created(final, manifest)


def _workdir(out_dir: Path) -> Path:
    private_dir(out_dir)
    return Path(tempfile.mkdtemp(dir=out_dir, prefix=".uptally-backup-"))


def _publish(partial: Path, final: Path, manifest: Manifest) -> Path:
    private_file(partial)
    os.replace(partial, final)
    private_file(write_manifest(final, manifest))
    return final


def _salt(keyring: Keyring | None) -> str | None:
    """The installation's salt, which a passphrase key needs to be stretched again on restore."""
    if keyring is None or keyring.salt is None or keyring.current.passphrase is None:
        return None
    return keyring.salt.hex()
