"""The manifest beside every backup: checksum, size, schema, row counts, audit head."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from uptally.clock import Millis, iso

SUFFIX = ".manifest.json"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Manifest:
    file: str  # the backup's file name, in the same directory
    sha256: str
    size: int
    created_at_ms: Millis
    database: str  # sqlite | postgresql
    schema_revision: str | None
    encrypted: bool
    key_id: str | None
    audit_head: dict[str, Any] | None  # {"seq", "hash"} at the time of the snapshot
    tables: dict[str, int] = field(default_factory=dict)  # row counts in the snapshot
    uptally_version: str = ""
    compression: str = "gzip"
    format: int = FORMAT
    key_salt: str | None = None  # hex scrypt salt when the key is a passphrase (secrets.py)

    @property
    def created_at(self) -> str:
        return iso(self.created_at_ms) or ""

    def as_json(self) -> dict[str, Any]:
        return {"created_at": self.created_at, **asdict(self)}


class ManifestError(Exception):
    """A manifest is missing or unreadable."""


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + SUFFIX)


def backup_path(path: Path) -> Path:
    """The backup a path names: the file itself, or the one a manifest path belongs to."""
    if path.name.endswith(SUFFIX):
        return path.with_name(path.name[: -len(SUFFIX)])
    return path


def write_manifest(backup: Path, manifest: Manifest) -> Path:
    """Write atomically: a manifest's presence means the backup beside it is complete."""
    target = manifest_path(backup)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(manifest.as_json(), indent=2, sort_keys=True) + "\n")
    os.replace(temporary, target)
    return target


def read_manifest(backup: Path) -> Manifest:
    path = manifest_path(backup)
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"no manifest beside the backup (expected {path})") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"cannot read the manifest {path}: {error}") from None
    return parse_manifest(content, str(path))


def parse_manifest(content: str | bytes, where: str) -> Manifest:
    """A manifest from its JSON text; `where` names it in errors (a path, an s3:// URL)."""
    try:
        data = json.loads(content)
    except ValueError as error:
        raise ManifestError(f"cannot read the manifest {where}: {error}") from None
    try:
        data.pop("created_at", None)
        manifest = Manifest(**data)
    except (TypeError, AttributeError) as error:
        raise ManifestError(f"the manifest {where} is not an uptally manifest: {error}") from None
    if manifest.format != FORMAT:
        raise ManifestError(f"manifest format {manifest.format} is not supported")
    return manifest


def list_backups(directory: Path) -> list[tuple[Path, Manifest]]:
    """Complete backups in a directory (those with a readable manifest), oldest first."""
    found: list[tuple[Path, Manifest]] = []
    if not directory.is_dir():
        return found
    for path in directory.glob("*" + SUFFIX):
        backup = backup_path(path)
        try:
            found.append((backup, read_manifest(backup)))
        except ManifestError:
            continue
    return sorted(found, key=lambda item: (item[1].created_at_ms, item[0].name))
