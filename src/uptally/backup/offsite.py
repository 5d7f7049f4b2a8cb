"""Off-site copies: put finished backups in an S3-compatible bucket, check, rotate, fetch them.

Each backup becomes two objects under `backup.s3.prefix`: the backup file (its SHA-256 and
creation time as object metadata) and then its manifest — as on disk, no manifest, no backup.
A copy asks the bucket first (HEAD) and uploads only what is missing, so a retried copy never
uploads a backup twice. boto3 is blocking, so every call runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from uptally.backup.manifest import (
    SUFFIX,
    Manifest,
    ManifestError,
    manifest_path,
    parse_manifest,
)
from uptally.backup.rotation import to_keep
from uptally.clock import Millis
from uptally.config.schema import BackupKeep, BackupS3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import HeadObjectOutputTypeDef

log = logging.getLogger(__name__)

ORPHAN_AGE_MS = 86_400_000  # half an upload (one object of the two) older than this is abandoned
SHA256 = "sha256"  # object metadata (S3 lowercases the names)
CREATED = "uptally-created-at-ms"


class OffsiteError(Exception):
    """An off-site step failed or cannot start; the message says which and why."""


@dataclass(frozen=True, slots=True)
class RemoteBackup:
    key: str  # the backup object; its manifest is key + SUFFIX
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class Copied:
    """The outcome of one off-site copy (never an exception: the local backup stands)."""

    backup: str  # file name
    created_at_ms: Millis
    ok: bool
    detail: str  # the s3:// URL of the copy, or why it failed
    removed: tuple[str, ...] = ()  # keys deleted by retention
    uploaded: bool = False  # False when ok: both objects were in the bucket already


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    size: int
    modified_ms: Millis


def _credentials(settings: BackupS3, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The access key pair from the named variables; (None, None): boto3's default chain."""
    if settings.access_key_env is None or settings.secret_key_env is None:
        return None, None  # AWS_* variables, ~/.aws, instance roles …
    for name in (settings.access_key_env, settings.secret_key_env):
        if not env.get(name):
            raise OffsiteError(f"backup.s3 names the environment variable {name}, which is not set")
    return env[settings.access_key_env], env[settings.secret_key_env]


