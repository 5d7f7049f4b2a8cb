"""Secrets at rest: AES-256-GCM with key ids, rotation, and no plaintext in the database file."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from pathlib import Path

import pytest

from tests.procs import UPTALLY, run_cli
from uptally.backup.create import create_backup
from uptally.backup.verify import verify_backup
from uptally.secrets import Key, Keyring, SecretKeyError, is_sealed_text, load_keyring
from uptally.store import meta
from uptally.store import secrets as secret_store
from uptally.store.database import Database, database_url

RAW = base64.b64encode(b"k" * 32).decode()
OTHER = base64.b64encode(b"o" * 32).decode()
PLAINTEXT = "hunter2-webhook-signing-secret-5f1c"


def test_a_base64_key_is_used_as_is_and_a_passphrase_is_stretched() -> None:
    raw = Key.parse(RAW)
    assert raw.material == b"k" * 32
    assert len(raw.id) == 16
    phrase = Key.parse("correct horse battery staple")
    assert len(phrase.material) == 32
    assert phrase == Key.parse("correct horse battery staple")  # deterministic
    assert phrase.id != raw.id
    for bad in ("", "short"):
        with pytest.raises(SecretKeyError):
            Key.parse(bad)


def test_sealed_values_open_only_with_their_key_and_name() -> None:
    ring = Keyring(Key.parse(RAW))
    sealed = ring.seal(PLAINTEXT.encode(), b"channel:ops")
    assert PLAINTEXT.encode() not in sealed.blob
    assert ring.open(sealed, b"channel:ops") == PLAINTEXT.encode()
    assert ring.seal(PLAINTEXT.encode()).blob != ring.seal(PLAINTEXT.encode()).blob  # fresh nonce
    with pytest.raises(SecretKeyError, match="altered"):
        ring.open(sealed, b"channel:other")  # moved to another row
    tampered = sealed.blob[:-1] + bytes([sealed.blob[-1] ^ 1])
    with pytest.raises(SecretKeyError, match="altered"):
        ring.open(type(sealed)(sealed.key_id, tampered), b"channel:ops")
    with pytest.raises(SecretKeyError, match="not configured"):
        Keyring(Key.parse(OTHER)).open(sealed, b"channel:ops")
    text = ring.seal_text(PLAINTEXT, "x")
    assert is_sealed_text(text)
    assert ring.open_text(text, "x") == PLAINTEXT


def test_the_keyring_comes_from_the_environment_or_a_key_file(tmp_path: Path) -> None:
    assert load_keyring({}) is None
    ring = load_keyring({"UPTALLY_SECRET_KEY": RAW, "UPTALLY_SECRET_KEY_PREVIOUS": OTHER})
    assert ring is not None
    assert ring.current.id == Key.parse(RAW).id
    assert set(ring.key_ids) == {Key.parse(RAW).id, Key.parse(OTHER).id}
    key_file = tmp_path / "key"
    key_file.write_text(f"{OTHER}\n{RAW}\n")
    from_file = load_keyring({"UPTALLY_SECRET_KEY_FILE": str(key_file)})
    assert from_file is not None
    assert from_file.current.id == Key.parse(OTHER).id
    assert Key.parse(RAW).id in from_file.key_ids
    with pytest.raises(SecretKeyError, match="cannot read"):
        load_keyring({"UPTALLY_SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert load_keyring({"UPTALLY_SECRET_KEY_PREVIOUS": OTHER}) is None


async def test_secrets_are_stored_encrypted_and_read_back(db: Database) -> None:
    ring = Keyring(Key.parse(RAW))
    async with db.begin() as conn:
        await secret_store.put_secret(db, conn, ring, "channel:ops", PLAINTEXT, 1)
        await secret_store.put_secret(db, conn, ring, "smtp:password", "p@ss", 1)
    async with db.connect() as conn:
        assert await secret_store.get_secret(conn, ring, "channel:ops") == PLAINTEXT
        assert await secret_store.get_secret(conn, ring, "nothing") is None
        listed = await secret_store.list_secrets(conn)
        raw = (await conn.exec_driver_sql("SELECT ciphertext FROM secrets")).scalars().all()
    assert [s.name for s in listed] == ["channel:ops", "smtp:password"]
    assert all(s.key_id == ring.current.id for s in listed)
    assert all(PLAINTEXT.encode() not in bytes(blob) for blob in raw)


async def test_the_sqlite_file_holds_no_plaintext_secret(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/uptally.db")
    await db.migrate()
    ring = Keyring(Key.parse(RAW))
    try:
        async with db.begin() as conn:
            await secret_store.put_secret(db, conn, ring, "channel:ops", PLAINTEXT, 1)
        await db.checkpoint()
    finally:
        await db.close()
    content = database_bytes(tmp_path)
    assert b"channel:ops" in content  # the name is there: we are looking at the right bytes
    assert PLAINTEXT.encode() not in content
    assert base64.b64encode(PLAINTEXT.encode()) not in content


async def test_rotation_re_encrypts_everything_under_the_new_key(db: Database) -> None:
    old = Keyring(Key.parse(OTHER))
    async with db.begin() as conn:
        for name in ("a", "b", "c"):
            await secret_store.put_secret(db, conn, old, name, f"value-{name}", 1)
    new = Keyring(Key.parse(RAW), (Key.parse(OTHER),))
    async with db.begin() as conn:
        assert await secret_store.rotate(conn, new, 2) == ["a", "b", "c"]
        assert await secret_store.rotate(conn, new, 3) == []
    only_new = Keyring(Key.parse(RAW))
    async with db.connect() as conn:
        assert await secret_store.get_secret(conn, only_new, "b") == "value-b"
        assert {s.key_id for s in await secret_store.list_secrets(conn)} == {only_new.current.id}


@pytest.mark.slow
async def test_secrets_rotate_from_the_command_line(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "uptally.db")  # as serve left it
    old_env = {"UPTALLY_SECRET_KEY": OTHER}
    code, output = await _cli_with_input(
        PLAINTEXT, "secrets", "set", "channel:ops", "--data-dir", str(tmp_path), env=old_env
    )
    assert code == 0, output
    new_env = {"UPTALLY_SECRET_KEY": RAW}
    code, output = await run_cli("secrets", "rotate", "--data-dir", str(tmp_path), env=new_env)
    assert code == 1  # the old key is needed to decrypt
    assert "not configured" in output
    both = {**new_env, "UPTALLY_SECRET_KEY_PREVIOUS": OTHER}
    code, output = await run_cli("secrets", "rotate", "--data-dir", str(tmp_path), env=both)
    assert code == 0, output
    assert f"re-encrypted 1 secret(s) under key {Key.parse(RAW).id}" in output
    code, output = await run_cli("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 0, output
    code, output = await run_cli(
        "secrets", "rotate", "--data-dir", str(tmp_path), env={"UPTALLY_SECRET_KEY": ""}
    )
    assert code == 2
    assert PLAINTEXT.encode() not in database_bytes(tmp_path)


def database_bytes(directory: Path) -> bytes:
    """The SQLite file with its write-ahead log, as bytes on disk."""
    return b"".join(path.read_bytes() for path in sorted(directory.glob("uptally.db*")))


async def _cli_with_input(stdin: str, *args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *UPTALLY,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
    )
    async with asyncio.timeout(60):
        output, _ = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return process.returncode, output.decode()


PASSPHRASE = "correct horse battery staple"


async def test_a_passphrase_is_stretched_with_the_installations_own_salt(
    db: Database, tmp_path: Path
) -> None:
    legacy = Keyring(Key.parse(PASSPHRASE))  # the fixed salt of earlier versions
    async with db.begin() as conn:
        await secret_store.put_secret(db, conn, legacy, "old", "value-old", 1)
        salt = await meta.installation_salt(db, conn)
        assert await meta.installation_salt(db, conn) == salt  # made once, then kept
    assert len(salt) == 16
    ring = legacy.with_salt(salt)
    assert ring.current.id != legacy.current.id
    other = Database(database_url(tmp_path / "elsewhere"))
    try:
        await other.migrate()
        async with other.begin() as conn:
            elsewhere = legacy.with_salt(await meta.installation_salt(other, conn))
    finally:
        await other.close()
    assert elsewhere.current.id not in (ring.current.id, legacy.current.id)
    async with db.begin() as conn:
        # What the fixed salt encrypted still opens; rotation moves it to the salted key.
        assert await secret_store.get_secret(conn, ring, "old") == "value-old"
        assert await secret_store.rotate(conn, ring, 2) == ["old"]
        await secret_store.put_secret(db, conn, ring, "new", "value-new", 3)
        assert {s.key_id for s in await secret_store.list_secrets(conn)} == {ring.current.id}
        with pytest.raises(SecretKeyError):
            await secret_store.get_secret(conn, legacy, "new")


async def test_a_passphrase_encrypted_backup_restores_into_another_installation(
    db: Database, tmp_path: Path
) -> None:
    async with db.begin() as conn:
        ring = Keyring(Key.parse(PASSPHRASE)).with_salt(await meta.installation_salt(db, conn))
    created = await create_backup(db, tmp_path / "b", ring, encrypt=True)
    assert ring.salt is not None
    assert created.manifest.key_salt == ring.salt.hex()
    fresh = Keyring(Key.parse(PASSPHRASE))  # another host: the same passphrase, no database yet
    result = await verify_backup(created.path, fresh)
    assert result.ok, result.checks
