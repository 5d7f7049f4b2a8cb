"""Backup files: gzip, then optionally AES-256-GCM in 1 MiB chunks, checksummed as written.

The encrypted format streams, so a large database never sits in memory: a header (magic, key
id, a random nonce prefix, the chunk size), then chunks of ciphertext + tag. Each chunk's
nonce is the prefix, its counter and a last-chunk flag (the STREAM construction), and the
header is authenticated with every chunk, so reordered, dropped or cut-off chunks fail to
decrypt instead of restoring silently wrong data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from uptally.secrets import Keyring, SecretKeyError

MAGIC = b"UTBKENC1"
CHUNK = 1 << 20
_PREFIX = 7
_TAG = 16
_HEADER = struct.Struct(">8s16s7sI")  # magic, key id, nonce prefix, chunk size


class BackupDamaged(Exception):
    """The backup cannot be read back: wrong checksum, cut off, altered, or the wrong key."""


class _Hashing:
    """A write-only file that also counts and hashes what passes through."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._target.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._target.flush()


class _Encrypting:
    """Buffers plaintext and writes authenticated chunks; close() writes the last one."""

    def __init__(self, target: _Hashing, keyring: Keyring) -> None:
        self._target = target
        self._aead = AESGCM(keyring.current.material)
        self._header = _HEADER.pack(MAGIC, keyring.current.id.encode(), os.urandom(_PREFIX), CHUNK)
        self._prefix = self._header[24:31]
        self._counter = 0
        self._buffer = bytearray()
        target.write(self._header)

    def write(self, data: bytes) -> int:
        self._buffer.extend(data)
        while len(self._buffer) > CHUNK:  # keep a full chunk back: it may be the last
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        self._target.write(
            self._aead.encrypt(_nonce(self._prefix, self._counter, last), chunk, self._header)
        )
        self._counter += 1


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


def seal_file(source: Path, target: Path, keyring: Keyring | None) -> tuple[str, int]:
    """Compress (and encrypt when a keyring is given) a file; return (sha256 hex, size)."""
    with source.open("rb") as raw, target.open("wb") as out:
        hashing = _Hashing(out)
        sink: _Hashing | _Encrypting = _Encrypting(hashing, keyring) if keyring else hashing
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as zipped:
            shutil.copyfileobj(raw, zipped, CHUNK)
        if isinstance(sink, _Encrypting):
            sink.close()
        out.flush()
        os.fsync(out.fileno())
    return hashing.sha256.hexdigest(), hashing.size


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def key_id_of(path: Path) -> str | None:
    """The key id in an encrypted backup's header (None if the file is not encrypted)."""
    with path.open("rb") as file:
        header = file.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        return None
    key_id: bytes = _HEADER.unpack(header)[1]
    return key_id.decode("ascii", "replace")


def _decrypted(file: BinaryIO, keyring: Keyring | None) -> Iterator[bytes]:
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise BackupDamaged("not an encrypted uptally backup (bad header)")
    _, key_id, prefix, chunk = _HEADER.unpack(header)
    if keyring is None:
        raise SecretKeyError("the backup is encrypted: set UPTALLY_SECRET_KEY to its key")
    aead = AESGCM(keyring.key(key_id.decode("ascii", "replace")).material)
    size = chunk + _TAG
    if not 0 < chunk <= 64 << 20:
        raise BackupDamaged("bad chunk size in the header")
    block = file.read(size)
    counter = 0
    while True:
        following = file.read(size)
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), block, header)
        except InvalidTag:
            where = "the end is missing or damaged" if last else f"chunk {counter} is damaged"
            raise BackupDamaged(f"cannot decrypt: {where} (or the wrong key)") from None
        if last:
            return
        block = following
        counter += 1


def open_file(source: Path, target: Path, keyring: Keyring | None, encrypted: bool) -> int:
    """Decrypt (if encrypted) and decompress a backup into `target`; return its size."""
    inflate = zlib.decompressobj(wbits=31)  # gzip framing
    size = 0
    with source.open("rb") as file, target.open("wb") as out:
        blocks = _decrypted(file, keyring) if encrypted else iter(lambda: file.read(CHUNK), b"")
        try:
            for block in blocks:
                data = inflate.decompress(block)
                out.write(data)
                size += len(data)
            out.write(inflate.flush())
        except zlib.error as error:
            raise BackupDamaged(f"cannot decompress: {error}") from None
    if not inflate.eof:
        raise BackupDamaged("cannot decompress: the file is cut off")
    if inflate.unused_data:
        raise BackupDamaged("cannot decompress: unexpected data after the end")
    return size
