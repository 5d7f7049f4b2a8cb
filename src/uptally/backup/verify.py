"""`backup verify`: checksum, decrypt, decompress, and open what comes out."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from uptally.backup.dumps import BackupError, describe_sqlite, pg_tool, run_tool
from uptally.backup.manifest import Manifest, ManifestError, backup_path, read_manifest
from uptally.backup.stream import BackupDamaged, file_digest, open_file
from uptally.secrets import Keyring, SecretKeyError


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verification:
    backup: Path
    manifest: Manifest | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{check.name}: {check.detail}" for check in self.checks if not check.ok]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok


async def unpack(result: Verification, keyring: Keyring | None, raw: Path) -> bool:
    """Manifest, checksum, decryption and decompression into `raw`; False at the first failure."""
    try:
        manifest = result.manifest = read_manifest(result.backup)
    except ManifestError as error:
        return result.add("manifest", False, str(error))
    result.add("manifest", True, f"{manifest.database}, created {manifest.created_at}")
    if not result.backup.is_file():
        return result.add("checksum", False, f"the backup file {result.backup} is missing")
    digest, size = await asyncio.to_thread(file_digest, result.backup)
    if size != manifest.size:
        return result.add(
            "checksum", False, f"size {size} bytes, the manifest says {manifest.size} (cut off?)"
        )
    if digest != manifest.sha256:
        return result.add("checksum", False, f"SHA-256 {digest} does not match the manifest")
    result.add("checksum", True, f"SHA-256 {digest[:16]}…, {size} bytes")
    if manifest.key_salt and keyring is not None:  # a passphrase key, stretched as it was then
        try:
            keyring = keyring.with_salt(bytes.fromhex(manifest.key_salt))
        except ValueError:
            return result.add("decrypt and decompress", False, "the manifest's key_salt is damaged")
    try:
        unpacked = await asyncio.to_thread(
            open_file, result.backup, raw, keyring, manifest.encrypted
        )
    except (BackupDamaged, SecretKeyError, OSError) as error:
        return result.add("decrypt and decompress", False, str(error))
    how = "decrypted and decompressed" if manifest.encrypted else "decompressed"
    return result.add("decrypt and decompress", True, f"{how}: {unpacked} bytes")


def inspect_sqlite(result: Verification, raw: Path) -> bool:
    """integrity_check, schema revision and row counts of an unpacked SQLite backup."""
    assert result.manifest is not None
    try:
        conn = sqlite3.connect(f"file:{raw}?mode=ro", uri=True)
        try:
            integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
            snapshot = describe_sqlite(conn) if integrity == "ok" else None
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        return result.add("database", False, f"not a readable SQLite database: {error}")
    if snapshot is None:
        return result.add("database", False, f"integrity_check: {integrity}")
    result.add("database", True, "SQLite integrity_check ok")
    return check_snapshot(result, snapshot.revision, snapshot.tables)


def check_snapshot(result: Verification, revision: str | None, tables: dict[str, int]) -> bool:
    manifest = result.manifest
    assert manifest is not None
    if revision != manifest.schema_revision:
        return result.add(
            "schema revision", False, f"{revision}, the manifest says {manifest.schema_revision}"
        )
    result.add("schema revision", True, str(revision))
    wrong = [
        f"{name}: {tables.get(name)} rows, manifest {count}"
        for name, count in sorted(manifest.tables.items())
        if tables.get(name) != count
    ]
    if wrong:
        return result.add("row counts", False, "; ".join(wrong[:5]))
    total = sum(manifest.tables.values())
    return result.add("row counts", True, f"{len(manifest.tables)} tables, {total} rows")


async def inspect_pg_archive(result: Verification, raw: Path) -> bool:
    """`pg_restore --list` reads the archive; every table of the manifest has its data in it."""
    assert result.manifest is not None
    try:
        listing = await run_tool([pg_tool("pg_restore"), "--list", str(raw)], dict(os.environ))
    except BackupError as error:
        return result.add("database", False, str(error))
    present = set(re.findall(r" TABLE DATA \S+ (\S+) ", listing))
    missing = sorted(set(result.manifest.tables) - present)
    if missing:
        return result.add("database", False, f"tables missing from the dump: {missing[:5]}")
    return result.add("database", True, f"pg_restore --list: {len(present)} tables with data")


async def verify_backup(path: Path, keyring: Keyring | None) -> Verification:
    """Every check a backup must pass before anyone relies on it."""
    result = Verification(backup_path(path))
    with tempfile.TemporaryDirectory(prefix="uptally-verify-") as work:
        raw = Path(work) / "snapshot"
        if not await unpack(result, keyring, raw):
            return result
        assert result.manifest is not None
        if result.manifest.database == "sqlite":
            await asyncio.to_thread(inspect_sqlite, result, raw)
        else:
            await inspect_pg_archive(result, raw)
    return result