class Bucket:
    """One configured bucket and prefix."""

    def __init__(
        self, settings: BackupS3, env: Mapping[str, str] | None = None, *, attempts: int = 3
    ) -> None:
        import boto3  # imported when used: 0.3 s that serve without backup.s3 need not pay
        from botocore.config import Config as BotoConfig

        self.name = settings.bucket
        self.prefix = settings.prefix
        config = BotoConfig(
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": attempts, "mode": "standard"},
            # Virtual-host addressing needs DNS per bucket; MinIO, Ceph and friends rarely have it.
            s3={"addressing_style": "path"} if settings.endpoint_url else None,
        )
        access_key, secret_key = _credentials(settings, os.environ if env is None else env)
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )

    def __str__(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def key(self, file: str) -> str:
        return self.prefix + file

    def url(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    async def upload(self, backup: Path, manifest: Manifest) -> str:
        """Upload the backup, check what arrived, then its manifest; return the backup's key."""
        return await asyncio.to_thread(self._upload, backup, manifest)

    async def ensure(self, backup: Path, manifest: Manifest) -> tuple[str, bool]:
        """Upload what the bucket lacks of this backup; return its key and whether it uploaded."""
        return await asyncio.to_thread(self._ensure, backup, manifest)

    async def list_backups(self) -> list[RemoteBackup]:
        """Complete remote backups (both objects, a readable manifest), oldest first."""
        return (await asyncio.to_thread(self._list))[0]

    async def rotate(self, keep: BackupKeep, now_ms: Millis) -> list[str]:
        """Delete the copies retention drops (and abandoned half-uploads); return their keys."""
        return await asyncio.to_thread(self._rotate, keep, now_ms)

    async def download(self, key: str, directory: Path) -> Path:
        """Fetch a backup (named by its key or its manifest's) and its manifest into directory."""
        return await asyncio.to_thread(self._download, key, directory)

    # -- blocking calls, in a thread ---------------------------------------------------------

    def _upload(self, backup: Path, manifest: Manifest) -> str:
        key = self.key(manifest.file)
        metadata = {SHA256: manifest.sha256, CREATED: str(manifest.created_at_ms)}
        # upload_file switches to multipart for large files; its ETag is then no MD5 of the
        # whole, which is why the manifest's SHA-256 travels as metadata.
        self.client.upload_file(str(backup), self.name, key, ExtraArgs={"Metadata": metadata})
        head = self.client.head_object(Bucket=self.name, Key=key)
        problem = _mismatch(head.get("ContentLength"), head.get("Metadata", {}), manifest)
        if problem:
            self.client.delete_object(Bucket=self.name, Key=key)
            raise OffsiteError(f"{self.url(key)}: {problem}; the copy was deleted")
        self._put_manifest(backup, key, manifest)
        return key

    def _put_manifest(self, backup: Path, key: str, manifest: Manifest) -> None:
        metadata = {SHA256: manifest.sha256, CREATED: str(manifest.created_at_ms)}
        self.client.upload_file(
            str(manifest_path(backup)),
            self.name,
            key + SUFFIX,
            ExtraArgs={"Metadata": metadata, "ContentType": "application/json"},
        )

    def _ensure(self, backup: Path, manifest: Manifest) -> tuple[str, bool]:
        key = self.key(manifest.file)
        head = self._head(key)
        if head is None or _mismatch(head.get("ContentLength"), head.get("Metadata", {}), manifest):
            return self._upload(backup, manifest), True  # absent, or not this backup: (re)place it
        manifest_head = self._head(key + SUFFIX)
        if manifest_head is not None and manifest_head.get("Metadata", {}).get(SHA256) == (
            manifest.sha256
        ):
            return key, False
        # The backup arrived, its manifest did not (a copy cut short): only the manifest is owed.
        self._put_manifest(backup, key, manifest)
        return key, True

    def _head(self, key: str) -> HeadObjectOutputTypeDef | None:
        """The object's HEAD answer, or None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def _objects(self) -> dict[str, _Object]:
        found = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix, Delimiter="/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                found[key] = _Object(key, item["Size"], _ms(item["LastModified"]))
        return found

    def _list(self) -> tuple[list[RemoteBackup], list[_Object]]:
        objects = self._objects()
        complete: list[RemoteBackup] = []
        paired: set[str] = set()
        for key in objects:
            if not key.endswith(SUFFIX) or key[: -len(SUFFIX)] not in objects:
                continue
            backup = key[: -len(SUFFIX)]
            try:
                manifest = self._manifest(key)
            except ManifestError as error:
                log.warning("ignoring an off-site backup: %s", error)
                continue
            complete.append(RemoteBackup(backup, manifest))
            paired.update((key, backup))
        orphans = [
            item
            for key, item in objects.items()
            if key not in paired and key[len(self.prefix) :].startswith("uptally-")
        ]
        complete.sort(key=lambda item: (item.manifest.created_at_ms, item.key))
        return complete, orphans

    def _read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()

    def _manifest(self, key: str) -> Manifest:
        return parse_manifest(self._read(key), self.url(key))

    def _rotate(self, keep: BackupKeep, now_ms: Millis) -> list[str]:
        complete, orphans = self._list()
        kept = to_keep([(item.key, item.manifest.created_at_ms) for item in complete], keep)
        dropped = [item.key for item in complete if item.key not in kept]
        abandoned = [item.key for item in orphans if now_ms - item.modified_ms > ORPHAN_AGE_MS]
        # Manifests first: a deletion cut short leaves a half-upload, never a backup that lies.
        self._delete([key + SUFFIX for key in dropped])
        self._delete(dropped + abandoned)
        return dropped + abandoned

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # the most one request may name
            answer = self.client.delete_objects(
                Bucket=self.name,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]], "Quiet": True},
            )
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise OffsiteError(
                    f"cannot delete {self.url(first.get('Key', '?'))}: {first.get('Message')}"
                )

    def _download(self, key: str, directory: Path) -> Path:
        backup_key = key[: -len(SUFFIX)] if key.endswith(SUFFIX) else key
        text = self._read(backup_key + SUFFIX)
        manifest = parse_manifest(text, self.url(backup_key + SUFFIX))
        target = directory / manifest.file
        directory.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.name, backup_key, str(target))
        manifest_path(target).write_bytes(text)
        return target  # `backup verify` and `restore` check it against the manifest in full


def _ms(at: datetime) -> Millis:
    return int(at.timestamp() * 1000)


def _mismatch(size: int | None, metadata: Mapping[str, str], manifest: Manifest) -> str | None:
    if size != manifest.size:
        return f"{size} bytes arrived, the manifest says {manifest.size}"
    if metadata.get(SHA256) != manifest.sha256:
        return f"SHA-256 metadata {metadata.get(SHA256)!r} does not match the manifest"
    return None


def describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, OffsiteError) else f"{type(error).__name__}: {text}"


async def copy_offsite(
    bucket: Bucket, backup: Path, manifest: Manifest, keep: BackupKeep, now_ms: Millis
) -> Copied:
    """Copy a finished backup unless it is there already, then rotate; report, never raise."""
    try:
        key, uploaded = await bucket.ensure(backup, manifest)
    except Exception as error:  # whatever happens off-site, the local backup stands
        reason = describe(error)
        log.error("off-site copy of %s to %s FAILED: %s", manifest.file, bucket, reason)
        return Copied(manifest.file, manifest.created_at_ms, False, reason)
    removed: list[str] = []
    try:
        removed = await bucket.rotate(keep, now_ms)
    except Exception as error:  # extra copies cost money, not safety: retried next time
        log.error("rotating the off-site copies in %s failed: %s", bucket, describe(error))
    log.info(
        "backup %s %s %s (%d old copies rotated out)",
        manifest.file,
        "copied to" if uploaded else "was already in",
        bucket.url(key),
        len(removed),
    )
    return Copied(
        manifest.file, manifest.created_at_ms, True, bucket.url(key), tuple(removed), uploaded
    )


def parse_url(url: str) -> tuple[str, str]:
    """s3://bucket/key → (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise OffsiteError(f"{url!r} is not an s3://BUCKET/KEY URL of a backup")
    return bucket, key


def parse_location(url: str) -> tuple[str, str]:
    """s3://bucket[/prefix] → (bucket, prefix): where backups are listed."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not url.startswith("s3://") or not bucket:
        raise OffsiteError(f"{url!r} is not an s3://BUCKET[/PREFIX] URL")
    return bucket, prefix


def at_location(settings: BackupS3 | None, url: str) -> BackupS3:
    """backup.s3's endpoint and credentials (boto3's defaults without it) for another place."""
    bucket, prefix = parse_location(url)
    given = settings.model_dump(exclude={"bucket", "prefix"}) if settings is not None else {}
    try:
        return BackupS3.model_validate({**given, "bucket": bucket, "prefix": prefix})
    except ValidationError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise OffsiteError(f"{url}: {message}") from None
